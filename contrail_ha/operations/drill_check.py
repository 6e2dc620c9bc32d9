"""The drill's verdict: the figures of one fault (``Result``) from the workload's samples, and the
data check after it (every acknowledged create and analytics message there exactly once)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

from contrail_ha.operations.drill_workload import Sample, Workload
from contrail_ha.topology.plan import CONFIG_API, Plan


@dataclass
class Result:
    fault: str
    target: dict[str, Any]
    requests: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    longest_outage_s: float = 0.0  # the longest span in which requests sent after the injection failed
    longest_gap_s: float = 0.0  # the longest span after the injection in which no request completed well
    writes_back_s: float = 0.0  # from the injection until creates succeed again for good (0: none failed)
    p99_during_fault_ms: float = 0.0
    max_latency_ms: dict[str, float] = field(default_factory=dict)  # during the fault, by request kind
    recovery_s: float = 0.0
    recovered: bool = True
    acked_creates: int = 0
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)  # "uuid: what the VIP answered", at most 10
    mismatched: int = 0
    duplicate_fq_names: int = 0
    duplicate_vn_ids: int = 0
    replicas_disagree: int = 0  # acked objects some contrail-api replica reads differently (or not at all)
    analytics_sent: int = 0
    analytics_lost: int = 0
    analytics_duplicates: int = 0
    minority_writes: dict[str, int] = field(default_factory=dict)  # partition only: status -> count
    out_of_rotation_s: float | None = None  # killed API replica: until every lb's HAProxy has it DOWN
    last_unhealthy: list[str] = field(default_factory=list)  # the checks that were the last to recover
    register_ops: int = 0  # the register's history (drill_register): operations checked
    register_unknown: int = 0  # of which writes with an unknown outcome
    register_linearizable: bool = True
    register_undecided: bool = False  # the checker's search gave up on this history
    register_window: list[str] = field(default_factory=list)  # on a violation: the ops that cannot be ordered
    graph_ops: int = 0  # the object graph's history (drill_graph): requests checked
    graph_answers: dict[str, int] = field(default_factory=dict)  # "<kind> <status>" -> count
    graph_violations: int = 0  # orphans, dangling refs, lost, duplicate addresses or tag ids, 5xx
    graph_examples: list[str] = field(default_factory=list)  # the first violations, with their requests

    @property
    def data_ok(self) -> bool:
        return not (self.lost or self.mismatched or self.duplicate_fq_names or self.duplicate_vn_ids
                    or self.replicas_disagree or self.analytics_lost or self.analytics_duplicates
                    or self.minority_writes.get("200") or not self.register_linearizable
                    or self.graph_violations)


async def data_check(plan: Plan, wl: Workload, res: Result) -> None:
    """Every acked create readable with its content (through the VIP and from every replica), no duplicate
    fq_name or VN id, every acked analytics message stored once."""
    base = wl.vip.config
    res.acked_creates = len(wl.acked)
    replicas = [f"http://{i.address}" for i in plan.of(CONFIG_API)]
    async with wl.vip.session() as s:
        sem = asyncio.Semaphore(16)

        statuses: dict[str, int] = {}

        async def read(url: str) -> dict[str, Any] | None:
            async with sem, s.get(url) as r:
                statuses[url] = r.status
                return (await r.json())["virtual-network"] if r.status == 200 else None

        def same(got: dict[str, Any] | None, sent: dict[str, Any]) -> bool:
            return got is not None and got["fq_name"] == sent["fq_name"] and \
                got.get("display_name") == sent["display_name"]

        items = list(wl.acked.items())
        via_vip = await asyncio.gather(*(read(f"{base}/virtual-network/{u}") for u, _ in items))
        for got, (u, sent) in zip(via_vip, items, strict=True):
            if got is None:
                res.lost += 1
                if len(res.lost_examples) < 10:
                    res.lost_examples.append(f"{u}: HTTP {statuses.get(f'{base}/virtual-network/{u}')}")
            elif not same(got, sent):
                res.mismatched += 1
        # the replicas agree: each reads the same content (a sample, from each one directly)
        sample = random.sample(items, min(len(items), 100))
        for rep in replicas:
            seen = await asyncio.gather(*(read(f"{rep}/virtual-network/{u}") for u, _ in sample))
            res.replicas_disagree += sum(1 for got, (_u, sent) in zip(seen, sample, strict=True)
                                         if not same(got, sent))
        async with s.get(f"{base}/virtual-networks", params={"parent_fq_name_str": f"default-domain:{wl.project}",
                                                             "detail": "True",
                                                             "fields": "virtual_network_network_id"}) as r:
            listed = [o["virtual-network"] for o in (await r.json())["virtual-networks"]]
    names = [tuple(o["fq_name"]) for o in listed]
    ids = [o.get("virtual_network_network_id") for o in listed]
    res.duplicate_fq_names = len(names) - len(set(names))
    res.duplicate_vn_ids = len(ids) - len(set(ids))
    if wl.generator is not None:
        res.analytics_sent = len(wl.messages)
        stored = await stored_messages(wl)
        want = set(wl.messages)
        res.analytics_lost = len(want - set(stored))
        res.analytics_duplicates = len(stored) - len(set(stored))


async def stored_messages(wl: Workload, timeout: float = 120.0) -> list[str]:
    """Ids of the drill's messages as the analytics API returns them, once all arrived (or the timeout)."""
    url = f"{wl.vip.analytics}/analytics/query"
    where = [[{"name": "Messagetype", "value": "DrillMessage", "op": 1},
              {"name": "InstanceId", "value": wl.project, "op": 1}]]
    deadline = time.monotonic() + timeout
    found: list[str] = []
    async with wl.vip.session() as s:
        while True:
            found, start = [], wl.started_us
            while True:  # windows of at most 10000 rows (the API's cap)
                body = {"table": "MessageTable", "start_time": start, "end_time": "now", "where": where,
                        "select_fields": ["MessageId", "MessageTS"], "limit": 10000}
                async with s.post(url, json=body) as r:
                    rows = (await r.json())["value"] if r.status == 200 else []
                found += [x["MessageId"] for x in rows]
                if len(rows) < 10000:
                    break
                start = max(x["MessageTS"] for x in rows) + 1
            if len(set(found)) >= len(wl.messages) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(1)


