"""A deployed cluster read over SSH: each host's containers with their engine state and health
check (run there, as the deployment waited on it), each host's container logs, and whether the
VIP answers from the operator's side."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

from contrail_ha.deploy.runner import REMOTE_DIR
from contrail_ha.remote import ssh
from contrail_ha.rendering import pki
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import containers
from contrail_ha.runtime.record import runtime_of
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import NODE_GROUP, Plan

HEALTH_MARK = "--- health"
SSH_TIMEOUT_S = 120  # a health check per container, one after the other, on a loaded host


@dataclass
class Row:
    """One expected container (or the VIP): where, its engine state, its health."""

    host: str
    container: str
    state: str  # running | exited | ... | absent | unreachable
    health: str  # healthy | unhealthy | - (not running)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "running" and self.health == "healthy"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def via(layout: Layout) -> list[str]:
    """The command prefix recorded by ``deploy`` (how this machine reaches the hosts' network)."""
    return shlex.split(runtime_of(layout).get("via", ""))


def _host_dir(plan: Plan, host: str) -> PurePosixPath:
    """The cluster's directory on ``host`` (the playbooks' ``contrail_ha_dir/<host>``)."""
    return PurePosixPath(REMOTE_DIR / plan.cluster_id / host)


def engine_conf(plan: Plan, host: str) -> str:
    return str(_host_dir(plan, host) / "engine" / "containers.conf")


def project_dir(plan: Plan, host: str) -> str:
    """Where the deployment unpacked ``host``'s Compose project, on that host."""
    return str(_host_dir(plan, host) / "project")


def compose_env(plan: Plan, host: str) -> dict[str, str]:
    """docker-compose's environment on ``host``: the project's own Podman API service and engine
    configuration (the playbooks' ``contrail_ha_compose_env``)."""
    return {"DOCKER_HOST": f"unix://{_host_dir(plan, host) / 'engine' / 'podman.sock'}",
            "CONTAINERS_CONF": engine_conf(plan, host), "COMPOSE_HTTP_TIMEOUT": "300"}


def expected(plan: Plan, host: str) -> list[str]:
    """The containers ``host`` runs: one per role group it has, and its node agent."""
    h = plan.topology.host(host)
    roles = [r.value for r in (Role.CONTROLLER, Role.ANALYTICSDB, Role.ANALYTICS, Role.LB) if h.has(r)]
    return [containers.name(host, r) for r in [*roles, NODE_GROUP]]


def ours_filter(plan: Plan, host: str) -> str:
    """``podman ps`` filters for the cluster's containers of ``host`` (stand-in hosts share one store)."""
    return f"--filter label={containers.LABEL}={plan.cluster_id} --filter label={containers.HOST_LABEL}={host}"


def _host_rows(plan: Plan, layout: Layout, host: str) -> list[Row]:
    conf = shlex.quote(engine_conf(plan, host))
    mine = ours_filter(plan, host)
    script = (f"export CONTAINERS_CONF={conf}\n"
              f"podman ps -a {mine} --format json\n"
              f"echo {HEALTH_MARK}\n"
              f"for n in $(podman ps {mine} --filter status=running --format '{{{{.Names}}}}'); do\n"
              "  podman healthcheck run \"$n\" </dev/null >/dev/null 2>&1; echo \"$n $?\"\n"
              "done\n")
    try:
        out = ssh.run(layout, host, ["sh", "-c", script], timeout=SSH_TIMEOUT_S, via=via(layout))
        listed, _, checked = out.partition(HEALTH_MARK)
        states = {c["Names"][0]: c.get("State", "") for c in json.loads(listed or "[]") if c.get("Names")}
    except (ssh.SshError, ValueError) as e:
        return [Row(host, name, "unreachable", "-", str(e)[:300]) for name in expected(plan, host)]
    health = dict(line.split() for line in checked.splitlines() if len(line.split()) == 2)
    rows = []
    for name in expected(plan, host):
        state = states.get(name, "absent")
        h = "-" if state != "running" else ("healthy" if health.get(name) == "0" else "unhealthy")
        rows.append(Row(host, name, state, h))
    return rows


def _vip(plan: Plan, layout: Layout) -> list[Row]:
    """The config and analytics APIs through the VIP, from the operator's side."""
    rows = []
    ca = pki.vip_ca(plan, layout)  # verified as a user's client would
    for name, port, url in (
            ("contrail-api", plan.ports.config_api, f"{plan.config_api_url}/"),
            ("contrail-analytics-api", plan.ports.analytics_api, f"{plan.analytics_api_url}/analytics")):
        code = ("import ssl, sys, urllib.request\n"
                f"ctx = ssl.create_default_context(cafile={ca!r}) if {url!r}.startswith('https') else None\n"
                f"r = urllib.request.urlopen({url!r}, timeout=10, context=ctx)\n"
                "sys.exit(0 if r.status == 200 else 1)\n")
        try:
            p = subprocess.run([*via(layout), sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
            ok, detail = p.returncode == 0, p.stderr.strip().splitlines()[-1:] or [""]
        except subprocess.TimeoutExpired:
            ok, detail = False, ["no answer in 30 s"]
        rows.append(Row(f"VIP {plan.vip}:{port}", name, "running" if ok else "unreachable",
                        "healthy" if ok else "-", detail[0][:300]))
    return rows


def status(plan: Plan, layout: Layout) -> list[Row]:
    """Every host's containers (read in parallel), then the VIP's APIs."""
    hosts = [h.name for h in plan.topology.hosts]
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        per_host = list(pool.map(lambda h: _host_rows(plan, layout, h), hosts))
    return [r for rows in per_host for r in rows] + _vip(plan, layout)


def logs(plan: Plan, layout: Layout, host: str, lines: int, process: str | None = None) -> str:
    """The last lines of each of ``host``'s containers' logs (of one process of theirs if given: the
    supervisor prefixes each line with its process's name)."""
    out = []
    for name in expected(plan, host):
        try:
            cmd = (f"CONTAINERS_CONF={shlex.quote(engine_conf(plan, host))} podman logs --tail "
                   f"{containers.log_tail(lines, process)} {shlex.quote(name)} 2>&1")  # the container's stderr too
            text = ssh.run(layout, host, ["sh", "-c", cmd], timeout=SSH_TIMEOUT_S, via=via(layout))
        except ssh.SshError as e:
            text = f"(no log: {e})"
        kept = containers.lines_of(text, process)
        if not kept and process is not None:
            continue
        out.append(f"==> {host}: {name} <==\n" + "\n".join(kept[-lines:]))
    return "\n".join(out)
