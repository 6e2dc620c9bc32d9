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

from dataclasses import replace
from pathlib import Path

from contrail_ha.image.engine import Engine
from contrail_ha.rendering.base import Layout, ProcessSpec, python
from contrail_ha.runtime import netns
from contrail_ha.runtime.supervisor_state import GroupSpec
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import Plan

IMAGE_PYTHON = "/opt/contrail-ha/venv/bin/python"
LABEL = "io.contrail-ha.cluster"
PRIVILEGED = {Role.LB.value}  # the VIP on lo, BIRD's routes, ip_nonlocal_bind (Contrail ran contrail-lb privileged)
STOP_TIMEOUT_S = 120  # Cassandra and Kafka drain before they stop


def image_argv(p: ProcessSpec) -> ProcessSpec:
    """A process as it runs in the image: our own processes with the image's interpreter."""
    return replace(p, argv=[IMAGE_PYTHON if a == python() else a for a in p.argv])


def in_image(spec: GroupSpec) -> GroupSpec:
    return replace(spec, processes=[image_argv(p) for p in spec.processes])


def name(plan: Plan, node: str, role: str) -> str:
    return f"contrail-ha-{plan.cluster_id}-{node}-{role}"


def run_args(plan: Plan, layout: Layout, node: str, role: str, spec_file: Path, image: str) -> list[str]:
    """``podman run`` arguments of one host's role supervisor."""
    ns = netns.ns_name(plan, node)
    args = ["run", "-d", "--replace", "--name", name(plan, node, role),
            "--network", f"ns:/run/netns/{ns}", "--pid", "host", "--hostname", node,
            "--user", "0:0",  # the state root is root's; per-component users come with per-host volumes
            "--label", f"{LABEL}={plan.cluster_id}", "--label", f"io.contrail-ha.host={node}",
            "--label", f"io.contrail-ha.role={role}",
            "-v", f"{layout.root}:{layout.root}", "--stop-timeout", str(STOP_TIMEOUT_S),
            "--log-opt", "max-size=10mb"]
    hosts = Path("/etc/netns") / ns / "hosts"  # the host's names (RabbitMQ's node names need them)
    if hosts.exists():
        args += ["-v", f"{hosts}:/etc/hosts:ro"]
    if role in PRIVILEGED:
        args.append("--privileged")
    # the supervisor is the main process (it reaps its descendants); no tini with the host's PID namespace
    return [*args, "--entrypoint", IMAGE_PYTHON, image, "-m", "contrail_ha.runtime.supervisor", str(spec_file)]


def start(engine: Engine, plan: Plan, layout: Layout, node: str, role: str, spec_file: Path, image: str) -> None:
    engine.run(*run_args(plan, layout, node, role, spec_file, image), timeout=120)


def ours(engine: Engine, cluster_id: str) -> list[str]:
    """The names of the cluster's containers (running or not)."""
    out = engine.run("ps", "-a", "--filter", f"label={LABEL}={cluster_id}", "--format", "{{.Names}}", timeout=60)
    return [n for n in out.stdout.split() if n]


def remove_all(engine: Engine, cluster_id: str) -> list[str]:
    """Remove every container of the cluster; returns their names."""
    names = ours(engine, cluster_id)
    if names:
        engine.run("rm", "-f", "-t", "10", *names, timeout=300)
    return names
