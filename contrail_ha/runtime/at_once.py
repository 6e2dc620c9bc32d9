"""``up --all-at-once``: every host's containers started together, with no readiness waves.

This is what an operator does with the exported files: ``docker compose up -d`` on every host, in
any order. Nothing then enables processes in waves, sets RabbitMQ's policy or makes Kafka topics:
the containers order themselves (a new member's join gate, :attr:`ProcessSpec.join_after`; boot
definitions; the collectors making their topics; every service retrying its dependencies). Run
locally, it is the proof that the exported files start a cluster alone; ``up`` without it stays
the faster path on 2 cores (one JVM burst at a time).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from contrail_ha.operations.status import collect
from contrail_ha.rendering import pki
from contrail_ha.rendering.base import Layout, Rendered
from contrail_ha.runtime import cluster, netns
from contrail_ha.runtime.record import runtime_of
from contrail_ha.topology.plan import Plan

Progress = Callable[[str], None]
HEALTH_TIMEOUT_S = 900.0  # every JVM starting at once on 2 cores: minutes, not seconds
REPORT_EVERY_S = 20.0


def up(plan: Plan, layout: Layout, image: str, progress: Progress = print, topology_text: str | None = None,
       timeout: float = HEALTH_TIMEOUT_S) -> float:
    """Start a stopped cluster's containers at once, then wait until every check is healthy.
    Returns the wall time in seconds."""
    t0 = time.monotonic()
    if any(cluster.supervisor_pid(g) for g in cluster.groups(plan, layout)):
        raise cluster.UpError("--all-at-once starts a cluster that is down: `contrail-ha down` first")
    gs = cluster.prepare(plan, layout, progress, topology_text, image, orchestrated=False)
    if runtime_of(layout)["runtime"] != "containers":
        raise cluster.UpError("--all-at-once runs containers only")
    by_host: dict[str, list[tuple[cluster.Group, list[Rendered]]]] = {}
    for g, r in gs:
        by_host.setdefault(g.node, []).append((g, r))

    def start_host(host: str) -> None:
        for g, r in by_host[host]:
            cluster.apply(plan, layout, g, r)

    progress(f"starting the containers of {len(by_host)} hosts at once (no waves)")
    with ThreadPoolExecutor(len(by_host)) as ex:
        list(ex.map(start_host, by_host))
    netns.enter(netns.ns_name(plan, netns.CLIENT))  # probes reach the hosts as a user would
    cluster.enable(layout, plan, netns.ROUTER, cluster.ROUTER_ROLE,
                   [p.name for p in cluster.render_router(plan, layout).processes])
    wait_healthy(plan, layout, progress, t0, timeout)
    elapsed = time.monotonic() - t0
    (layout.root / "cluster.json").write_text(json.dumps({"state": "up", "up_seconds": round(elapsed, 1),
                                                         "at": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    progress(f"cluster {plan.cluster_id} is up in {elapsed:.1f}s (all at once); {pki.endpoints(plan, layout)}")
    return elapsed


def wait_healthy(plan: Plan, layout: Layout, progress: Progress, t0: float, timeout: float) -> None:
    """Until every status check passes; what is still unhealthy every :data:`REPORT_EVERY_S`."""
    last_report = 0.0
    while True:
        bad = [c for c in collect(plan, layout) if not c.ok]
        now = time.monotonic()
        if not bad:
            return
        if now - t0 > timeout:
            raise cluster.UpError(f"not healthy after {timeout:.0f}s: "
                                  + "; ".join(f"{c.component}/{c.target}: {c.detail}" for c in bad[:8]))
        if now - last_report >= REPORT_EVERY_S:
            progress(f"  {len(bad)} checks not healthy yet, e.g. {bad[0].component}/{bad[0].target}: "
                     f"{bad[0].detail[:100]}")
            last_report = now
        time.sleep(2)
