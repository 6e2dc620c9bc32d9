"""Benchmark contrail-api through the VIP, from the client namespace.

Measures reads/s and creates/s with 1 and with every replica in rotation, and the same reads
against the bare ``/hello`` endpoint of the same HTTP stack (the local ceiling). Needs a
running cluster (``contrail-ha up``); run as root:

    .venv/bin/python benchmarks/config_api.py [-t examples/ha.yaml] [--seconds 10] [--concurrency 32]

With one replica, the others are disabled through their supervisors (and re-enabled at the
end); HAProxy's health checks take them out of rotation first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp

from contrail_ha.operations.vip import trust
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime import netns
from contrail_ha.topology.plan import CONFIG_API, ROLE_OF, Plan
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[1]


async def run_load(url_for: callable, method: str, body_for: callable | None, seconds: float,
                   concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        async def worker(w: int) -> None:
            nonlocal errors
            i = 0
            while time.monotonic() < deadline:
                i += 1
                t0 = time.perf_counter()
                try:
                    kw = {"json": body_for(w, i)} if body_for else {}
                    async with s.request(method, url_for(w, i), **kw) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - t0
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "errors": errors, "per_s": round((n - errors) / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else 0,
            "p99_ms": round(latencies[int(n * 0.99) - 1] * 1000, 2) if n else 0}


def set_replicas(plan: Plan, layout: Layout, keep: int) -> None:
    """Enable the first ``keep`` contrail-api replicas, disable the others (supervisor stops them)."""
    for i, inst in enumerate(plan.of(CONFIG_API)):
        flag = layout.host_dir(inst.host.name) / "supervisor" / ROLE_OF[CONFIG_API].value / f"{inst.name}.enabled"
        if i < keep:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)


async def wait_backends(plan: Plan, layout: Layout, up: int, timeout: float = 60) -> None:
    from contrail_ha.probes import haproxy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = True
        for c in haproxy.checks(plan, layout):
            backend = (c.data.get("backends") or {}).get("contrail-api-backend", {})
            ok = ok and backend.get("up") == up
        if ok:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"HAProxy did not settle on {up} contrail-api backends")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--topology", default=str(REPO / "examples" / "ha.yaml"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    plan = load_topology(a.topology).plan()
    layout = Layout(DEFAULT_STATE_ROOT / plan.cluster_id)
    netns.enter(netns.ns_name(plan, netns.CLIENT))
    trust(plan, layout)  # the VIP speaks TLS (tls.vip): its CA verifies it
    vip = plan.config_api_url
    n_all = len(plan.of(CONFIG_API))

    async with aiohttp.ClientSession() as s:
        tag = uuid.uuid4().hex[:6]
        async with s.post(f"{vip}/projects", json={"project": {"fq_name": ["default-domain", f"bench-{tag}"]}}) as r:
            project = (await r.json())["project"]
        async with s.post(f"{vip}/virtual-networks", json={"virtual-network": {
                "fq_name": ["default-domain", project["name"], "read-me"], "parent_type": "project"}}) as r:
            target = (await r.json())["virtual-network"]["uuid"]

    results: dict[str, dict[str, float]] = {}
    try:
        for replicas in sorted({1, n_all}):
            set_replicas(plan, layout, replicas)
            await wait_backends(plan, layout, replicas)
            results[f"hello, {replicas} replica(s)"] = await run_load(
                lambda w, i: f"{vip}/hello", "GET", None, a.seconds, a.concurrency)
            results[f"read, {replicas} replica(s)"] = await run_load(
                lambda w, i: f"{vip}/virtual-network/{target}", "GET", None, a.seconds, a.concurrency)
            results[f"create, {replicas} replica(s)"] = await run_load(
                lambda w, i: f"{vip}/virtual-networks", "POST",
                lambda w, i, r=replicas: {"virtual-network": {
                    "fq_name": ["default-domain", project["name"], f"b{r}-{w}-{i}-{uuid.uuid4().hex[:4]}"],
                    "parent_type": "project"}}, a.seconds, a.concurrency)
    finally:
        set_replicas(plan, layout, n_all)
        await wait_backends(plan, layout, n_all)
    if a.json:
        print(json.dumps(results, indent=2))
        return
    print(f"contrail-api through the VIP {plan.vip}, {a.concurrency} concurrent clients, {a.seconds:.0f} s each")
    print(f"{'workload':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for k, v in results.items():
        print(f"{k:28} {v['per_s']:>9} {v['p50_ms']:>8} {v['p99_ms']:>8} {v['errors']:>7}")


if __name__ == "__main__":
    if sys.platform != "linux":
        sys.exit("linux only")
    asyncio.run(main())
