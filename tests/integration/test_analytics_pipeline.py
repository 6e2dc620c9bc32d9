"""The analytics pipeline with real servers: generator -> collector -> Kafka -> aggregator -> Cassandra.

Host n1 (127.0.73.1) runs ZooKeeper, one Kafka broker and the analytics Cassandra; n1 and n2
(127.0.73.2) each run a collector and an aggregator as real processes (``python -m ...`` with
their rendered service.json), as ``contrail-ha up`` starts them. The tests send through the
generator library and read what the aggregators stored in Cassandra.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from contrail_ha.probes import cassandra as cprobe
from contrail_ha.probes import kafka as kprobe
from contrail_ha.probes import zookeeper as zprobe
from contrail_ha.rendering import cassandra as crender
from contrail_ha.rendering import kafka as krender
from contrail_ha.rendering import services as srender
from contrail_ha.rendering import zookeeper as zrender
from contrail_ha.rendering.base import DEFAULT_CACHE, Layout, ProcessSpec
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.protocol import (
    MAX_RECORD_BYTES,
    MESSAGE_PARTITIONS,
    PROCESS_RUNNING,
    PROCESS_STOPPED,
    TRUNCATED,
    Origin,
    messages_topic,
    uve_partition,
    uve_topic,
)
from contrail_ha.services.analytics.store import AnalyticsStore
from contrail_ha.topology.model import Topology
from contrail_ha.topology.plan import AGGREGATOR, ANALYTICS_DB, COLLECTOR, KAFKA, ZOOKEEPER, Instance, Plan
from tests.helpers import proc
from tests.helpers.aio import Loop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PREFIX = "127.0.73"
PARTITIONS = 6
CONFIG_DB_TABLE = "ObjectConfigDatabaseInfo"


def _plan() -> Plan:
    return Plan(Topology.model_validate({
        "cluster": {"id": "pipe", "vip": f"{PREFIX}.200", "network": f"{PREFIX}.0/24", "uve_partitions": PARTITIONS},
        "replication": {"config_db": 1, "analytics_db": 1, "kafka": 1, "kafka_min_insync": 1},
        "heap": {"config_db": 256, "analytics_db": 256, "zookeeper": 128, "kafka": 256},
        "hosts": [{"name": "n1", "ip": f"{PREFIX}.1", "roles": ["controller", "analytics", "analyticsdb"]},
                  {"name": "n2", "ip": f"{PREFIX}.2", "roles": ["analytics"]}],
    }))


@dataclass
class Pipeline:
    plan: Plan
    layout: Layout
    logdir: Path
    loop: Loop
    store: AnalyticsStore
    procs: dict[tuple[str, str], tuple[subprocess.Popen[bytes], ProcessSpec]] = field(default_factory=dict)

    def start(self, inst: Instance) -> None:
        r = {ZOOKEEPER: zrender.render, KAFKA: krender.render}.get(inst.component)
        rendered = (r(self.plan, inst, self.layout) if r else
                    crender.render(self.plan, inst, self.layout, jmx=False) if inst.component == ANALYTICS_DB else
                    srender.render(self.plan, inst, self.layout))
        proc.write_files(rendered)
        for spec in rendered.processes:  # one, or Cassandra and its role keeper
            key = (inst.component if spec.name == inst.name else spec.name, inst.host.name)
            self.procs[key] = (proc.start(spec, self.logdir / f"{inst.host.name}-{spec.name}.log"), spec)

    def kill9(self, component: str, host: str) -> None:
        p, _ = self.procs.pop((component, host))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)

    def healthy(self, component: str, host: str) -> bool:
        inst = self.plan.instance(component, host)
        try:
            return httpx.get(f"http://{inst.address}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def collectors(self) -> list[str]:
        return [i.address for i in self.plan.of(COLLECTOR)]

    def log(self, component: str, host: str) -> str:
        f = self.logdir / f"{host}-{component}.log"
        return f.read_text(errors="replace")[-3000:] if f.exists() else "(no log)"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("analytics-pipeline")
    plan = _plan()
    layout = Layout(tmp / "state", cache=DEFAULT_CACHE)
    proc.require_runtime(layout, "cassandra", "zookeeper", "kafka")
    loop = Loop()
    c = plan.instance(ANALYTICS_DB, "n1")
    login = crender.login(layout, ANALYTICS_DB, crender.CLIENT_ROLE[ANALYTICS_DB])
    store = AnalyticsStore([c.ip], c.port, 1, auth=login)
    pl = Pipeline(plan, layout, tmp / "logs", loop, store)
    try:
        for comp in (ZOOKEEPER, ANALYTICS_DB):
            pl.start(plan.instance(comp, "n1"))
        zi = plan.instance(ZOOKEEPER, "n1")
        proc.wait_for(lambda: zprobe.ready(plan, layout, zi)[0], 60, "zookeeper")
        pl.start(plan.instance(KAFKA, "n1"))
        ki = plan.instance(KAFKA, "n1")
        proc.wait_for(lambda: kprobe.ready(plan, layout, ki)[0], 90, "kafka broker")
        for inst in plan.of(COLLECTOR):
            pl.start(inst)
        proc.wait_for(lambda: all(pl.healthy(COLLECTOR, h) for h in ("n1", "n2")), 120, "collectors (topics)")
        proc.wait_for(lambda: cprobe.ready(plan, layout, c)[0], 180, "analytics cassandra")
        for inst in plan.of(AGGREGATOR):
            pl.start(inst)
        proc.wait_for(lambda: all(pl.healthy(AGGREGATOR, h) for h in ("n1", "n2")), 120, "aggregators")
        loop.run(store.start())
        yield pl
    finally:
        try:
            loop.run(store.close(), 30)
        except Exception:
            pass
        loop.close()
        order = [(AGGREGATOR, "n1"), (AGGREGATOR, "n2"), (COLLECTOR, "n1"), (COLLECTOR, "n2"),
                 (KAFKA, "n1"), (ANALYTICS_DB, "n1"), (ZOOKEEPER, "n1")]
        for key in order + [k for k in list(pl.procs) if k not in order]:  # then the rest (the role keeper)
            if key in pl.procs:
                p, spec = pl.procs.pop(key)
                proc.stop(p, spec, timeout=spec.stop_timeout)


def _origin(name: str, module: str = "pipeline-test", node_type: str = "Analytics") -> Origin:
    return Origin(source=name, node_type=node_type, module=module, instance_id=name)


async def _send_messages(pl: Pipeline, gen: Generator, tag: str, n: int, pace: float = 0.0) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(gen.message("PipelineTest", {"tag": tag, "n": i}))
        if pace and i % 50 == 49:
            await asyncio.sleep(pace)
    assert await gen.flush(60), f"generator could not deliver: {gen.reason}"
    return ids


def _stored(pl: Pipeline, tag: str, since_us: int) -> list[dict[str, Any]]:
    rows = pl.loop.run(pl.store.messages(since_us, int(time.time() * 1e6) + 1, 1_000_000))
    return [r for r in rows if r["messagetype"] == "PipelineTest" and r["body"].get("tag") == tag]


def test_topics_and_partition_split(pipeline: Pipeline) -> None:
    admin = krender.login(pipeline.layout, krender.BROKER_USER)
    t = kprobe.describe_topic(pipeline.plan, uve_topic("pipe", 0), auth=admin)
    assert len(t["partitions"]) == 1
    messages = kprobe.describe_topic(pipeline.plan, messages_topic("pipe"), auth=admin)
    assert len(messages["partitions"]) == MESSAGE_PARTITIONS
    owned: list[int] = []
    for host in ("n1", "n2"):
        inst = pipeline.plan.instance(AGGREGATOR, host)
        st = httpx.get(f"http://{inst.address}/partitions", timeout=5).json()
        owned += st["partitions"]
    # every UVE partition has exactly one owner among the two aggregators
    assert sorted(owned) == list(range(PARTITIONS))


def test_messages_reach_cassandra_once(pipeline: Pipeline) -> None:
    pl = pipeline
    since = int(time.time() * 1e6)

    async def go() -> list[str]:
        gen = Generator(_origin("gen-a"), pl.collectors())
        gen.start()
        try:
            return await _send_messages(pl, gen, "once", 300)
        finally:
            await gen.stop()

    ids = pl.loop.run(go())
    rows = proc.wait_for(lambda: (r := _stored(pl, "once", since)) and len(r) >= 300 and r, 60, "300 messages")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert sorted(r["body"]["n"] for r in rows) == list(range(300))
    assert {r["source"] for r in rows} == {"gen-a"}


def test_uve_merge_and_alarm_raise_and_clear(pipeline: Pipeline) -> None:
    pl = pipeline

    def proc_info(state: str) -> dict[str, Any]:
        return {"process_info": [{"process_name": "zookeeper", "process_state": state, "pid": 1, "last_exit": ""}]}

    async def send(gen: Generator, data: dict[str, Any]) -> None:
        gen.uve(CONFIG_DB_TABLE, "uvehost", "NodeStatus", data)
        assert await gen.flush(30)

    agent = Generator(_origin("uvehost", "contrail-node-agent", "NodeAgent"), pl.collectors())
    api = Generator(_origin("uvehost", "contrail-api", "Config"), pl.collectors())

    async def start() -> None:
        agent.start()
        api.start()
    pl.loop.run(start())
    try:
        pl.loop.run(send(agent, proc_info(PROCESS_STOPPED)))
        pl.loop.run(send(api, {"process_status": [{"module_id": "contrail-api", "instance_id": "uvehost",
                                                   "state": "Functional", "connection_infos": []}]}))

        def merged_with_alarm() -> dict[str, Any] | None:
            row = pl.loop.run(pl.store.uve(CONFIG_DB_TABLE, "uvehost"))
            if not row or not row["alarms"] or "process_status" not in row["value"].get("NodeStatus", {}):
                return None
            return row
        row = proc.wait_for(merged_with_alarm, 30, "merged UVE with a process-status alarm")
        ns = row["value"]["NodeStatus"]
        assert ns["process_info"][0]["process_state"] == PROCESS_STOPPED
        assert ns["process_status"][0]["module_id"] == "contrail-api"
        assert len(row["origins"]) == 2
        [alarm] = row["alarms"]
        assert alarm["type"].endswith("process-status") and "zookeeper" in alarm["description"]
        assert row["partition"] == uve_partition(CONFIG_DB_TABLE, "uvehost", PARTITIONS)

        pl.loop.run(send(agent, proc_info(PROCESS_RUNNING)))
        proc.wait_for(lambda: (r := pl.loop.run(pl.store.uve(CONFIG_DB_TABLE, "uvehost"))) and r["alarms"] == []
                      and r["value"]["NodeStatus"]["process_info"][0]["process_state"] == PROCESS_RUNNING,
                      30, "alarm cleared")
    finally:
        pl.loop.run(agent.stop())
        pl.loop.run(api.stop())


def test_collector_bad_input_is_refused(pipeline: Pipeline) -> None:
    url = f"http://{pipeline.plan.instance(COLLECTOR, 'n2').address}/generator/records"
    origin = _origin("bad").model_dump()
    r = httpx.post(url, content=b"{not json", timeout=5)
    assert r.status_code == 400 and "malformed JSON" in r.text
    r = httpx.post(url, json={"origin": origin, "records": [{"kind": "message", "id": "x", "ts": -1, "seq": 0,
                                                             "messagetype": "T", "body": {}}]}, timeout=5)
    assert r.status_code == 400 and "records.0.message.ts" in r.text
    r = httpx.post(url, json={"origin": origin, "records": [{"kind": "uve", "id": "x", "ts": 1, "table": "NoSuch",
                                                             "key": "k", "struct": "S", "data": {}}]}, timeout=5)
    assert r.status_code == 400 and "unknown UVE table 'NoSuch'" in r.text
    r = httpx.post(url, json={"records": []}, timeout=5)
    assert r.status_code == 400 and "origin" in r.text
    big = {"origin": origin, "records": [{"kind": "message", "id": "x", "ts": 1, "seq": 0, "messagetype": "T",
                                          "body": {"pad": "x" * (5 * 1024 * 1024)}}]}
    r = httpx.post(url, content=json.dumps(big).encode(), timeout=10)
    assert r.status_code == 413 and "over the limit" in r.text


def test_collector_and_aggregator_killed_nothing_lost(pipeline: Pipeline) -> None:
    """kill -9 a collector and an aggregator while a generator sends: every message stored exactly once,
    and the surviving aggregator rebuilt the dead one's UVEs from Kafka."""
    pl = pipeline
    since = int(time.time() * 1e6)
    # a UVE owned by the n1 aggregator, written before the kill
    owned_n1 = httpx.get(f"http://{pl.plan.instance(AGGREGATOR, 'n1').address}/partitions", timeout=5).json()
    key = next(f"k{i}" for i in range(1000) if uve_partition(CONFIG_DB_TABLE, f"k{i}", PARTITIONS)
               in owned_n1["partitions"])
    before = Generator(_origin(key, "before"), pl.collectors())
    after = Generator(_origin(key, "after"), pl.collectors())
    gen = Generator(_origin("gen-kill"), pl.collectors())

    async def start() -> None:
        for g in (before, after, gen):
            g.start()
        before.uve(CONFIG_DB_TABLE, key, "Before", {"n": 1})
        assert await before.flush(30)
    pl.loop.run(start())
    proc.wait_for(lambda: pl.loop.run(pl.store.uve(CONFIG_DB_TABLE, key)), 30, "UVE before the kill")

    n = 1500
    sent = asyncio.run_coroutine_threadsafe(_send_messages(pl, gen, "kill", n, pace=0.02), pl.loop.loop)
    proc.wait_for(lambda: gen.stats["sent"] > 300, 60, "first messages sent")
    pl.kill9(COLLECTOR, "n1")
    pl.kill9(AGGREGATOR, "n1")
    ids = sent.result(180)

    async def after_kill() -> None:
        after.uve(CONFIG_DB_TABLE, key, "After", {"n": 2})
        assert await after.flush(30)
    pl.loop.run(after_kill())
    # the survivor owns everything now, rebuilt the partition from Kafka and merged the new struct in
    row = proc.wait_for(lambda: (r := pl.loop.run(pl.store.uve(CONFIG_DB_TABLE, key))) and "After" in r["value"]
                        and r, 60, f"UVE {key} updated by the surviving aggregator\n{pl.log(AGGREGATOR, 'n2')}")
    assert row["value"]["Before"] == {"n": 1}
    st = httpx.get(f"http://{pl.plan.instance(AGGREGATOR, 'n2').address}/partitions", timeout=5).json()
    assert st["partitions"] == list(range(PARTITIONS)) and len(st["message_partitions"]) == MESSAGE_PARTITIONS
    rows = proc.wait_for(lambda: (r := _stored(pl, "kill", since)) and len(r) >= n and r, 90, f"{n} messages")
    assert len(rows) == n
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert sorted(r["body"]["n"] for r in rows) == list(range(n))
    assert gen.stats["failovers"] >= 1  # it did move to the other collector

    for g in (before, after, gen):
        pl.loop.run(g.stop())
    # restart both (a supervisor would): the group rebalances back
    pl.start(pl.plan.instance(COLLECTOR, "n1"))
    pl.start(pl.plan.instance(AGGREGATOR, "n1"))
    proc.wait_for(lambda: pl.healthy(AGGREGATOR, "n1") and pl.healthy(COLLECTOR, "n1"), 60, "restarted n1")


