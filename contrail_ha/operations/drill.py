"""Fail-over drills: a steady workload through the VIP while one real fault is injected and healed.

Each drill: warm up, inject the fault (kill -9 held down by the supervisor, a pulled cable, or a
partition of one controller from the others with nftables), keep the workload running, heal, wait
until every status check is healthy again, then check the data: every create acknowledged during
the drill is readable with the same content through the VIP and from every contrail-api replica,
no fq_name or virtual-network id is duplicated, and every analytics message the collectors
acknowledged is stored exactly once. A partitioned controller's replica must refuse writes (503).

The parts: ``drill_faults`` (the fault catalogue), ``drill_workload`` (the load through the VIP),
``drill_check`` (the figures and the data check); this module runs one drill and saves the results.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from contrail_ha.operations.drill_check import Result, data_check, outage, summarise
from contrail_ha.operations.drill_faults import FAULTS, Fault
from contrail_ha.operations.drill_graph import Graph
from contrail_ha.operations.drill_graph_check import check as graph_check
from contrail_ha.operations.drill_register import Register, project_uuid
from contrail_ha.operations.drill_workload import (
    CLIENT_TIMEOUT_S,
    RATE,
    Sample,
    Workload,
    cleanup,
    probe_minority,
    setup_project,
)
from contrail_ha.operations.vip import Vip
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import Plan

__all__ = ["CLIENT_TIMEOUT_S", "FAULTS", "RATE", "Fault", "Result", "Sample", "Workload", "as_dict", "cleanup",
           "outage", "run_fault", "save", "unhealthy"]

_summarise = summarise  # the name the unit tests know
GRAPH_WAIT_S = 120.0  # after recovery, how long the graph may still run to tear a generation down


def unhealthy(plan: Plan, layout: Layout) -> list[str]:
    """The status checks that are not healthy, as ``component/target: detail`` (of a cluster
    deployed over SSH: its containers' health checks there, and the VIP's APIs)."""
    from contrail_ha.operations.status import collect
    from contrail_ha.runtime.record import deployed

    if deployed(layout):
        from contrail_ha.deploy import remote

        return [f"{r.container}/{r.host}: {r.state}/{r.health} {r.detail}".strip()[:160]
                for r in remote.status(plan, layout) if not r.ok]
    return [f"{c.component}/{c.target}: {c.detail}"[:160] for c in collect(plan, layout) if not c.ok]


async def _out_of_rotation(plan: Plan, layout: Layout, server: str, t0: float, timeout: float = 15.0) -> float | None:
    """Seconds from ``t0`` until every lb's HAProxy reports ``server`` DOWN (None: not within ``timeout``)."""
    from contrail_ha.probes.haproxy import command, parse_stat
    from contrail_ha.rendering.haproxy import stats_socket

    def down_everywhere() -> bool:
        for lb in plan.lbs:
            try:
                rows = parse_stat(command(stats_socket(layout, lb.name), "show stat"))
            except Exception:
                continue  # an lb whose HAProxy is not answering serves nobody
            if any(r.get("svname") == server and r.get("status", "").startswith("UP") for r in rows):
                return False
        return True

    while time.monotonic() - t0 < timeout:
        if await asyncio.to_thread(down_everywhere):
            return round(time.monotonic() - t0, 3)
        await asyncio.sleep(0.05)
    return None


