"""Benchmark the analytics ingest end to end, from the client namespace.

Generators (the library every service uses) send N messages to the collectors; the figure is
messages/s from the first send until the last message is queryable through VIP:8081
(collector -> Kafka acks=all -> aggregator -> Cassandra QUORUM -> analytics-api). Also the
collector acceptance rate alone (until every batch got its 200). Needs a running cluster
(``contrail-ha up``); run as root:

    .venv/bin/python benchmarks/analytics_ingest.py [-t examples/ha.yaml] [--messages 20000] [--generators 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx

from contrail_ha.operations.vip import trust
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime import netns
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.protocol import Origin
from contrail_ha.topology.plan import COLLECTOR, Plan
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[1]


async def ingest(plan: Plan, messages: int, generators: int) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    collectors = [i.address for i in plan.of(COLLECTOR)]
    gens = [Generator(Origin(source="bench", node_type="Test", module="bench", instance_id=f"{tag}-{g}"),
                      collectors, max_pending=messages + 1) for g in range(generators)]
    t0_us = int(time.time() * 1e6)
    t0 = time.monotonic()
    for g in gens:
        g.start()
    per = messages // generators
    for g in gens:
        for i in range(per):
            g.message("IngestBench", {"tag": tag, "n": i, "pad": "x" * 100})
    ok = await asyncio.gather(*(g.flush(600) for g in gens))
    accepted = time.monotonic() - t0
    if not all(ok):
        raise SystemExit("the collectors did not accept every message")
    total = per * generators
    url = f"{plan.analytics_api_url}/analytics/query"
    body = {"table": "MessageTable", "start_time": t0_us, "end_time": "now", "select_fields": ["MessageId"],
            "where": [[{"name": "Messagetype", "value": "IngestBench", "op": 1},
                       {"name": "InstanceId", "value": f"{tag}-", "op": 7}]], "limit": 10000}
    async with httpx.AsyncClient(timeout=60) as c:
        stored = 0
        while True:
            # count in windows of 10000 (the query API's cap), advancing the start time
            stored, start = 0, t0_us
            while True:
                r = await c.post(url, json={**body, "start_time": start,
                                            "select_fields": ["MessageId", "MessageTS"]})
                r.raise_for_status()
                rows = r.json()["value"]
                stored += len(rows)
                if len(rows) < 10000:
                    break
                start = max(x["MessageTS"] for x in rows) + 1
            if stored >= total or time.monotonic() - t0 > 600:
                break
            await asyncio.sleep(0.2)
    stored_s = time.monotonic() - t0
    for g in gens:
        await g.stop()
    return {"messages": total, "stored": stored, "generators": generators,
            "accepted_s": round(accepted, 2), "accepted_per_s": round(total / accepted, 1),
            "end_to_end_s": round(stored_s, 2), "end_to_end_per_s": round(total / stored_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--topology", default=str(REPO / "examples" / "ha.yaml"))
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--generators", type=int, default=4)
    args = ap.parse_args()
    plan = load_topology(Path(args.topology)).plan()
    netns.enter(netns.ns_name(plan, netns.CLIENT))
    trust(plan, Layout(DEFAULT_STATE_ROOT / plan.cluster_id))  # the VIP speaks TLS (tls.vip): its CA verifies it
    print(json.dumps(asyncio.run(ingest(plan, args.messages, args.generators)), indent=2))


if __name__ == "__main__":
    main()
