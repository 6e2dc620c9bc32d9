"""Cluster status read from the components themselves, plus the supervisors' process states."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from contrail_ha.probes import bird, cassandra, haproxy, kafka, rabbitmq, services, zookeeper
from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import cluster
from contrail_ha.runtime.supervisor_state import SupervisorDir
from contrail_ha.topology.plan import Plan

# every component probe module with its name, in the order of the status table
PROBES: list[tuple[str, ModuleType]] = [("zookeeper", zookeeper), ("rabbitmq", rabbitmq), ("cassandra", cassandra),
                                        ("kafka", kafka), ("services", services), ("haproxy", haproxy),
                                        ("bird", bird)]


def process_checks(plan: Plan, layout: Layout) -> list[Check]:
    """Every supervised process: running or not, with restarts."""
    out: list[Check] = []
    for g in cluster.recorded_groups(layout):
        pid = cluster.supervisor_pid(g)
        if pid is None:
            out.append(Check("supervisor", f"{g.node}/{g.role}", False, "supervisor not running"))
            continue
        try:
            state = SupervisorDir(g.run_dir).read_state()
        except (OSError, ValueError):
            out.append(Check("supervisor", f"{g.node}/{g.role}", False, "no state yet"))
            continue
        for name, st in state["processes"].items():
            ok = st["state"] == "running"
            detail = f"{st['state']} pid {st['pid']}" if ok else f"{st['state']} ({st['last_exit'] or 'never ran'})"
            if st["restarts"]:
                detail += f", {st['restarts']} restarts"
            out.append(Check("process", f"{g.node}/{name}", ok, detail, st))
    return out


def container_checks(plan: Plan, layout: Layout) -> list[Check]:
    """On the container runtime: every container's engine state, and its health check - the very
    check its engine runs (:mod:`contrail_ha.runtime.health`), run here in-process: a ``podman
    healthcheck run`` per container on every poll would starve 2 cores (BFD timers first)."""
    if cluster.runtime_of(layout)["runtime"] != "containers":
        return []
    from contrail_ha.image.engine import Engine, EngineError
    from contrail_ha.runtime import containers, health

    try:
        states = containers.states(Engine(), plan.cluster_id)
    except EngineError as e:
        return [Check("container", "engine", False, str(e))]
    hosts = {h.name for h in plan.topology.hosts}

    def one(g: cluster.Group) -> Check:
        name = containers.name(g.node, g.role)
        state = states.get(name)
        if state != "running":
            return Check("container", name, False, state or "missing")
        problems = health.problems(g.spec)
        return Check("container", name, not problems,
                     "running, " + ("healthy" if not problems else "unhealthy: " + "; ".join(problems)))

    with ThreadPoolExecutor(4) as ex:
        return list(ex.map(one, [g for g in cluster.recorded_groups(layout) if g.node in hosts]))


def collect(plan: Plan, layout: Layout) -> list[Check]:
    """All checks; probes run in parallel, each bounded by its own timeouts."""
    def run(entry: tuple[str, ModuleType]) -> list[Check]:
        name, probe = entry
        try:
            checks: list[Check] = probe.checks(plan, layout)
            return checks
        except Exception as e:
            return [Check(name, "cluster", False, f"probe failed: {e.__class__.__name__}: {e}")]

    with ThreadPoolExecutor(len(PROBES)) as ex:
        results = list(ex.map(run, PROBES))
    out = container_checks(plan, layout) + process_checks(plan, layout)
    for r in results:
        out.extend(r)
    return out
