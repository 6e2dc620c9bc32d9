"""contrail-lb HA: the lb agent withdraws the VIP when its HAProxy dies; the router moves to the other lb."""

from __future__ import annotations

import time

import httpx

from contrail_ha.operations import faults
from contrail_ha.probes import bird, services
from tests.e2e.conftest import Cluster
from tests.helpers.proc import wait_for as wait


def active_lb(cluster: Cluster) -> str:
    route = bird.kernel_route(cluster.plan)
    gw = route.get("gateway")
    return next(h.name for h in cluster.plan.lbs if str(h.ip) == gw)


def test_haproxy_killed_vip_moves_to_other_lb(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    vip = f"{plan.config_api_url}/hello"
    first = wait(lambda: active_lb(cluster), 30, "VIP route on the router")
    other = next(h.name for h in plan.lbs if h.name != first)
    faults.kill(plan, layout, first, "haproxy", hold=True)
    t0 = time.monotonic()
    try:
        wait(lambda: active_lb(cluster) == other, 15, f"VIP moved from {first} to {other}")
        moved = time.monotonic() - t0
        r = wait(lambda: (x := httpx.get(vip, timeout=2)).status_code == 200 and x, 15, "API through the VIP")
        print(f"\nHAProxy on {first} killed: VIP routed via {other} after {moved:.2f}s; "
              f"served after {time.monotonic() - t0:.2f}s")
        assert r.json()["hello"] == "contrail-api"
    finally:
        faults.heal(plan, layout, first, "haproxy")
    # the healed lb announces again (the router may keep the other: no fail-back by design)
    faults.wait_running(plan, layout, first, "haproxy", timeout=30)
    wait(lambda: all(c.ok for c in bird.checks(plan, layout) if c.target == first), 30, f"{first} healthy")
    wait(lambda: services.ready(plan, layout, plan.instance("lb-agent", first))[0], 30, f"{first} announcing")