def outage(samples: list[Sample], t_inject: float) -> float:
    """The longest client-visible outage: in the order requests were sent, from the first of a run of
    failed requests (not before the injection) until the next request that succeeded was sent - how
    long a new request failed, as a poller sees it; a slow success is latency, not outage."""
    longest, start = 0.0, None
    for x in sorted(samples, key=lambda x: x.sent):
        if not x.ok:
            if start is None and x.t >= t_inject:
                start = max(x.sent, t_inject)
        elif start is not None:
            longest, start = max(longest, x.sent - start), None
    if start is not None:  # failing until the end of the workload
        longest = max(longest, max(x.t for x in samples) - start)
    return longest


def summarise(res: Result, wl: Workload, t_inject: float, t_heal: float) -> None:
    samples = sorted(wl.samples, key=lambda x: x.t)
    res.requests = len(samples)
    for x in samples:
        if not x.ok:
            key = f"{x.kind}: {x.error}"
            res.failed[key] = res.failed.get(key, 0) + 1
    res.longest_outage_s = round(outage(samples, t_inject), 3)
    # the longest time after the injection without any request completing well (latency included)
    ok_times = [t_inject] + [x.t for x in samples if x.ok and x.t >= t_inject]
    res.longest_gap_s = round(max((b - a for a, b in itertools.pairwise(ok_times)), default=0.0), 3)
    failed_creates = [x.t for x in samples if x.kind == "create" and not x.ok and x.t >= t_inject]
    if failed_creates:
        last = max(failed_creates)
        back = next((x.t for x in samples if x.kind == "create" and x.ok and x.t > last), last)
        res.writes_back_s = round(back - t_inject, 3)
    during = sorted(x.latency for x in samples if t_inject <= x.t <= t_heal)
    if during:
        res.p99_during_fault_ms = round(during[max(0, int(len(during) * 0.99) - 1)] * 1000, 1)
    for x in samples:
        if t_inject <= x.t <= t_heal:
            res.max_latency_ms[x.kind] = max(res.max_latency_ms.get(x.kind, 0.0), round(x.latency * 1000, 1))
