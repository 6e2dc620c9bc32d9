"""A deployed cluster read over SSH: each host's containers with their engine state and health
check (run there, as the deployment waited on it), each host's container logs, and whether the
VIP answers from the operator's side."""

from __future__ import annotations

import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from contrail_ha.deploy.runner import REMOTE_DIR
from contrail_ha.remote import ssh
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import containers
from contrail_ha.runtime.record import runtime_of
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import NODE_GROUP, Plan

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


def engine_conf(plan: Plan, host: str) -> str:
    return str(REMOTE_DIR / plan.cluster_id / host / "engine" / "containers.conf")


def expected(plan: Plan, host: str) -> list[str]:
    """The containers ``host`` runs: one per role group it has, and its node agent."""
    h = plan.topology.host(host)
    roles = [r.value for r in (Role.CONTROLLER, Role.ANALYTICSDB, Role.ANALYTICS, Role.LB) if h.has(r)]
    return [containers.name(host, r) for r in [*roles, NODE_GROUP]]


def _host_rows(plan: Plan, layout: Layout, host: str) -> list[Row]:
    script = (f"export CONTAINERS_CONF={shlex.quote(engine_conf(plan, host))}\n"
              f"podman ps -a --filter label={containers.LABEL}={plan.cluster_id} "
              f"--filter label=io.contrail-ha.host={host} --format '{{{{.Names}}}} {{{{.State}}}}' |\n"
              "while read -r n s; do\n"
              "  h=-; if [ \"$s\" = running ]; then\n"
              "    podman healthcheck run \"$n\" >/dev/null 2>&1 && h=healthy || h=unhealthy; fi\n"
              "  echo \"$n $s $h\"\n"
              "done\n")
    try:
        out = ssh.run(layout, host, ["sh", "-c", script], timeout=SSH_TIMEOUT_S, via=via(layout))
    except ssh.SshError as e:
        return [Row(host, name, "unreachable", "-", str(e)[:300]) for name in expected(plan, host)]
    seen = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            seen[parts[0]] = (parts[1], parts[2])
    rows = []
    for name in expected(plan, host):
        state, health = seen.get(name, ("absent", "-"))
        rows.append(Row(host, name, state, health))
    return rows


def _vip(plan: Plan, layout: Layout) -> list[Row]:
    """The config and analytics APIs through the VIP, from the operator's side."""
    rows = []
    for name, port in (("contrail-api", plan.ports.config_api), ("contrail-analytics-api", plan.ports.analytics_api)):
        code = ("import sys, urllib.request\n"
                f"r = urllib.request.urlopen('http://{plan.vip}:{port}/', timeout=10)\n"
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
        tail = str(lines if process is None else max(lines * 50, 5000))
        try:
            cmd = (f"CONTAINERS_CONF={shlex.quote(engine_conf(plan, host))} podman logs --tail {tail} "
                   f"{shlex.quote(name)} 2>&1")  # the container's stderr too
            text = ssh.run(layout, host, ["sh", "-c", cmd], timeout=SSH_TIMEOUT_S, via=via(layout))
        except ssh.SshError as e:
            text = f"(no log: {e})"
        kept = text.splitlines()
        if process is not None:
            kept = [ln for ln in kept if ln.startswith((f"{process} | ", f"{process}-"))]
            if not kept:
                continue
        out.append(f"==> {host}: {name} <==\n" + "\n".join(kept[-lines:]))
    return "\n".join(out)
