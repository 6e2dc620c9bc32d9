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
    for g in cluster._all_groups(plan, layout):
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
    out = process_checks(plan, layout)
    for r in results:
        out.extend(r)
    return out
