"""The container runtime: each host's role supervisor runs as a Podman container of the product's
image, joined to that host's network namespace (``contrail-ha up --runtime containers``).

What the orchestrator does is unchanged - it enables processes in readiness-driven waves through
the supervisor's control files - because the cluster's state root is bind-mounted at its own path
and the container shares the host's PID namespace (``--pid host``): the supervisor's pid file,
``state.json`` and every process's pid mean the same inside and out, so ``status``, ``down`` and
every drill fault (kill -9, SIGSTOP, a held or skewed process) work on containers as they do on
processes. Rendered command lines apply as they are: the image carries the jars at the paths
they name, and our own Python processes get the image's interpreter (:func:`image_argv`).

The upstream router is the operator's network, not a product role: it stays a process.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from contrail_ha.image.engine import Engine
from contrail_ha.rendering.base import ProcessSpec, python
from contrail_ha.runtime import ownership
from contrail_ha.runtime.supervisor_state import GroupSpec
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import NODE_GROUP, Plan

IMAGE_PYTHON = "/opt/contrail-ha/venv/bin/python"
LABEL = "io.contrail-ha.cluster"
CONFIG_LABEL = "io.contrail-ha.config"
HOST_LABEL = "io.contrail-ha.host"
PRIVILEGED = {Role.LB.value}  # the VIP on lo, BIRD's routes, ip_nonlocal_bind (Contrail ran contrail-lb privileged)
STOP_TIMEOUT_S = 120  # Cassandra and Kafka drain before they stop
# The container's health check: its processes run and answer their probes (contrail_ha.runtime.health).
# Cassandra's bootstrap and RabbitMQ's boot fit in the start period; then 3 failures in a row are unhealthy.
HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_RETRIES, HEALTH_START_PERIOD = "15s", "10s", 3, "600s"


# A non-lb container's root: own the role's directories (chown, and read/enter any: DAC_OVERRIDE,
# FOWNER), then become the image's user (SETUID, SETGID).
HAND_OVER_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID")
LOG_MAX_SIZE = "10m"  # the engine rotates each container's log (all its components' output)
# The lb's CPU weight against the host's other containers (each has 1024): its BIRD's BFD (300 ms to
# detect a failure) must not wait behind Cassandra's start-up burst where the lb shares cores with
# the databases. Measured (docs/containers.md): at 1024, a config-DB node's restart dropped the lbs'
# BGP sessions 10 times (43 requests failed); at 8192, none in 4 drills. A dedicated lb host: no effect.
LB_CPU_SHARES = 8192
# One container per role group and host: the seed's four roles plus the host's node agent.
CONTAINER_NAMES = {Role.LB.value: "contrail-lb", Role.CONTROLLER.value: "contrail-controller",
                   Role.ANALYTICS.value: "contrail-analytics", Role.ANALYTICSDB.value: "contrail-analyticsdb",
                   NODE_GROUP: "contrail-node-agent"}


def health_argv(spec_file: Path | str, role: str, *, alive: bool = False) -> list[str]:
    """The health check command of the container running the supervisor of ``spec_file``: as the user
    the role's processes run as (the engine runs it as the container's, root). ``alive``: the
    liveness check (the supervisor runs), not the readiness one."""
    check = [IMAGE_PYTHON, "-m", "contrail_ha.runtime.health", *(["--alive"] if alive else []), str(spec_file)]
    if role in PRIVILEGED:
        return check
    return ["setpriv", f"--reuid={ownership.UID}", f"--regid={ownership.GID}", "--clear-groups", "--", *check]


def supervisor_argv(spec_file: Path | str) -> list[str]:
    """The container's command: the role supervisor under the container contract."""
    return [IMAGE_PYTHON, "-m", "contrail_ha.runtime.supervisor", "--container", str(spec_file)]


def compose_service(host: str, role: str, spec_file: Path | str, root: Path, image: str) -> dict[str, Any]:
    """A role's container on a real host, as a Compose service: the host's network (as Contrail's
    containers ran), the host's state directory (``./state``) as the state root, the engine restarting
    it, its health check, and nothing of the exporting machine."""
    svc: dict[str, Any] = {
        "image": image,
        "container_name": name(host, role),
        "hostname": host,
        "network_mode": "host",
        "restart": "unless-stopped",
        "init": False,  # the image's entrypoint is tini; the role supervisor reaps its own descendants
        "stop_grace_period": f"{STOP_TIMEOUT_S}s",  # Cassandra and Kafka drain before they stop
        # the rendered tree only: the jars and the runtime are the image's own
        "volumes": [f"./state:{root}"],
        # started as root only to give the role's directories to the image's user; the supervisor then
        # drops to it (contrail_ha.runtime.ownership), the lb excepted
        "user": "0:0",
        "command": supervisor_argv(spec_file),
        "labels": {HOST_LABEL: host, "io.contrail-ha.role": role},
        "healthcheck": {"test": ["CMD", *health_argv(spec_file, role)], "interval": HEALTH_INTERVAL,
                        "timeout": HEALTH_TIMEOUT, "retries": HEALTH_RETRIES, "start_period": HEALTH_START_PERIOD},
        "logging": {"options": {"max-size": LOG_MAX_SIZE}},
    }
    if role in PRIVILEGED:
        svc["privileged"] = True
        svc["cpu_shares"] = LB_CPU_SHARES
    else:  # what the hand-over needs, nothing more; the dropped processes have no capability at all
        svc["cap_drop"] = ["ALL"]
        svc["cap_add"] = list(HAND_OVER_CAPS)
        svc["security_opt"] = ["no-new-privileges"]
    return svc


