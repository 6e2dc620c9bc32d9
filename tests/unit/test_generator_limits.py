"""Record limits and stall detection of the analytics generator (and the collector's per-record judgement).

The generator's HTTP behaviour is exercised against an in-process aiohttp stand-in collector
whose answers the tests choose (200, 200 naming refused records, 400 for a whole batch, 503);
the real collector with real Kafka is in tests/integration/test_analytics_pipeline.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contrail_ha.services import base
from contrail_ha.services.analytics import alarms
from contrail_ha.services.analytics.collector import Collector
from contrail_ha.services.analytics.generator import BATCH_BYTES, Generator, GeneratorHealth
from contrail_ha.services.analytics.nodestatus import NodeStatusReporter, process_status
from contrail_ha.services.analytics.protocol import (
    KAFKA_MESSAGE_MAX_BYTES,
    MAX_BATCH_BYTES,
    MAX_RECORD_BYTES,
    TRUNCATED,
    MessageRecord,
    ObjectLogRecord,
    Origin,
    UveRecord,
    bound_record,
    new_id,
    now_us,
    record_json,
)
from contrail_ha.services.deps import Dependency

T = TypeVar("T")
ORIGIN = Origin(source="ctrl1", node_type="Config", module="contrail-api", instance_id="config-api-1")
MIB = 1024 * 1024


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred: Callable[[], object], timeout: float, what: str) -> None:
    """Poll a condition (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        await asyncio.sleep(0.01)


def objectlog(body: dict[str, Any], object_id: str = "virtual_network:default-domain:p:vn1") -> ObjectLogRecord:
    return ObjectLogRecord(kind="objectlog", id=new_id(), ts=now_us(), table="ConfigObjectTable",
                           object_id=object_id, messagetype="VncApiConfigLog", body=body)


def config_log(new: dict[str, Any]) -> dict[str, Any]:
    return {"operation": "CREATE", "type": "virtual_network", "uuid": "8d3f", "fq_name": ["default-domain", "p", "vn1"],
            "user": "admin", "old": None, "new": new}


# --- truncation ----------------------------------------------------------------------------------------------
def test_small_record_is_untouched() -> None:
    r = objectlog(config_log({"display_name": "vn1"}))
    out, text, original = bound_record(r)
    assert out is r and original is None and text == record_json(r)


def test_one_mib_string_is_cut_to_a_prefix_with_its_size() -> None:
    big = "".join(chr(ord("a") + i % 26) for i in range(MIB))
    r = objectlog(config_log({"display_name": big, "virtual_network_properties": {"vxlan_network_identifier": 7}}))
    size = len(record_json(r))
    out, text, original = bound_record(r)
    assert original == size > MAX_RECORD_BYTES
    assert len(text) <= MAX_RECORD_BYTES and text == record_json(out)
    assert isinstance(out, ObjectLogRecord) and out.id == r.id and out.object_id == r.object_id
    body = out.body
    assert body[TRUNCATED] == {"bytes": size, "limit": MAX_RECORD_BYTES}
    # everything small survives as it was; the big string keeps a long prefix and says how big it was
    assert {k: body[k] for k in ("operation", "type", "uuid", "fq_name", "user", "old")} == {
        k: r.body[k] for k in ("operation", "type", "uuid", "fq_name", "user", "old")}
    assert body["new"]["virtual_network_properties"] == {"vxlan_network_identifier": 7}
    cut = body["new"]["display_name"]
    prefix, _, mark = cut.partition("...[truncated")
    assert big.startswith(prefix) and len(prefix) > MAX_RECORD_BYTES * 0.9
    assert f"{len(json.dumps(big))} bytes" in mark
    # deterministic: the same record is cut the same way
    assert bound_record(r)[1] == text


def test_two_big_fields_share_the_room() -> None:
    r = objectlog({"operation": "UPDATE", "old": {"d": "o" * (600 * 1024)}, "new": {"d": "n" * (600 * 1024)}})
    out, text, _ = bound_record(r)
    assert len(text) <= MAX_RECORD_BYTES
    assert isinstance(out, ObjectLogRecord)
    old, new = len(out.body["old"]["d"]), len(out.body["new"]["d"])
    assert abs(old - new) < 64 and old > MAX_RECORD_BYTES * 0.45


def test_escaped_characters_count_as_their_encoding() -> None:
    r = objectlog({"accents": "\u00e9" * 300_000, "emoji": "\U0001f600" * 200_000})  # 6 and 12 bytes each
    out, text, original = bound_record(r)
    assert original is not None and len(text) <= MAX_RECORD_BYTES
    assert isinstance(out, ObjectLogRecord) and out.body["accents"].startswith("\u00e9" * 1000)
    assert len(text) > MAX_RECORD_BYTES * 0.9  # the room is used, not thrown away


def test_many_small_fields_become_a_json_prefix() -> None:
    body = {f"k{i}": "v" * 40 for i in range(30_000)}  # ~1.5 MB, no single big field
    r = MessageRecord(kind="message", id=new_id(), ts=now_us(), seq=1, messagetype="T", body=body)
    out, text, original = bound_record(r)
    assert original is not None and len(text) <= MAX_RECORD_BYTES
    assert isinstance(out, MessageRecord)
    assert out.body[TRUNCATED]["bytes"] == original
    assert json.dumps(body, separators=(",", ":")).startswith(out.body["json_prefix"].partition("...[")[0])


def test_uve_data_is_bounded_too() -> None:
    r = UveRecord(kind="uve", id=new_id(), ts=now_us(), table="ObjectConfigNode", key="ctrl1", struct="Big",
                  data={"list": [{"name": f"n{i}", "blob": "x" * 2000} for i in range(600)]})
    out, text, original = bound_record(r)
    assert original is not None and len(text) <= MAX_RECORD_BYTES
    assert isinstance(out, UveRecord) and out.data is not None and out.data[TRUNCATED]["bytes"] == original


def _collector() -> Collector:
    cfg = base.ServiceConfig(name="collector", host="a1", cluster_id="c", listen_ip="127.0.0.1", listen_port=8086,
                             zookeeper="", rabbitmq=[], config_db=[], config_db_port=9041, config_db_rf=1,
                             analytics_db=[], analytics_db_port=9042, analytics_db_rf=1, kafka="", collectors=[])
    return Collector(cfg)


def test_a_truncated_record_passes_the_collector_and_fits_kafka() -> None:
    """The generator's limit is the collector's, and what the collector then produces fits Kafka's."""
    c = _collector()
    r = objectlog(config_log({"display_name": "x" * (2 * MIB)}), object_id="o" * 1024)
    out, _, _ = bound_record(r)
    envelope = len(json.dumps({"origin": ORIGIN.model_dump(), "record": None}, separators=(",", ":"))) - 4
    _, (topic, key, value, _) = c._judge(0, ORIGIN, out.model_dump(), envelope)
    assert len(key) + len(value) <= KAFKA_MESSAGE_MAX_BYTES and topic == "c-messages"
    assert len(value) - envelope == len(record_json(out))  # the collector measures what the generator did
    for env in (envelope, None):
        with pytest.raises(Exception, match="over the limit of"):
            c._judge(0, ORIGIN, r.model_dump(), env)


def test_collector_names_each_bad_record() -> None:
    """A batch of bad records is refused, each named with its own status (no Kafka needed: none is produced)."""
    c = _collector()
    app = web.Application(client_max_size=MAX_BATCH_BYTES + 1)
    app.router.add_post("/generator/records", c.h_records)
    good_but_big = objectlog({"pad": "x" * MAX_RECORD_BYTES}).model_dump()
    bad_ts = {"kind": "message", "id": "x", "ts": -1, "seq": 0, "messagetype": "T", "body": {}}

    async def go() -> tuple[int, dict[str, Any]]:
        async with TestClient(TestServer(app)) as client:
            r = await client.post("/generator/records", json={"origin": ORIGIN.model_dump(),
                                                               "records": [good_but_big, bad_ts]})
            return r.status, await r.json()
    status, body = run(go())
    assert status == 400 and body["accepted"] == 0
    assert [(x["index"], x["status"]) for x in body["refused"]] == [(0, 413), (1, 400)]
    assert "records.1.message.ts" in body["refused"][1]["error"]
    assert "over the limit" in body["refused"][0]["error"]


# --- the generator against a stand-in collector ---------------------------------------------------------------
Answer = Callable[[list[dict[str, Any]]], Awaitable[web.Response]]


@dataclass
class StandIn:
    """An in-process collector whose answer the test picks; it records what it accepted."""

    answer: Answer | None = None
    bodies: list[int] = field(default_factory=list)  # size of every request
    accepted: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    runner: web.AppRunner | None = None
    address: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests += 1
        self.bodies.append(len(raw))
        if len(raw) > MAX_BATCH_BYTES:
            return web.Response(status=413, text="batch over the limit")
        records = json.loads(raw)["records"]
        if self.answer is not None:
            return await self.answer(records)
        self.accepted += records
        return web.json_response({"accepted": len(records)})

    async def start(self) -> StandIn:
        app = web.Application(client_max_size=2 * MAX_BATCH_BYTES)
        app.router.add_post("/generator/records", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def tags(records: list[dict[str, Any]]) -> list[Any]:
    return [r["body"].get("n") for r in records if r["kind"] == "message"]


def test_batches_stay_under_the_byte_limit_and_keep_order() -> None:
    async def go() -> None:
        c = await StandIn().start()
        gen = Generator(ORIGIN, [c.address])
        try:
            for i in range(40):  # 40 x ~300 KB plus small ones: 12 MB in all
                gen.message("T", {"n": i, "pad": "p" * (300 * 1024 if i % 2 else 10)})
            gen.start()
            assert await gen.flush(30)
        finally:
            await gen.stop()
            await c.stop()
        assert tags(c.accepted) == list(range(40))
        assert max(c.bodies) <= BATCH_BYTES < MAX_BATCH_BYTES and len(c.bodies) >= 6
        assert gen.stats["refused"] == gen.stats["dropped"] == 0
    run(go())


def test_a_big_record_is_truncated_at_the_generator_and_the_rest_flows() -> None:
    async def go() -> None:
        c = await StandIn().start()
        gen = Generator(ORIGIN, [c.address])
        gen.start()
        try:
            oid = gen.objectlog("ConfigObjectTable", "virtual_network:d:p:big", "VncApiConfigLog",
                                config_log({"display_name": "x" * MIB}))
            for i in range(100):
                gen.message("T", {"n": i})
            assert await gen.flush(10)
        finally:
            await gen.stop()
            await c.stop()
        [big] = [r for r in c.accepted if r["id"] == oid]
        assert len(json.dumps(big, separators=(",", ":"))) <= MAX_RECORD_BYTES
        assert big["body"][TRUNCATED]["bytes"] > MIB and big["body"]["operation"] == "CREATE"
        assert tags(c.accepted) == list(range(100))
        assert gen.stats["truncated"] == 1 and gen.stats["dropped"] == gen.stats["refused"] == 0
    run(go())


def test_a_poisoned_record_is_isolated_when_the_collector_refuses_the_whole_batch() -> None:
    """An old-style 400 for the whole batch, naming nothing: the generator splits it until the bad record
    is alone, drops only that one and delivers every other record, in order."""
    c = StandIn()

    async def refuse_poison(records: list[dict[str, Any]]) -> web.Response:
        if any(r["body"].get("poison") for r in records if r["kind"] == "message"):
            return web.Response(status=400, text="invalid batch: something in there")
        c.accepted += records
        return web.json_response({"accepted": len(records)})
    c.answer = refuse_poison

    async def go() -> None:
        await c.start()
        gen = Generator(ORIGIN, [c.address])
        try:
            for i in range(300):
                gen.message("T", {"n": i, "poison": i == 137})
            gen.start()
            assert await gen.flush(10), "the poisoned batch was retried instead of isolated"
        finally:
            await gen.stop()
            await c.stop()
        assert tags(c.accepted) == [i for i in range(300) if i != 137]
        assert gen.stats["refused"] == 1 and gen.stats["dropped"] == 0
        assert c.requests <= 2 + 2 * 9  # log2(300) splits, not one request per record
    run(go())


def test_records_the_collector_names_as_refused_are_dropped_alone() -> None:
    c = StandIn()

    async def name_them(records: list[dict[str, Any]]) -> web.Response:
        bad = [{"index": i, "id": r["id"], "status": 413, "error": f"records.{i}: too big"}
               for i, r in enumerate(records) if r["kind"] == "message" and r["body"]["n"] % 50 == 7]
        ok = [r for i, r in enumerate(records) if i not in {b["index"] for b in bad}]
        c.accepted += ok
        if ok:
            return web.json_response({"accepted": len(ok), "refused": bad})
        return web.json_response({"error": "invalid batch", "accepted": 0, "refused": bad}, status=413)
    c.answer = name_them

    async def go() -> None:
        await c.start()
        gen = Generator(ORIGIN, [c.address], batch_records=100)
        try:
            gen.message("T", {"n": 7})  # a batch of one bad record: 413, named
            gen.start()
            assert await gen.flush(10)
            for i in range(8, 200):
                gen.message("T", {"n": i})
            assert await gen.flush(10)
        finally:
            await gen.stop()
            await c.stop()
        assert tags(c.accepted) == [i for i in range(8, 200) if i % 50 != 7]
        assert gen.stats["refused"] == 4 and gen.stats["sent"] == len(c.accepted)
        assert c.requests == 3  # nothing re-sent: 1 (the lone bad one) + 2 batches of 100
    run(go())


def test_transient_errors_retry_and_fail_over_without_dropping() -> None:
    a, b = StandIn(), StandIn()
    failures = {"n": 0}

    async def unavailable(records: list[dict[str, Any]]) -> web.Response:
        failures["n"] += 1
        return web.Response(status=503, text="Kafka cannot take the batch")
    a.answer = unavailable

    async def flaky(records: list[dict[str, Any]]) -> web.Response:
        if failures["n"] < 4:
            failures["n"] += 1
            return web.Response(status=500, text="oops")
        b.accepted += records
        return web.json_response({"accepted": len(records)})
    b.answer = flaky

    async def go() -> None:
        await a.start()
        await b.start()
        gen = Generator(ORIGIN, [a.address, b.address])
        try:
            for i in range(50):
                gen.message("T", {"n": i})
            gen.start()
            assert await gen.flush(20)
        finally:
            await gen.stop()
            await a.stop()
            await b.stop()
        assert tags(b.accepted) == list(range(50))
        assert gen.stats["failovers"] >= 4 and gen.stats["refused"] == gen.stats["dropped"] == 0
    run(go())


class _Up(Dependency):
    name = "zookeeper"

    def __init__(self) -> None:
        super().__init__()
        self._set(True, "session connected")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass


def _uve(gen: Generator) -> alarms.Uve:
    return alarms.Uve("ObjectConfigNode", "ctrl1",
                      {"NodeStatus": {"process_status": [process_status(ORIGIN, [_Up()], gen)]}}, 0.5)


def _types(gen: Generator) -> set[str]:
    return {a["type"].removeprefix(alarms.PREFIX) for a in alarms.evaluate(_uve(gen), now_us())}


def test_a_stalled_generator_shows_in_nodestatus_health_and_alarms_and_clears() -> None:
    c = StandIn()
    accept = {"on": False}

    async def until_fixed(records: list[dict[str, Any]]) -> web.Response:
        if not accept["on"]:
            return web.Response(status=503, text="Kafka did not acknowledge the batch: timeout")
        c.accepted += records
        return web.json_response({"accepted": len(records)})
    c.answer = until_fixed

    async def go() -> None:
        await c.start()
        gen = Generator(ORIGIN, [c.address], stall_after=0.5)
        deps: list[Dependency] = [_Up()]
        reporter = NodeStatusReporter(gen, deps)
        [health] = [d for d in deps if isinstance(d, GeneratorHealth)]
        gen.start()
        try:
            gen.message("T", {"n": 0})
            assert gen.stall() is None and "generator-stalled" not in _types(gen)
            await until(lambda: gen.stall() is not None, 10, "stall detected")
            assert "waiting more than" in (gen.stall() or "")
            st = gen.state()
            assert st["stalled"] and st["queued"] >= 1 and st["oldest_s"] >= 0.5 and st["last_sent"] is None
            # NodeStatus: the process_status entry says so; the alarm rule raises
            ns = reporter.snapshot()["NodeStatus"]["process_status"][0]
            assert ns["generator"]["stalled"] and ns["generator"]["since"] > 0
            [alarm] = [a for a in alarms.evaluate(_uve(gen), now_us()) if a["type"].endswith("generator-stalled")]
            assert alarm["severity"] == alarms.MAJOR and "contrail-api:config-api-1" in alarm["description"]
            assert "process-connectivity" in _types(gen)  # the collector link is Down too
            # /health: shown as degraded, but not failing (HAProxy must keep the replica)
            health.refresh()
            hs = health.status()
            assert health.ok and hs["degraded"] and "stalled" in health.reason
            assert GeneratorHealth(gen, gating=True).status()["ok"] is False

            accept["on"] = True
            assert await gen.flush(10)
            assert gen.stall() is None and "generator-stalled" not in _types(gen)
            assert not health.status()["degraded"] and gen.state()["last_sent_s_ago"] is not None
            assert tags(c.accepted) == [0]
        finally:
            await gen.stop()
            await c.stop()
    run(go())


def test_a_full_queue_is_a_stall_and_drops_are_counted() -> None:
    async def go() -> None:
        gen = Generator(ORIGIN, ["127.0.0.1:9"], max_pending=5)  # nothing listens: never sent
        for i in range(8):
            gen.message("T", {"n": i})
        assert gen.full() and gen.stats["dropped"] == 3
        assert "queue full" in (gen.stall() or "")
        report = gen.report()
        assert report["stalled"] and report["dropped"] == 3
        assert [q.record.body["n"] for q in gen._logs] == [3, 4, 5, 6, 7]  # type: ignore[union-attr]
        desc = alarms.generator_stalled(_uve(gen))
        assert desc is not None and "3 dropped" in desc[1]
    run(go())


def test_bytes_bound_the_queue_too() -> None:
    async def go() -> None:
        gen = Generator(ORIGIN, ["127.0.0.1:9"], max_pending=1000, max_pending_bytes=2 * MIB)
        for i in range(10):
            gen.objectlog("ConfigObjectTable", f"vn:{i}", "VncApiConfigLog", {"pad": "x" * MIB})
        assert gen.stats["truncated"] == 10 and gen.stats["dropped"] >= 6
        assert gen.state()["queued_bytes"] <= 2 * MIB and gen.full()
    run(go())
