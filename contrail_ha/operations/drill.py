"""Fail-over drills: a steady workload through the VIP while one real fault is injected and healed.

Each drill: warm up, inject the fault (kill -9 held down by the supervisor, a pulled cable, or a
partition of one controller from the others with nftables), keep the workload running, heal, wait
until every status check is healthy again, then check the data: every create acknowledged during
the drill is readable with the same content through the VIP and from every contrail-api replica,
no fq_name or virtual-network id is duplicated, and every analytics message the collectors
acknowledged is stored exactly once. A partitioned controller's replica must refuse writes (503).
"""

from __future__ import annotations

import asyncio
import itertools
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
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.protocol import Origin
from contrail_ha.topology.plan import (
    ANALYTICS_DB,
    COLLECTOR,
    CONFIG_API,
    CONFIG_DB,
    KAFKA,
    RABBITMQ,
    ZOOKEEPER,
    Plan,
)


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
        from contrail_ha.rendering.haproxy import server_name

        host = pick(plan)
        inst = plan.instance(component, host)
        faults.kill(plan, layout, host, inst.name, hold=True)
        done: dict[str, Any] = {"host": host, "processes": [inst.name]}
        if component == CONFIG_API:  # a server of the lbs' backends: how fast it leaves rotation
            done["server"] = server_name(inst)
        return done
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


def _partition_controller(plan: Plan, layout: Layout) -> dict[str, Any]:
    """The last controller loses the other controllers (the lbs and clients still reach it)."""
    host = plan.controllers[-1].name
    peers = [h.name for h in plan.controllers if h.name != host]
    faults.partition(plan, host, peers)
    return {"host": host, "peers": peers, "minority": _config_api_address(plan, host)}


def _heal_partition(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    faults.heal_partition(plan, done["host"])


def _config_api_address(plan: Plan, host: str) -> str:
    return plan.instance(CONFIG_API, host).address


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
    Fault("controller-partition", "partition one controller host from the other controllers",
          _at_least("controllers", 3, "controller"), _partition_controller, _heal_partition),
]}


RATE = 20.0  # workload requests per second (open loop): about a fifth of what 3 replicas create per second
CLIENT_TIMEOUT_S = 30.0  # a request not answered within this is a failure (HAProxy's own server timeout is 3 min)


@dataclass
class Sample:
    t: float  # completion time (monotonic)
    kind: str  # read | create | analytics
    ok: bool
    latency: float
    error: str = ""

    @property
    def sent(self) -> float:
        """When the request was sent (monotonic)."""
        return self.t - self.latency


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

    @property
    def data_ok(self) -> bool:
        return not (self.lost or self.mismatched or self.duplicate_fq_names or self.duplicate_vn_ids
                    or self.replicas_disagree or self.analytics_lost or self.analytics_duplicates
                    or self.minority_writes.get("200"))