# --- record limits: one oversized record blocks nothing ----------------------------------------------------
def _objectlogs(pl: Pipeline, since_us: int) -> list[dict[str, Any]]:
    return pl.loop.run(pl.store.objectlogs("ConfigObjectTable", since_us, int(time.time() * 1e6) + 1, 10_000))


def test_oversized_config_log_is_truncated_and_blocks_nothing(pipeline: Pipeline) -> None:
    """A ~1 MiB config log (as a ~1 MiB create through contrail-api makes) and normal records behind it:
    the normal ones arrive promptly, the big one arrives truncated (with its original size), nothing is
    refused or dropped, and the generator never stalls."""
    pl = pipeline
    since = int(time.time() * 1e6)
    big_name = "".join(chr(ord("a") + i % 26) for i in range(1024 * 1024))
    gen = Generator(_origin("gen-big", "contrail-api", "Config"), pl.collectors())

    async def go() -> tuple[str, list[str], float]:
        gen.start()
        t0 = time.monotonic()
        oid = gen.objectlog("ConfigObjectTable", "virtual_network:default-domain:p:big", "VncApiConfigLog",
                            {"operation": "CREATE", "type": "virtual_network", "uuid": "u-big",
                             "fq_name": ["default-domain", "p", "big"], "old": None,
                             "new": {"display_name": big_name, "uuid": "u-big"}})
        ids = [gen.message("PipelineTest", {"tag": "behind-big", "n": i}) for i in range(200)]
        assert await gen.flush(20), f"generator blocked: {gen.reason} {gen.state()}"
        return oid, ids, time.monotonic() - t0

    try:
        oid, ids, took = pl.loop.run(go())
        assert took < 10, f"delivering behind the big record took {took:.1f}s"
        assert gen.stats["truncated"] == 1 and gen.stats["refused"] == gen.stats["dropped"] == 0
        assert gen.stall() is None
    finally:
        pl.loop.run(gen.stop())
    rows = proc.wait_for(lambda: (r := _stored(pl, "behind-big", since)) and len(r) >= 200 and r, 60,
                         "the records behind the big one")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    [big] = proc.wait_for(lambda: [r for r in _objectlogs(pl, since) if r["id"] == oid], 60, "the big config log")
    body = big["body"]
    assert body["operation"] == "CREATE" and body["uuid"] == "u-big" and body["new"]["uuid"] == "u-big"
    assert body[TRUNCATED]["bytes"] > 1024 * 1024 and body[TRUNCATED]["limit"] == MAX_RECORD_BYTES
    prefix = body["new"]["display_name"].partition("...[truncated")[0]
    assert big_name.startswith(prefix) and len(prefix) > 400_000
    assert len(json.dumps(body, separators=(",", ":"))) <= MAX_RECORD_BYTES


