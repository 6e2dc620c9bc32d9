"""Fail-over drills: a steady workload through the VIP while one real fault is injected and healed.

Each drill: warm up, inject the fault (kill -9 held down by the supervisor, or a pulled cable),
keep the workload running, heal, wait until every status check is healthy again, then check the
data: every create acknowledged during the drill is readable with the same content, and no
fq_name or virtual-network id is duplicated.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from contrail_ha.operations import faults
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import ANALYTICS_DB, CONFIG_API, CONFIG_DB, KAFKA, RABBITMQ, ZOOKEEPER, Plan


@dataclass(frozen=True)
class Fault:
    """One fault: what it breaks, and the smallest topology that survives it."""

    name: str
    description: str
    needs: Callable[[Plan], str | None]  # None if the topology survives it, else why not
    inject: Callable[[Plan, Layout], dict[str, Any]]  # returns what was done (for heal)
    heal: Callable[[Plan, Layout, dict[str, Any]], None]


def _at_least(attr: str, n: int, what: str) -> Callable[[Plan], str | None]:
    def check(plan: Plan) -> str | None:
        have = len(getattr(plan, attr))
        return None if have >= n else f"needs at least {n} {what} hosts to survive (the topology has {have})"
    return check


def _kill(component: str, pick: Callable[[Plan], str]) -> Callable[[Plan, Layout], dict[str, Any]]:
    def inject(plan: Plan, layout: Layout) -> dict[str, Any]:
        host = pick(plan)
        name = plan.instance(component, host).name
        faults.kill(plan, layout, host, name, hold=True)
        return {"host": host, "processes": [name]}
    return inject


def _heal_processes(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    for name in done.get("processes", []):
        faults.heal(plan, layout, done["host"], name)


def _last(component: str) -> Callable[[Plan], str]:
    return lambda plan: plan.of(component)[-1].host.name


def _zk_leader(plan: Plan) -> str:
    from contrail_ha.probes import zookeeper

    leader = zookeeper.leader(plan)
    if leader is None:
        raise RuntimeError("ZooKeeper has no leader to kill")
    return leader.host.name


def _active_lb(plan: Plan) -> str:
    from contrail_ha.probes import bird

    gw = bird.kernel_route(plan).get("gateway")
    return next(h.name for h in plan.lbs if str(h.ip) == gw)


def _kill_lb(plan: Plan, layout: Layout) -> dict[str, Any]:
    host = _active_lb(plan)
    names = ["lb-agent", "bird", "haproxy"]
    for n in names:
        faults.kill(plan, layout, host, n, hold=True)
    return {"host": host, "processes": names}


def _cut_lb(plan: Plan, layout: Layout) -> dict[str, Any]:
    host = _active_lb(plan)
    faults.cut_link(plan, host)
    return {"host": host, "link": True}


def _restore(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    faults.restore_link(plan, done["host"])


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("api-replica", "kill -9 one contrail-api replica", _at_least("controllers", 2, "controller"),
          _kill(CONFIG_API, _last(CONFIG_API)), _heal_processes),
    Fault("zk-leader", "kill -9 the ZooKeeper leader", _at_least("controllers", 3, "controller"),
          _kill(ZOOKEEPER, _zk_leader), _heal_processes),
    Fault("lb-kill", "kill -9 the active lb's HAProxy, BIRD and lb agent", _at_least("lbs", 2, "lb"),
          _kill_lb, _heal_processes),
    Fault("lb-link", "cut the active lb's link", _at_least("lbs", 2, "lb"), _cut_lb, _restore),
    Fault("rabbitmq-node", "kill -9 a RabbitMQ node", _at_least("controllers", 3, "controller"),
          _kill(RABBITMQ, _last(RABBITMQ)), _heal_processes),
    Fault("config-db-node", "kill -9 a config-DB Cassandra node", _at_least("controllers", 3, "controller"),
          _kill(CONFIG_DB, _last(CONFIG_DB)), _heal_processes),
    Fault("analytics-db-node", "kill -9 an analytics-DB Cassandra node", _at_least("analyticsdb", 3, "analyticsdb"),
          _kill(ANALYTICS_DB, _last(ANALYTICS_DB)), _heal_processes),
    Fault("kafka-broker", "kill -9 a Kafka broker", _at_least("analyticsdb", 3, "analyticsdb"),
          _kill(KAFKA, _last(KAFKA)), _heal_processes),
]}


@dataclass
class Sample:
    t: float  # completion time (monotonic)
    kind: str  # read | create | analytics
    ok: bool
    latency: float
    error: str = ""


@dataclass
class Result:
    fault: str
    target: dict[str, Any]
    requests: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    longest_outage_s: float = 0.0
    p99_during_fault_ms: float = 0.0
    recovery_s: float = 0.0
    acked_creates: int = 0
    lost: int = 0
    mismatched: int = 0
    duplicate_fq_names: int = 0
    duplicate_vn_ids: int = 0

    @property
    def data_ok(self) -> bool:
        return not (self.lost or self.mismatched or self.duplicate_fq_names or self.duplicate_vn_ids)


class Workload:
    """Reads and creates (unique names) on the config API and analytics reads, through the VIP."""

    def __init__(self, plan: Plan, project: str, concurrency: int = 8) -> None:
        self.base = f"http://{plan.vip}:{plan.ports.config_api}"
        self.analytics = f"http://{plan.vip}:{plan.ports.analytics_api}/analytics"
        self.project = project
        self.concurrency = concurrency
        self.samples: list[Sample] = []
        self.acked: dict[str, dict[str, Any]] = {}  # uuid -> what the create sent
        self.stop = asyncio.Event()

    async def _one(self, s: aiohttp.ClientSession, w: int, i: int) -> None:
        roll = random.random()
        t0 = time.monotonic()
        kind = "create" if roll < 0.4 or not self.acked else ("analytics" if roll > 0.9 else "read")
        err = ""
        try:
            if kind == "create":
                name = f"d-{w}-{i}-{uuid.uuid4().hex[:8]}"
                body = {"fq_name": ["default-domain", self.project, name], "parent_type": "project",
                        "display_name": f"drill {name}"}
                async with s.post(f"{self.base}/virtual-networks", json={"virtual-network": body}) as r:
                    text = await r.text()
                    ok = r.status == 200
                    if ok:
                        self.acked[json.loads(text)["virtual-network"]["uuid"]] = body
                    else:
                        err = f"HTTP {r.status}"
            elif kind == "read":
                u = random.choice(list(self.acked))
                async with s.get(f"{self.base}/virtual-network/{u}") as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
            else:
                async with s.get(self.analytics) as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
        except (TimeoutError, aiohttp.ClientError) as e:
            ok, err = False, e.__class__.__name__
        self.samples.append(Sample(time.monotonic(), kind, ok, time.monotonic() - t0, err))

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            async def worker(w: int) -> None:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    await self._one(s, w, i)
            await asyncio.gather(*(worker(w) for w in range(self.concurrency)))


async def _setup_project(plan: Plan) -> str:
    name = f"drill-{uuid.uuid4().hex[:8]}"
    base = f"http://{plan.vip}:{plan.ports.config_api}"
    async with aiohttp.ClientSession() as s, s.post(
            f"{base}/projects", json={"project": {"fq_name": ["default-domain", name]}}) as r:
        if r.status != 200:
            raise RuntimeError(f"cannot create the drill project: HTTP {r.status} {await r.text()}")
    return name


async def _data_check(plan: Plan, wl: Workload, res: Result) -> None:
    base = f"http://{plan.vip}:{plan.ports.config_api}"
    res.acked_creates = len(wl.acked)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        for u, sent in wl.acked.items():
            async with s.get(f"{base}/virtual-network/{u}") as r:
                if r.status != 200:
                    res.lost += 1
                    continue
                got = (await r.json())["virtual-network"]
                if got["fq_name"] != sent["fq_name"] or got.get("display_name") != sent["display_name"]:
                    res.mismatched += 1
        async with s.get(f"{base}/virtual-networks", params={"parent_fq_name_str": f"default-domain:{wl.project}",
                                                             "detail": "True",
                                                             "fields": "virtual_network_network_id"}) as r:
            listed = [o["virtual-network"] for o in (await r.json())["virtual-networks"]]
    names = [tuple(o["fq_name"]) for o in listed]
    ids = [o.get("virtual_network_network_id") for o in listed]
    res.duplicate_fq_names = len(names) - len(set(names))
    res.duplicate_vn_ids = len(ids) - len(set(ids))


def _summarise(res: Result, wl: Workload, t_inject: float, t_heal: float) -> None:
    samples = sorted(wl.samples, key=lambda x: x.t)
    res.requests = len(samples)
    for x in samples:
        if not x.ok:
            key = f"{x.kind}: {x.error}"
            res.failed[key] = res.failed.get(key, 0) + 1
    # longest client-visible outage: the longest span, after the injection, that held failures only
    worst, start = 0.0, None
    for x in samples:
        if x.t < t_inject:
            continue
        if not x.ok and start is None:
            start = x.t - x.latency
        elif x.ok and start is not None:
            worst = max(worst, x.t - start)
            start = None
    res.longest_outage_s = round(worst, 3)
    during = sorted(x.latency for x in samples if t_inject <= x.t <= t_heal)
    if during:
        res.p99_during_fault_ms = round(during[max(0, int(len(during) * 0.99) - 1)] * 1000, 1)


def healthy(plan: Plan, layout: Layout) -> bool:
    from contrail_ha.operations.status import collect

    return all(c.ok for c in collect(plan, layout))


async def run_fault(plan: Plan, layout: Layout, fault: Fault, *, fault_seconds: float = 8.0,
                    recovery_timeout: float = 300.0, progress: Callable[[str], None] = print) -> Result:
    """One drill: workload, inject, hold, heal, wait for full health, data check."""
    why = fault.needs(plan)
    if why:
        raise ValueError(f"refusing to inject {fault.name}: the topology cannot survive it: {why}")
    project = await _setup_project(plan)
    wl = Workload(plan, project)
    runner = asyncio.get_running_loop().create_task(wl.run())
    await asyncio.sleep(2)  # warm-up: the workload reaches its steady rate
    t_inject = time.monotonic()
    done = await asyncio.to_thread(fault.inject, plan, layout)
    progress(f"{fault.name}: injected ({fault.description}) on {done.get('host')}")
    await asyncio.sleep(fault_seconds)
    t_heal = time.monotonic()
    await asyncio.to_thread(fault.heal, plan, layout, done)
    progress(f"{fault.name}: healed; waiting for every check to be healthy")
    deadline = t_heal + recovery_timeout
    while not await asyncio.to_thread(healthy, plan, layout):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    res = Result(fault.name, done, recovery_s=round(time.monotonic() - t_heal, 1))
    await asyncio.sleep(1)
    wl.stop.set()
    await runner
    _summarise(res, wl, t_inject, t_heal)
    await _data_check(plan, wl, res)
    progress(f"{fault.name}: {res.requests} requests, failed {sum(res.failed.values())}, "
             f"longest outage {res.longest_outage_s}s, recovery {res.recovery_s}s, "
             f"data {'ok' if res.data_ok else 'NOT OK'}")
    return res


def save(results: list[Result], layout: Layout) -> Path:
    d = layout.root / "drills"
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"drill-{time.strftime('%Y%m%dT%H%M%S')}.json"
    f.write_text(json.dumps([{**asdict(r), "data_ok": r.data_ok} for r in results], indent=2))
    return f