class Workload:
    """Through the VIP: config reads and creates (unique names), analytics reads and queries; plus
    numbered analytics messages sent through the collectors (the generator library).

    Open loop: requests start at a fixed ``rate`` whatever the earlier ones are doing, as many
    independent clients would, so a request stuck on a dead path does not stop the others (a
    closed loop would measure its own stall as an outage).
    """

    def __init__(self, plan: Plan, project: str, rate: float = RATE, message_rate: float = 20.0,
                 max_in_flight: int = 1000) -> None:
        self.base = f"http://{plan.vip}:{plan.ports.config_api}"
        self.analytics = f"http://{plan.vip}:{plan.ports.analytics_api}/analytics"
        self.project = project
        self.rate, self.message_rate, self.max_in_flight = rate, message_rate, max_in_flight
        self.samples: list[Sample] = []
        self.acked: dict[str, dict[str, Any]] = {}  # uuid -> what the create sent
        self.stop = asyncio.Event()
        self.started_us = int(time.time() * 1e6)
        self.generator = Generator(Origin(source="drill", node_type="Test", module="contrail-ha-drill",
                                          instance_id=project), [i.address for i in plan.of(COLLECTOR)],
                                   max_pending=1_000_000) if plan.analytics else None
        self.messages: list[str] = []

    async def _one(self, s: aiohttp.ClientSession, i: int) -> None:
        roll = random.random()
        t0 = time.monotonic()
        kind = "create" if roll < 0.4 or not self.acked else ("analytics" if roll > 0.9 else "read")
        err = ""
        try:
            if kind == "create":
                name = f"d-{i}-{uuid.uuid4().hex[:8]}"
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
            elif roll > 0.95:
                async with s.get(f"{self.analytics}/uves/config-nodes") as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
            else:
                q = {"table": "MessageTable", "start_time": "now-1m", "end_time": "now", "limit": 10,
                     "select_fields": ["MessageTS", "Source", "Messagetype"], "sort_fields": ["MessageTS"], "sort": 2}
                async with s.post(f"{self.analytics}/query", json=q) as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
        except (TimeoutError, aiohttp.ClientError) as e:
            ok, err = False, e.__class__.__name__
        self.samples.append(Sample(time.monotonic(), kind, ok, time.monotonic() - t0, err))

    async def _messages(self) -> None:
        """Numbered analytics messages at ``message_rate`` a second, until stopped."""
        assert self.generator is not None
        n, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            self.messages.append(self.generator.message("DrillMessage", {"drill": self.project, "n": n}))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / self.message_rate - time.monotonic()))

    async def run(self) -> None:
        if self.generator is not None:
            self.generator.start()
        conn = aiohttp.TCPConnector(limit=self.max_in_flight)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S), connector=conn) as s:
            extra = asyncio.get_running_loop().create_task(self._messages()) if self.generator else None
            slots = asyncio.Semaphore(self.max_in_flight)
            running: set[asyncio.Task[None]] = set()
            i, t0 = 0, time.monotonic()
            while not self.stop.is_set():
                i += 1
                await slots.acquire()
                task = asyncio.get_running_loop().create_task(self._one(s, i))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), slots.release()))
                await asyncio.sleep(max(0.0, t0 + i / self.rate - time.monotonic()))
            await asyncio.gather(*running)
            if extra is not None:
                await extra

    async def flush(self, timeout: float = 120.0) -> bool:
        """Wait until the collectors acknowledged every message; stop the generator."""
        if self.generator is None:
            return True
        ok = await self.generator.flush(timeout)
        await self.generator.stop(0)
        return ok


async def _setup_project(plan: Plan) -> str:
    name = f"drill-{uuid.uuid4().hex[:8]}"
    base = f"http://{plan.vip}:{plan.ports.config_api}"
    async with aiohttp.ClientSession() as s, s.post(
            f"{base}/projects", json={"project": {"fq_name": ["default-domain", name]}}) as r:
        if r.status != 200:
            raise RuntimeError(f"cannot create the drill project: HTTP {r.status} {await r.text()}")
    return name


