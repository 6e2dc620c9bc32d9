"""Our services (contrail-api, contrail-analytics-api, collectors, aggregators, node agents): /health."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.services import agent_state
from contrail_ha.topology.plan import (
    AGGREGATOR,
    ANALYTICS_API,
    COLLECTOR,
    CONFIG_API,
    LB_AGENT,
    NODE_AGENT,
    Instance,
    Plan,
)

HTTP_SERVICES = (CONFIG_API, ANALYTICS_API, COLLECTOR, AGGREGATOR, NODE_AGENT)
PARALLEL = 8  # concurrent /health requests of one status


def health(inst: Instance, timeout: float = 2.0, *, degraded_fails: bool = False,
           client: httpx.Client | None = None) -> tuple[bool, str]:
    """A service's /health; ``degraded_fails``: a dependency that serves but is degraded (e.g. a
    stalled analytics generator) fails too. ``up`` waits without it: a replica that started
    before the analytics plane is ready counts as ready. ``client``: one shared by many probes
    (a client per call builds a TLS context each time, costly on a busy machine)."""
    try:
        if client is None:
            r = httpx.get(f"http://{inst.address}/health", timeout=timeout)
        else:
            r = client.get(f"http://{inst.address}/health", timeout=timeout)
    except httpx.HTTPError as e:
        return False, f"no answer: {e.__class__.__name__}"
    try:
        deps = r.json().get("dependencies", {})
    except (ValueError, AttributeError):
        deps = {}
    if not isinstance(deps, dict):
        deps = {}
    if r.status_code != 200:
        bad = "; ".join(f"{n}: {d.get('reason', '')}" for n, d in deps.items()
                        if isinstance(d, dict) and not d.get("ok"))
        return False, (bad or r.text.strip())[:200]
    degraded = [f"{n}: {d.get('reason', '')}" for n, d in deps.items() if isinstance(d, dict) and d.get("degraded")]
    if degraded_fails and degraded:
        return False, "; ".join(degraded)[:200]
    return True, "healthy"


def agent(layout: Layout, host: str) -> tuple[bool, str, dict]:
    """The lb agent's own state: is this lb announcing the VIP, and why."""
    try:
        st = json.loads(agent_state(layout, host).read_text())
    except (OSError, ValueError):
        return False, "no state yet", {}
    detail = f"{'announcing' if st['announced'] else 'withdrawn'} VIP: {st['reason']}"
    return bool(st["announced"]), detail, st


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    if inst.component == LB_AGENT:
        ok, detail, _ = agent(layout, inst.host.name)
        return ok, detail
    return health(inst)


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """Every service asked at once: one after another, a busy cluster made ``status`` (and a
    drill's wait for recovery) take 9-10 s for 15 services."""
    insts = [inst for comp in HTTP_SERVICES for inst in plan.of(comp)]
    with httpx.Client(trust_env=False) as client, ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(lambda inst: health(inst, degraded_fails=True, client=client), insts))
    out = []
    for inst, (ok, detail) in zip(insts, answers, strict=True):
        target = f"{inst.host.name}/{inst.name}" if inst.name != inst.component else inst.host.name
        out.append(Check(inst.component, target, ok, detail, {"address": inst.address}))
    for inst in plan.of(LB_AGENT):
        ok, detail, st = agent(layout, inst.host.name)
        out.append(Check(LB_AGENT, inst.host.name, ok, detail, st))
    return out