async def run_fault(plan: Plan, layout: Layout, fault: Fault, *, fault_seconds: float = 8.0,
                    recovery_timeout: float = 300.0, rate: float = RATE, keep: bool = False,
                    progress: Callable[[str], None] = print) -> Result:
    """One drill: workload, inject, hold, heal, wait for full health, data check."""
    why = fault.needs(plan)
    if why:
        raise ValueError(f"refusing to inject {fault.name}: the topology cannot survive it: {why}")
    vip = Vip.of(plan, layout)
    project = await setup_project(vip)
    wl = Workload(plan, vip, project, rate=rate)
    runner = asyncio.get_running_loop().create_task(wl.run())
    register = Register(plan, vip, await project_uuid(vip, project))
    registering = asyncio.get_running_loop().create_task(register.run())
    graph = Graph(plan, vip)
    await graph.setup()
    graphing = asyncio.get_running_loop().create_task(graph.run())
    await asyncio.sleep(2)  # warm-up: the workload reaches its steady rate
    t_inject = time.monotonic()
    done = await asyncio.to_thread(fault.inject, plan, layout)
    progress(f"{fault.name}: injected ({fault.description}) on {done.get('host')}")
    # how fast a killed replica leaves the lbs' rotation: read from their HAProxy stats sockets, here
    from contrail_ha.runtime.record import deployed

    rotation = asyncio.get_running_loop().create_task(_out_of_rotation(plan, layout, done["server"], t_inject)) \
        if "server" in done and not deployed(layout) else None
    minority: dict[str, int] = {}
    probe_stop = asyncio.Event()
    probe = asyncio.get_running_loop().create_task(
        probe_minority(done["minority"], project, probe_stop, minority)) if "minority" in done else None
    try:
        await asyncio.sleep(max(fault_seconds, fault.min_seconds))
        probe_stop.set()
        if probe is not None:
            await probe
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): never leave the fault in place
        progress(f"{fault.name}: interrupted; healing")
        fault.heal(plan, layout, done)
        raise
    t_heal = time.monotonic()
    await asyncio.to_thread(fault.heal, plan, layout, done)
    progress(f"{fault.name}: healed; waiting for every check to be healthy")
    deadline = t_heal + recovery_timeout
    recovered, last_unhealthy = True, []
    while bad := await asyncio.to_thread(unhealthy, plan, layout):
        last_unhealthy = bad
        if time.monotonic() > deadline:
            recovered = False
            break
        await asyncio.sleep(1)
    res = Result(fault.name, {k: v for k, v in done.items() if k != "minority"},
                 recovery_s=round(time.monotonic() - t_heal, 1), recovered=recovered, minority_writes=minority,
                 out_of_rotation_s=await rotation if rotation is not None else None, last_unhealthy=last_unhealthy)
    await asyncio.sleep(1)
    if not await graph.enough(t_inject, timeout=GRAPH_WAIT_S):
        progress(f"{fault.name}: within {GRAPH_WAIT_S:.0f}s of recovery the graph made {len(graph.history)} "
                 f"requests and finished {len(graph.torn)} teardowns")
    wl.stop.set()
    register.stop.set()
    graph.stop.set()
    await runner
    await registering
    await graphing
    await wl.flush()
    summarise(res, wl, t_inject, t_heal)
    reg = await asyncio.to_thread(register.check)
    res.register_ops, res.register_unknown = reg.ops, reg.unknown
    res.register_linearizable, res.register_window = reg.linearizable, reg.window
    res.register_undecided = reg.undecided
    await data_check(plan, wl, res)
    g = await graph_check(graph)
    res.graph_ops, res.graph_answers = g.ops, g.answers
    res.graph_violations, res.graph_examples = len(g.violations), g.violations[:20]
    if not keep:
        try:
            progress(f"{fault.name}: deleted the drill's {await cleanup(vip, project)} objects "
                     f"and {await graph.cleanup()} graph generations")
        except (TimeoutError, aiohttp.ClientError) as e:  # measured already: report, go on
            progress(f"{fault.name}: could not delete all the drill's objects (project {project}): "
                     f"{e.__class__.__name__}: {e}")
    progress(f"{fault.name}: {res.requests} requests, failed {sum(res.failed.values())}, "
             f"longest outage {res.longest_outage_s}s (gap {res.longest_gap_s}s), writes back {res.writes_back_s}s, "
             f"recovery {res.recovery_s}s, analytics {res.analytics_sent} sent/{res.analytics_lost} lost, "
             f"register {res.register_ops} ops {register_verdict(res)}, "
             f"graph {res.graph_ops} ops {res.graph_violations} violations, "
             f"data {'ok' if res.data_ok else 'NOT OK'}")
    return res


def save(results: list[Result], layout: Layout, path: Path | None = None) -> Path:
    """Write ``results`` to ``path`` (default: a new file under the state root's ``drills/``)."""
    d = layout.root / "drills"
    d.mkdir(parents=True, exist_ok=True)
    f = path or d / f"drill-{time.strftime('%Y%m%dT%H%M%S')}.json"
    f.write_text(json.dumps([as_dict(r) for r in results], indent=2))
    return f


def register_verdict(res: Result) -> str:
    if res.register_undecided:
        return "undecided"
    return "linearizable" if res.register_linearizable else "NOT linearizable"


def as_dict(r: Result) -> dict[str, Any]:
    return {**asdict(r), "data_ok": r.data_ok}