async def _data_check(plan: Plan, wl: Workload, res: Result) -> None:
    """Every acked create readable with its content (through the VIP and from every replica), no duplicate
    fq_name or VN id, every acked analytics message stored once."""
    base = f"http://{plan.vip}:{plan.ports.config_api}"
    res.acked_creates = len(wl.acked)
    replicas = [f"http://{i.address}" for i in plan.of(CONFIG_API)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
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
        stored = await _stored_messages(plan, wl)
        want = set(wl.messages)
        res.analytics_lost = len(want - set(stored))
        res.analytics_duplicates = len(stored) - len(set(stored))


async def _stored_messages(plan: Plan, wl: Workload, timeout: float = 120.0) -> list[str]:
    """Ids of the drill's messages as the analytics API returns them, once all arrived (or the timeout)."""
    url = f"http://{plan.vip}:{plan.ports.analytics_api}/analytics/query"
    where = [[{"name": "Messagetype", "value": "DrillMessage", "op": 1},
              {"name": "InstanceId", "value": wl.project, "op": 1}]]
    deadline = time.monotonic() + timeout
    found: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
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


async def cleanup(plan: Plan, project: str) -> int:
    """Delete what a drill created (its virtual networks, then its project); returns how many objects."""
    base = f"http://{plan.vip}:{plan.ports.config_api}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        async with s.get(f"{base}/virtual-networks", params={"parent_fq_name_str": f"default-domain:{project}"}) as r:
            vns = [o["uuid"] for o in (await r.json())["virtual-networks"]] if r.status == 200 else []
        sem = asyncio.Semaphore(16)

        async def delete(path: str) -> None:
            async with sem, s.delete(f"{base}/{path}") as r:
                await r.read()
        await asyncio.gather(*(delete(f"virtual-network/{u}") for u in vns))
        ask = {"type": "project", "fq_name": ["default-domain", project]}
        async with s.post(f"{base}/fqname-to-id", json=ask) as r:
            if r.status == 200:
                await delete(f"project/{(await r.json())['uuid']}")
    return len(vns) + 1


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


def _summarise(res: Result, wl: Workload, t_inject: float, t_heal: float) -> None:
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


def unhealthy(plan: Plan, layout: Layout) -> list[str]:
    """The status checks that are not healthy, as ``component/target: detail``."""
    from contrail_ha.operations.status import collect

    return [f"{c.component}/{c.target}: {c.detail}"[:160] for c in collect(plan, layout) if not c.ok]


async def _probe_minority(address: str, project: str, stop: asyncio.Event, out: dict[str, int]) -> None:
    """While a controller is partitioned: try creates on its replica directly; it must refuse them (503)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        while not stop.is_set():
            body = {"virtual-network": {"fq_name": ["default-domain", project, f"minority-{uuid.uuid4().hex[:8]}"],
                                        "parent_type": "project"}}
            try:
                async with s.post(f"http://{address}/virtual-networks", json=body) as r:
                    key = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as e:
                key = e.__class__.__name__
            out[key] = out.get(key, 0) + 1
            await asyncio.sleep(0.5)


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
    project = await _setup_project(plan)
    wl = Workload(plan, project, rate=rate)
    runner = asyncio.get_running_loop().create_task(wl.run())
    await asyncio.sleep(2)  # warm-up: the workload reaches its steady rate
    t_inject = time.monotonic()
    done = await asyncio.to_thread(fault.inject, plan, layout)
    progress(f"{fault.name}: injected ({fault.description}) on {done.get('host')}")
    rotation = asyncio.get_running_loop().create_task(
        _out_of_rotation(plan, layout, done["server"], t_inject)) if "server" in done else None
    minority: dict[str, int] = {}
    probe_stop = asyncio.Event()
    probe = asyncio.get_running_loop().create_task(
        _probe_minority(done["minority"], project, probe_stop, minority)) if "minority" in done else None
    try:
        await asyncio.sleep(fault_seconds)
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
    wl.stop.set()
    await runner
    await wl.flush()
    _summarise(res, wl, t_inject, t_heal)
    await _data_check(plan, wl, res)
    if not keep:
        progress(f"{fault.name}: deleted the drill's {await cleanup(plan, project)} objects")
    progress(f"{fault.name}: {res.requests} requests, failed {sum(res.failed.values())}, "
             f"longest outage {res.longest_outage_s}s (gap {res.longest_gap_s}s), writes back {res.writes_back_s}s, "
             f"recovery {res.recovery_s}s, analytics {res.analytics_sent} sent/{res.analytics_lost} lost, "
             f"data {'ok' if res.data_ok else 'NOT OK'}")
    return res


def save(results: list[Result], layout: Layout) -> Path:
    d = layout.root / "drills"
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"drill-{time.strftime('%Y%m%dT%H%M%S')}.json"
    f.write_text(json.dumps([as_dict(r) for r in results], indent=2))
    return f


def as_dict(r: Result) -> dict[str, Any]:
    return {**asdict(r), "data_ok": r.data_ok}