def test_collector_refuses_only_the_bad_record_of_a_batch(pipeline: Pipeline) -> None:
    """The real collector, given one oversized and one invalid record among good ones: 200, the bad ones
    named (413, 400), the good ones produced and stored."""
    pl = pipeline
    since = int(time.time() * 1e6)
    url = f"http://{pl.plan.instance(COLLECTOR, 'n1').address}/generator/records"
    ts = int(time.time() * 1e6)

    def msg(n: int, **extra: Any) -> dict[str, Any]:
        return {"kind": "message", "id": uuid.uuid4().hex, "ts": ts + n, "seq": n, "messagetype": "PipelineTest",
                "body": {"tag": "one-bad", "n": n, **extra}}
    records = [msg(0), msg(1, pad="x" * (MAX_RECORD_BYTES + 10)), msg(2), {**msg(3), "level": 99}, msg(4)]
    r = httpx.post(url, json={"origin": _origin("gen-onebad").model_dump(), "records": records}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3
    assert [(x["index"], x["status"], x["id"]) for x in body["refused"]] == [
        (1, 413, records[1]["id"]), (3, 400, records[3]["id"])]
    assert "over the limit" in body["refused"][0]["error"] and "records.3.message.level" in body["refused"][1]["error"]
    rows = proc.wait_for(lambda: (r := _stored(pl, "one-bad", since)) and len(r) >= 3 and r, 60, "the good records")
    assert sorted(r["body"]["n"] for r in rows) == [0, 2, 4]


def test_kafka_refusing_one_record_refuses_only_that_record(pipeline: Pipeline) -> None:
    """The collector's code with a real producer whose message.max.bytes is small, on the real broker:
    Kafka's MSG_SIZE_TOO_LARGE for one record is a 413 for that record; the others are produced."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from contrail_ha.services import base
    from contrail_ha.services.analytics.collector import Collector, KafkaProducer

    pl = pipeline
    since = int(time.time() * 1e6)
    inst = pl.plan.instance(COLLECTOR, "n1")
    cfg = base.ServiceConfig.model_validate(srender.service_config(pl.plan, inst))
    collector = Collector(cfg)
    login = krender.login(pl.layout, krender.COLLECTOR_USER)
    ts = int(time.time() * 1e6)
    records = [{"kind": "message", "id": uuid.uuid4().hex, "ts": ts + n, "seq": n, "messagetype": "PipelineTest",
                "body": {"tag": "kafka-too-large", "n": n, "pad": "y" * (20_000 if n == 1 else 10)}}
               for n in range(3)]

    async def go() -> tuple[int, dict[str, Any]]:
        collector.kafka = KafkaProducer(cfg.kafka, max_message_bytes=8_000, auth=login)
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/generator/records", collector.h_records)
        try:
            async with TestClient(TestServer(app)) as client:
                r = await client.post("/generator/records",
                                      json={"origin": _origin("gen-kafka-big").model_dump(), "records": records})
                return r.status, await r.json()
        finally:
            await asyncio.to_thread(collector.kafka.close)

    status, body = pl.loop.run(go())
    assert status == 200 and body["accepted"] == 2, body
    [refused] = body["refused"]
    assert refused["index"] == 1 and refused["status"] == 413 and "Kafka refused" in refused["error"]
    assert "MSG_SIZE_TOO_LARGE" in refused["error"] or "too large" in refused["error"].lower()
    rows = proc.wait_for(lambda: (r := _stored(pl, "kafka-too-large", since)) and len(r) >= 2 and r, 60,
                         "the two small records")
    assert sorted(r["body"]["n"] for r in rows) == [0, 2]