def config_digest(spec: GroupSpec) -> str:
    """A digest of everything a role's container runs: its supervisor spec names every process with
    the digest of that process's rendered files."""
    import hashlib

    return hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]


def compose_project(plan: Plan, host: str, specs: list[GroupSpec], root: Path, image: str) -> dict[str, Any]:
    """The Compose file of ``host``: one service per role group (its supervisor spec, as the container
    runs it). Every container is labelled with the cluster (``down`` and ``status`` find a cluster's
    containers by it) and with :func:`config_digest` (Compose recreates a container whose
    configuration changed, and leaves the others running), and gets every host's name and address
    in its ``/etc/hosts`` (RabbitMQ's node names are the hosts' names; a site's DNS may not know them)."""
    hosts = [f"{h.name}:{h.ip}" for h in plan.topology.hosts]
    services = {}
    for spec in specs:
        svc = compose_service(host, spec.role, Path(spec.run_dir) / "spec.json", root, image)
        svc["labels"].update({LABEL: plan.cluster_id, CONFIG_LABEL: config_digest(spec)})
        svc["extra_hosts"] = hosts
        services[CONTAINER_NAMES[spec.role]] = svc
    return {"services": services}


def compose_files(host: str, doc: dict[str, Any]) -> dict[str, str]:
    """A project's ``docker-compose.yaml`` and its ``.env`` (the project's name: docker-compose 1.29's
    schema has no top-level ``name``), by file name."""
    import yaml

    return {"docker-compose.yaml": "# Generated by `contrail-ha export compose`: run `docker compose up -d` here, "
                                   f"on host {host}.\n" + yaml.safe_dump(doc, sort_keys=False),
            ".env": f"COMPOSE_PROJECT_NAME=contrail-ha-{host}\n"}


def write_compose_project(d: Path, host: str, doc: dict[str, Any]) -> Path:
    """:func:`compose_files` written in ``d``; ``export compose``, the local runtime and the deployment
    all write their projects with this."""
    d.mkdir(parents=True, exist_ok=True)
    for name, text in compose_files(host, doc).items():
        (d / name).write_text(text)
    return d / "docker-compose.yaml"


def image_argv(p: ProcessSpec) -> ProcessSpec:
    """A process as it runs in the image: our own processes with the image's interpreter."""
    return replace(p, argv=[IMAGE_PYTHON if a == python() else a for a in p.argv])


def in_image(spec: GroupSpec) -> GroupSpec:
    """A host's group as its container runs it: the image's interpreter, and (but for the privileged lb)
    the image's unprivileged user once the group's directories are that user's."""
    return replace(spec, processes=[image_argv(p) for p in spec.processes],
                   run_as="" if spec.role in PRIVILEGED else ownership.RUN_AS)


def name(node: str, role: str) -> str:
    """The container of ``role`` on ``node`` (the same name on a real host and locally)."""
    return f"{CONTAINER_NAMES[role]}-{node}"


def ours(engine: Engine, cluster_id: str) -> list[str]:
    """The names of the cluster's containers (running or not)."""
    out = engine.run("ps", "-a", "--filter", f"label={LABEL}={cluster_id}", "--format", "{{.Names}}", timeout=60)
    return [n for n in out.stdout.split() if n]


def states(engine: Engine, cluster_id: str) -> dict[str, str]:
    """The cluster's containers: name -> engine state (running, exited, ...)."""
    out = engine.run("ps", "-a", "--filter", f"label={LABEL}={cluster_id}", "--format", "json", timeout=60)
    return {c["Names"][0]: c.get("State", "") for c in json.loads(out.stdout or "[]") if c.get("Names")}


def logs(engine: Engine, name: str, lines: int, process: str | None = None) -> str:
    """The last ``lines`` of a container's log (the engine's), of one of its processes if given (the
    supervisor prefixes each line with the process's name)."""
    out = engine.run("logs", "--tail", log_tail(lines, process), name, timeout=60, check=False)
    text = (out.stdout + out.stderr) if out.returncode == 0 else f"(no log: {out.stderr.strip()[-300:]})"
    return "\n".join(lines_of(text, process)[-lines:])


def log_tail(lines: int, process: str | None) -> str:
    """How many lines of a container's log to read for the last ``lines`` of it (of ``process``'s:
    the other processes' lines are interleaved)."""
    return str(lines if process is None else max(lines * 50, 5000))


def lines_of(text: str, process: str | None) -> list[str]:
    """A container log's lines (those of ``process`` only, if given: the supervisor prefixes each
    line with its process's name)."""
    kept = text.splitlines()
    if process is not None:
        kept = [ln for ln in kept if ln.startswith((f"{process} | ", f"{process}-"))]
    return kept


def stop(engine: Engine, names: list[str]) -> None:
    """Stop containers through the engine (in parallel; each gets its drain time)."""
    if names:
        engine.run("stop", "-t", str(STOP_TIMEOUT_S), *names, timeout=STOP_TIMEOUT_S + 60, check=False)


def remove_all(engine: Engine, cluster_id: str) -> list[str]:
    """Remove every container of the cluster; returns their names."""
    names = ours(engine, cluster_id)
    if names:
        engine.run("rm", "-f", "-t", "10", *names, timeout=300)
    return names
