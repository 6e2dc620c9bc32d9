"""contrail-analytics-api against a real analytics-DB Cassandra node on 127.0.71.1.

Cassandra starts once for the module. The store, filled with ``write_messages``,
``write_objectlogs`` and ``write_uve``, and the API (``api.build``, on an aiohttp ``TestServer``)
run on one event loop in a background thread; the tests talk HTTP to it with httpx. Expected query
answers are computed from the records written. The last test runs the real service process
(``python -m contrail_ha.services.analytics.api``) and reads its ``/health``. No Kafka, no ZooKeeper.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp.test_utils import TestServer

from contrail_ha.probes import cassandra as cprobe
from contrail_ha.rendering import cassandra as crender
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.cassandra import cluster_of
from contrail_ha.services import base
from contrail_ha.services.analytics import api, query
from contrail_ha.services.analytics.protocol import MessageRecord, ObjectLogRecord, Origin, new_id, now_us
from contrail_ha.services.analytics.store import HOUR_US, AnalyticsStore, bucket
from contrail_ha.topology.plan import ANALYTICS_DB
from tests.helpers import proc
from tests.helpers.aio import Loop
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PREFIX = "127.0.71"
T = TypeVar("T")
MIN = 60_000_000
TIMINGS: dict[str, str] = {}

ORIGINS = [Origin(source="ctrl1", node_type="Config", module="contrail-api", instance_id="config-api-1"),
           Origin(source="ctrl2", node_type="Config", module="contrail-api", instance_id="config-api-2"),
           Origin(source="n1", node_type="Analytics", module="contrail-collector", instance_id="collector-1")]
ALARM = {"type": "default-global-system-config:system-defined-process-status", "severity": 0,
         "description": "Process(es) not running: zookeeper (PROCESS_STATE_EXITED)", "timestamp": 1, "ack": False}


@dataclass
class Db:
    ips: list[str]
    port: int
    tmp: Path
    auth: tuple[str, str]  # the analytics' Cassandra role


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    tmp = tmp_path_factory.mktemp("analytics-api")
    plan = loopback_plan(PREFIX, 1)
    layout = Layout(tmp / "state")
    proc.require_runtime(layout, "cassandra")
    inst = plan.instance(ANALYTICS_DB, "n1")
    t0 = time.monotonic()
    with proc.running(crender.render(plan, inst, layout, jmx=False), tmp / "logs") as (p, _keeper):
        proc.wait_for(lambda: p.poll() is None and cprobe.ready(plan, layout, inst)[0], 180, "analytics-db")
        TIMINGS["cassandra_ready_s"] = f"{time.monotonic() - t0:.1f}"
        c = cluster_of(plan, ANALYTICS_DB)
        yield Db([str(h.ip) for h in c.hosts], c.cql_port, tmp,
                 crender.login(layout, ANALYTICS_DB, crender.CLIENT_ROLE[ANALYTICS_DB]))
    print("\ntimings: " + ", ".join(f"{k}={v}" for k, v in TIMINGS.items()))


@dataclass
class Data:
    now: int
    boundary: int  # an hour-bucket boundary in the past
    messages: list[dict[str, Any]]  # what was written, as the query's columns
    objects: list[dict[str, Any]]


def service_config(db: Db, port: int, collector_port: int) -> base.ServiceConfig:
    ip = f"{PREFIX}.1"
    return base.ServiceConfig(
        name="analytics-api-1", host="n1", cluster_id="test", listen_ip=ip, listen_port=port,
        zookeeper=f"{ip}:2181", rabbitmq=[f"{ip}:5672"], config_db=[ip], config_db_port=9041, config_db_rf=1,
        analytics_db=db.ips, analytics_db_port=db.port, analytics_db_rf=1, kafka=f"{ip}:9092",
        analytics_db_user=db.auth[0], analytics_db_password=db.auth[1],
        collectors=[f"{ip}:{collector_port}"])


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _message_rows(now: int, boundary: int) -> list[tuple[Origin, MessageRecord]]:
    out: list[tuple[Origin, MessageRecord]] = []
    for i in range(120):  # spread over the last 3 hours: several hour buckets
        out.append((ORIGINS[i % 3], MessageRecord(
            kind="message", id=f"s{i:04d}{new_id()[:8]}", ts=now - 180 * MIN + i * 90_000_000, seq=i,
            messagetype="ConfigUpdate" if i % 2 else "ApiRequest", category="api" if i % 4 == 0 else "",
            level=i % 8, body={"i": i, "text": f"message {i}", "tags": ["odd" if i % 2 else "even"]})))
    burst = now - 20 * MIN  # 12 messages at one timestamp
    out += [(ORIGINS[0], MessageRecord(kind="message", id=f"b{i:02d}", ts=burst, seq=1000 + i, messagetype="Burst",
                                       level=6, body={"burst": i})) for i in range(12)]
    out += [(ORIGINS[1], MessageRecord(kind="message", id=f"edge{i}", ts=boundary - 1 + i, seq=2000 + i,
                                       messagetype="Edge", level=5, body={"edge": i})) for i in range(2)]
    return out


def _columns(o: Origin, r: MessageRecord) -> dict[str, Any]:
    return {"MessageTS": r.ts, "MessageId": r.id, "Source": o.source, "NodeType": o.node_type, "ModuleId": o.module,
            "InstanceId": o.instance_id, "Messagetype": r.messagetype, "Category": r.category, "Level": r.level,
            "SequenceNum": r.seq, "Xmlmessage": r.body}


@dataclass
class Env:
    db: Db
    loop: Loop
    store: AnalyticsStore
    server: TestServer
    http: httpx.Client
    data: Data

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["content"] = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(path, **kw)

    def query(self, **body: Any) -> list[dict[str, Any]]:
        r = self.post("/analytics/query", {"table": "MessageTable", "start_time": "now-4h", "end_time": "now"} | body)
        assert r.status_code == 200, r.text
        return r.json()["value"]


@pytest.fixture(scope="module")
def env(db: Db) -> Iterator[Env]:
    loop = Loop()
    store = AnalyticsStore(db.ips, db.port, 1, auth=db.auth)
    server: TestServer | None = None
    try:
        t0 = time.monotonic()
        loop.run(store.start())
        TIMINGS["store_start_s"] = f"{time.monotonic() - t0:.2f}"
        now = now_us()
        boundary = bucket(now) * HOUR_US
        if now - boundary < 2 * MIN:  # keep the edge messages clear of "now"
            boundary -= HOUR_US
        msgs = _message_rows(now, boundary)
        objs = [(ORIGINS[i % 2], ObjectLogRecord(
            kind="objectlog", id=f"o{i}", ts=now - (30 - i) * MIN, table="ConfigObjectTable",
            object_id=f"virtual_network:default-domain:p:vn{i}", messagetype="ConfigObjectLog",
            body={"operation": "CREATE" if i < 4 else "DELETE", "name": f"vn{i}"})) for i in range(6)]
        objs += [(ORIGINS[0], ObjectLogRecord(kind="objectlog", id=f"n{i}", ts=now - (10 - i) * MIN,
                                              table="ObjectConfigNode", object_id="ctrl1", messagetype="NodeEvent",
                                              body={"event": f"e{i}"})) for i in range(2)]
        t0 = time.monotonic()
        loop.run(store.write_messages(msgs))
        loop.run(store.write_objectlogs(objs))
        loop.run(_write_uves(store, now))
        TIMINGS["fill_s"] = f"{time.monotonic() - t0:.2f}"
        objects = [{"MessageTS": r.ts, "MessageId": r.id, "ObjectId": r.object_id, "Source": o.source,
                    "Messagetype": r.messagetype, "ObjectLog": r.body, "table": r.table} for o, r in objs]
        data = Data(now, boundary, sorted((_columns(o, r) for o, r in msgs),
                                          key=lambda c: (c["MessageTS"], c["MessageId"])), objects)
        server = TestServer(api.build(service_config(db, 0, 1), store), host="127.0.0.1")
        loop.run(server.start_server())
        with httpx.Client(base_url=str(server.make_url("")), timeout=30) as http:
            yield Env(db, loop, store, server, http, data)
    finally:
        if server is not None:
            loop.run(server.close())
        loop.run(store.close())
        loop.close()


NODE_A = {"NodeStatus": {"process_status": [{"module_id": "contrail-api", "instance_id": "config-api-1",
                                             "state": "Functional"}]},
          "ConfigStatus": {"vns": 3, "uptime": 9}}
NODE_B = {"NodeStatus": {"process_info": [{"process_name": "zookeeper", "process_state": "PROCESS_STATE_EXITED"}]}}
ORIGIN_A, ORIGIN_B = "ctrl1:Config:contrail-api:config-api-1", "ctrl1:Config:contrail-node-agent:ctrl1"


async def _write_uves(store: AnalyticsStore, now: int) -> None:
    ctrl1 = {"NodeStatus": {**NODE_A["NodeStatus"], **NODE_B["NodeStatus"]}, "ConfigStatus": NODE_A["ConfigStatus"]}
    await store.write_uve("ObjectConfigNode", "ctrl1", ctrl1, {ORIGIN_A: _timed(NODE_A, now - 1),
                                                              ORIGIN_B: _timed(NODE_B, now)}, [ALARM], now, 3, now)
    ctrl2 = {"NodeStatus": {"process_status": [{"module_id": "contrail-api", "instance_id": "config-api-2",
                                                "state": "Functional"}]}}
    await store.write_uve("ObjectConfigNode", "ctrl2", ctrl2,
                          {"ctrl2:Config:contrail-api:config-api-2": _timed(ctrl2, now)}, [], now, 4, now)
    await store.write_uve("ObjectConfigNode", "gone", {}, {}, [], now, 5, now)  # every origin stale: not listed
    n1 = {"NodeStatus": {"process_status": [{"module_id": "contrail-collector", "instance_id": "collector-1"}]}}
    await store.write_uve("ObjectCollectorInfo", "n1", n1,
                          {"n1:Analytics:contrail-collector:collector-1": _timed(n1, now)}, [ALARM | {"severity": 1}],
                          now, 6, now)


def _timed(structs: dict[str, Any], ts: int) -> dict[str, Any]:
    """An origin's structs as the aggregator stores them."""
    return {s: {"ts": ts, "data": d} for s, d in structs.items()}


def text_error(r: httpx.Response, status: int, *parts: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    for p in parts:
        assert p in r.text, (p, r.text)
    return r.text


# --- links and UVEs -----------------------------------------------------------------------------------
def test_links(env: Env) -> None:
    b = str(env.server.make_url("")).rstrip("/")
    root = env.get("/analytics").json()
    assert root == [{"name": n, "href": f"{b}/analytics/{n}"} for n in ("uves", "uve-types", "alarms", "tables",
                                                                         "query")]
    uves = env.get("/analytics/uves").json()
    assert {"name": "config-nodes", "href": f"{b}/analytics/uves/config-nodes"} in uves
    assert len(uves) == 5 and all(u["name"].endswith("s") for u in uves)
    types = env.get("/analytics/uve-types").json()
    assert types["config-node"] == {"global_system_object": True, "table": "ObjectConfigNode"}
    assert types["lb-node"]["table"] == "ObjectLbNode"


def test_uve_list_and_filters(env: Env) -> None:
    b = str(env.server.make_url("")).rstrip("/")

    def names(path: str, **params: str) -> list[str]:
        r = env.get(path, params=params)
        assert r.status_code == 200, r.text
        return [x["name"] for x in r.json()]

    r = env.get("/analytics/uves/config-nodes").json()
    assert r == [{"name": k, "href": f"{b}/analytics/uves/config-node/{k}"} for k in ("ctrl1", "ctrl2")]
    assert names("/analytics/uves/config-nodes", kfilt="ctrl2,zz*") == ["ctrl2"]
    assert names("/analytics/uves/config-nodes", kfilt="c*1") == ["ctrl1"]
    assert names("/analytics/uves/config-nodes", sfilt="ctrl2") == ["ctrl2"]
    assert names("/analytics/uves/config-nodes", mfilt="contrail-node-agent") == ["ctrl1"]
    assert names("/analytics/uves/config-nodes", mfilt="contrail-api:config-api-2") == ["ctrl2"]
    assert names("/analytics/uves/config-nodes", cfilt="ConfigStatus") == ["ctrl1"]
    assert names("/analytics/uves/config-nodes", cfilt="NodeStatus:process_info,UVEAlarms") == ["ctrl1"]
    assert names("/analytics/uves/config-nodes", cfilt="NodeStatus:nope") == []
    assert names("/analytics/uves/analytics-nodes") == ["n1"]
    assert names("/analytics/uves/lb-nodes") == []
    text_error(env.get("/analytics/uves/vrouters"), 404, "'vrouters'", "config-nodes", "analytics-nodes")
    text_error(env.get("/analytics/uves/config-node"), 404, "'config-node'")
    text_error(env.get("/analytics/uves/config-nodes", params={"cfilt": "A:"}), 400, "cfilt: bad entry 'A:'")


def test_uve_get(env: Env) -> None:
    full = env.get("/analytics/uves/config-node/ctrl1", params={"flat": ""}).json()
    assert full["ConfigStatus"] == {"vns": 3, "uptime": 9}
    assert full["NodeStatus"]["process_info"][0]["process_name"] == "zookeeper"
    assert full["UVEAlarms"] == {"alarms": [ALARM]}
    assert "UVEAlarms" not in env.get("/analytics/uves/config-node/ctrl2").json()
    assert env.get("/analytics/uves/config-node/ctrl1", params={"cfilt": "ConfigStatus:vns"}).json() == {
        "ConfigStatus": {"vns": 3}}
    agent = env.get("/analytics/uves/config-node/ctrl1", params={"mfilt": "contrail-node-agent"}).json()
    assert agent == {**NODE_B, "UVEAlarms": {"alarms": [ALARM]}}
    api_only = env.get("/analytics/uves/config-node/ctrl1", params={"sfilt": "ctrl1", "mfilt": "contrail-api"}).json()
    assert api_only["NodeStatus"] == NODE_A["NodeStatus"] and api_only["ConfigStatus"] == NODE_A["ConfigStatus"]
    assert env.get("/analytics/uves/config-node/ctrl1", params={"sfilt": "ctrl2"}).json() == {}
    nothing = env.get("/analytics/uves/config-node/no-such-node")
    assert nothing.status_code == 200 and nothing.json() == {}
    assert env.get("/analytics/uves/config-node/gone").json() == {}
    star = env.get("/analytics/uves/config-node/ctrl*", params={"cfilt": "NodeStatus"}).json()
    assert [v["name"] for v in star["value"]] == ["ctrl1", "ctrl2"]
    assert set(star["value"][0]["value"]) == {"NodeStatus"}
    text_error(env.get("/analytics/uves/vrouter/x"), 404, "'vrouter'", "config-node")


def test_uve_post(env: Env) -> None:
    r = env.post("/analytics/uves/config-nodes", {"kfilt": ["ctrl*"], "cfilt": ["NodeStatus:process_status"]})
    assert r.status_code == 200, r.text
    value = r.json()["value"]
    assert [v["name"] for v in value] == ["ctrl1", "ctrl2"]
    assert value[1]["value"]["NodeStatus"]["process_status"][0]["instance_id"] == "config-api-2"
    only = env.post("/analytics/uves/config-nodes", {"sfilt": "ctrl2"}).json()["value"]
    assert [v["name"] for v in only] == ["ctrl2"]
    assert env.post("/analytics/uves/config-nodes", {}).json()["value"][0]["name"] == "ctrl1"
    text_error(env.post("/analytics/uves/config-nodes", b"{nope"), 400, "malformed JSON")
    text_error(env.post("/analytics/uves/config-nodes", {"kfilt": [1]}), 400, "kfilt: expected a list of strings")
    text_error(env.post("/analytics/uves/config-nodes", {"xfilt": 1}), 400, "unknown key(s) 'xfilt'")
    text_error(env.post("/analytics/uves/vrouters", {}), 404, "'vrouters'")


def test_alarms(env: Env) -> None:
    r = env.get("/analytics/alarms").json()
    assert r == {"analytics-node": [{"name": "n1", "value": {"UVEAlarms": {"alarms": [ALARM | {"severity": 1}]}}}],
                 "config-node": [{"name": "ctrl1", "value": {"UVEAlarms": {"alarms": [ALARM]}}}]}
    assert list(env.get("/analytics/alarms", params={"type": "config-node"}).json()) == ["config-node"]
    assert env.get("/analytics/alarms", params={"type": "lb-node"}).json() == {}
    text_error(env.get("/analytics/alarms", params={"type": "bogus"}), 404, "'bogus'")


# --- tables -------------------------------------------------------------------------------------------
def test_tables_and_schemas(env: Env) -> None:
    b = str(env.server.make_url("")).rstrip("/")
    tables = env.get("/analytics/tables").json()
    assert tables[:2] == [{"name": "MessageTable", "href": f"{b}/analytics/table/MessageTable", "type": "LOG"},
                          {"name": "ConfigObjectTable", "href": f"{b}/analytics/table/ConfigObjectTable",
                           "type": "OBJECT"}]
    assert {"name": "ObjectConfigNode", "href": f"{b}/analytics/table/ObjectConfigNode", "type": "OBJECT"} in tables
    assert env.get("/analytics/table/MessageTable").json() == [
        {"name": "schema", "href": f"{b}/analytics/table/MessageTable/schema"}]
    s = env.get("/analytics/table/MessageTable/schema").json()
    assert s["type"] == "LOG" and {"name": "Level", "datatype": "int", "index": True} in s["columns"]
    o = env.get("/analytics/table/ConfigObjectTable/schema").json()
    assert o["type"] == "OBJECT" and [c["name"] for c in o["columns"]][-1] == "ObjectLog"
    text_error(env.get("/analytics/table/FlowTable"), 404, "'FlowTable'", "MessageTable")
    text_error(env.get("/analytics/table/FlowTable/schema"), 404, "'FlowTable'")


# --- queries ------------------------------------------------------------------------------------------
def test_query_where_select_and_order(env: Env) -> None:
    got = env.query(select_fields=["MessageTS", "MessageId", "Source", "Level", "Xmlmessage"],
                    where=[[{"name": "Source", "value": "ctrl1", "op": 1}, {"name": "Level", "value": "3", "op": 5}]])
    want = [m for m in env.data.messages if m["Source"] == "ctrl1" and m["Level"] <= 3]
    assert len(want) >= 10
    assert [g["MessageId"] for g in got] == [m["MessageId"] for m in want]
    assert got[0] == {k: want[0][k] for k in ("MessageTS", "MessageId", "Source", "Level", "Xmlmessage")}
    assert isinstance(got[0]["Xmlmessage"], dict)
    everything = env.query(select_fields=["MessageId"])
    assert [g["MessageId"] for g in everything] == [m["MessageId"] for m in env.data.messages]


def test_query_or_ranges_prefix_filter(env: Env) -> None:
    got = env.query(select_fields=["MessageId", "Level", "Messagetype", "Category"],
                    where=[[{"name": "Level", "value": 2, "value2": 4, "op": 3},
                            {"name": "Messagetype", "value": "Config", "op": 7}],
                           [{"name": "Category", "value": "api", "op": 1}]])
    want = [m for m in env.data.messages
            if (2 <= m["Level"] <= 4 and m["Messagetype"].startswith("Config")) or m["Category"] == "api"]
    assert [g["MessageId"] for g in got] == [m["MessageId"] for m in want]
    rx = env.query(select_fields=["SequenceNum"], where=[[{"name": "ModuleId", "value": "contrail-api", "op": 1}]],
                   filter=[[{"name": "Xmlmessage", "value": r'"text":"message 1\d"', "op": 8}]])
    assert [g["SequenceNum"] for g in rx] == [i for i in range(10, 20) if i % 3 != 2]
    not_in = env.query(select_fields=["MessageId"], filter=[[{"name": "Level", "value": 1, "value2": 6, "op": 4},
                                                             {"name": "Source", "value": "ctrl1", "op": 2}]])
    assert [g["MessageId"] for g in not_in] == [m["MessageId"] for m in env.data.messages
                                                if not 1 <= m["Level"] <= 6 and m["Source"] != "ctrl1"]


def test_query_same_timestamp_and_bucket_edges(env: Env) -> None:
    burst = env.query(select_fields=["MessageId"], where=[[{"name": "Messagetype", "value": "Burst", "op": 1}]])
    assert [g["MessageId"] for g in burst] == [f"b{i:02d}" for i in range(12)]
    edge = env.query(select_fields=["MessageTS", "MessageId"], start_time=env.data.boundary - 1,
                     end_time=env.data.boundary)
    want = [m for m in env.data.messages if env.data.boundary - 1 <= m["MessageTS"] <= env.data.boundary]
    assert [g["MessageId"] for g in edge] == [m["MessageId"] for m in want]
    assert {"edge0", "edge1"} <= {g["MessageId"] for g in edge}
    assert env.query(select_fields=["MessageId"], start_time=env.data.boundary, end_time=env.data.boundary) == [
        {"MessageId": m["MessageId"]} for m in want if m["MessageTS"] == env.data.boundary]


def test_query_sort_and_limit(env: Env) -> None:
    newest = env.query(select_fields=["MessageTS", "MessageId"], sort_fields=["MessageTS"], sort=2, limit=5)
    want = sorted(env.data.messages, key=lambda m: m["MessageTS"], reverse=True)[:5]
    assert [g["MessageId"] for g in newest] == [m["MessageId"] for m in want]
    first = env.query(select_fields=["MessageId"], limit=3)
    assert [g["MessageId"] for g in first] == [m["MessageId"] for m in env.data.messages[:3]]
    by_level = env.query(select_fields=["Level", "SequenceNum"], sort_fields=["Level", "SequenceNum"], sort=2,
                         limit=4, where=[[{"name": "Source", "value": "n1", "op": 1}]])
    want = sorted((m for m in env.data.messages if m["Source"] == "n1"),
                  key=lambda m: (m["Level"], m["SequenceNum"]), reverse=True)[:4]
    assert by_level == [{"Level": m["Level"], "SequenceNum": m["SequenceNum"]} for m in want]
    recent = env.query(select_fields=["MessageId"], start_time=env.data.now - 10 * MIN, end_time="now")
    assert {g["MessageId"] for g in recent} == {m["MessageId"] for m in env.data.messages
                                               if m["MessageTS"] >= env.data.now - 10 * MIN} != set()


def test_query_object_tables(env: Env) -> None:
    r = env.post("/analytics/query", {
        "table": "ConfigObjectTable", "start_time": "now-1h", "end_time": "now",
        "select_fields": ["ObjectId", "Source", "ObjectLog"],
        "where": [[{"name": "ObjectId", "value": "virtual_network:default-domain:p:vn", "op": 7}]],
        "filter": [[{"name": "ObjectLog", "value": {"operation": "DELETE", "name": "vn5"}, "op": 1}],
                   [{"name": "Source", "value": "ctrl1", "op": 1}]]})
    assert r.status_code == 200, r.text
    want = [o for o in env.data.objects if o["table"] == "ConfigObjectTable"
            and (o["ObjectLog"] == {"operation": "DELETE", "name": "vn5"} or o["Source"] == "ctrl1")]
    assert r.json()["value"] == [{"ObjectId": o["ObjectId"], "Source": o["Source"], "ObjectLog": o["ObjectLog"]}
                                 for o in want]
    assert len(want) == 4
    node = env.post("/analytics/query", {"table": "ObjectConfigNode", "start_time": "now-1h", "end_time": "now",
                                         "select_fields": ["ObjectLog"], "sort": 2}).json()["value"]
    assert node == [{"ObjectLog": {"event": "e1"}}, {"ObjectLog": {"event": "e0"}}]


def test_query_pages_through_cassandra(env: Env) -> None:
    """The engine's paging against the real store: a page smaller than the 12 rows sharing one timestamp."""
    q = query.parse_query({"table": "MessageTable", "start_time": "now-4h", "end_time": "now",
                           "select_fields": ["MessageId"]})
    paged = env.loop.run(query.run(q, env.store, page=5))
    assert [g["MessageId"] for g in paged] == [m["MessageId"] for m in env.data.messages]


def test_query_errors(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = {"table": "MessageTable", "start_time": "now-4h", "end_time": "now", "select_fields": ["MessageId"]}
    text_error(env.post("/analytics/query", b'{"table": '), 400, "malformed JSON")
    text_error(env.post("/analytics/query", b"\xff\xfe"), 400, "malformed JSON")
    text_error(env.post("/analytics/query", b"[" * 100_000), 400, "malformed JSON")
    text_error(env.post("/analytics/query", [ok]), 400, "must be a JSON object")
    text_error(env.post("/analytics/query", ok | {"table": None}), 400, "'table' is required")
    text_error(env.post("/analytics/query", ok | {"table": "FlowSeriesTable"}), 404, "'FlowSeriesTable'",
               "MessageTable")
    text_error(env.post("/analytics/query", ok | {"select_fields": ["MessageId", "vn"]}), 400, "unknown field 'vn'",
               "valid: MessageTS")
    text_error(env.post("/analytics/query", ok | {"where": [[{"name": "Lvl", "value": 1, "op": 1}]]}), 400,
               "where[0][0]: unknown field 'Lvl'")
    text_error(env.post("/analytics/query", ok | {"filter": [[{"name": "Level", "value": 1, "op": 11}]]}), 400,
               "filter[0][0]: bad op 11")
    text_error(env.post("/analytics/query", ok | {"sort_fields": ["Nope"]}), 400, "sort_fields: unknown field")
    text_error(env.post("/analytics/query", ok | {"start_time": "now-1y"}), 400, "start_time: bad time 'now-1y'")
    text_error(env.post("/analytics/query", ok | {"start_time": 200, "end_time": 100}), 400,
               "end_time 100 is before start_time 200")
    text_error(env.post("/analytics/query", ok | {"limit": "10"}), 400, "limit: '10' is not a positive integer")
    text_error(env.post("/analytics/query", ok | {"select_fields": []}), 400, "select_fields is empty")
    text_error(env.post("/analytics/query", ok | {"limit": query.MAX_ROWS + 1}), 400, "limit", "narrow the time range")
    text_error(env.post("/analytics/query", json.dumps(ok | {"limit": float("nan")}).encode()), 400,
               "limit: nan is not a positive integer")
    for weird in (b"null", b"1e999", b'"x"', b'{"table": {"a": 1}}', b'{"table": "MessageTable", "where": {}}',
                  b'{"table": "MessageTable", "start_time": 1e300, "end_time": "now", "select_fields": ["Level"]}'):
        assert env.post("/analytics/query", weird).status_code == 400, weird
    big = b'{"table": "MessageTable", "pad": "' + b"x" * (api.MAX_BODY + 10) + b'"}'
    text_error(env.post("/analytics/query", big), 413, "too large")
    text_error(env.http.post("/analytics/query", content=iter([big[:600_000], big[600_000:]])), 413, "too large")
    assert env.get("/analytics/query").status_code == 405

    monkeypatch.setattr(query, "MAX_ROWS", 50)
    text_error(env.post("/analytics/query", ok), 400, "more than 50 rows match: add a limit", "narrow the time range")
    text_error(env.post("/analytics/query", ok | {"limit": 51}), 400, "limit 51 is above the maximum of 50")
    assert len(env.query(select_fields=["MessageId"], limit=50)) == 50


def test_store_unavailable_is_503(env: Env) -> None:
    """A replica whose store is not connected: 503 naming the reason where the DB is needed, links still served."""
    idle = AnalyticsStore(env.db.ips, env.db.port, 1, auth=env.db.auth)
    server = TestServer(api.build(None, idle), host="127.0.0.1")
    env.loop.run(server.start_server())
    try:
        with httpx.Client(base_url=str(server.make_url("")), timeout=10) as http:
            for r in (http.get("/analytics/uves/config-nodes"), http.get("/analytics/uves/config-node/ctrl1"),
                      http.get("/analytics/alarms"),
                      http.post("/analytics/query", json={"table": "MessageTable", "start_time": "now-1h",
                                                          "end_time": "now", "select_fields": ["MessageId"]})):
                text_error(r, 503, "analytics DB", "not connected")
            assert http.get("/analytics/tables").status_code == 200
            text_error(http.post("/analytics/query", content=b"{"), 400, "malformed JSON")  # input checked first
    finally:
        env.loop.run(server.close())


# --- the service process --------------------------------------------------------------------------------
def test_service_process(env: Env, tmp_path: Path) -> None:
    """``python -m contrail_ha.services.analytics.api``: healthy on the real DB, serves, stops on SIGTERM."""
    ip = f"{PREFIX}.1"
    port = free_port(ip)
    cfg = service_config(env.db, port, free_port(ip))  # nothing listens on the collector port
    conf = tmp_path / "service.json"
    conf.write_text(cfg.model_dump_json())
    log = tmp_path / "analytics-api.log"
    root = Path(__file__).resolve().parents[2]
    t0 = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "contrail_ha.services.analytics.api", str(conf)], cwd=root,
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, "PYTHONPATH": str(root)})
    try:
        url = f"http://{ip}:{port}"

        def healthy() -> dict[str, Any] | None:
            assert p.poll() is None, log.read_text()[-2000:]
            r = httpx.get(f"{url}/health", timeout=2)
            return r.json() if r.status_code == 200 else None

        health = proc.wait_for(healthy, 60, "analytics-api /health")
        TIMINGS["service_healthy_s"] = f"{time.monotonic() - t0:.1f}"
        assert isinstance(health, dict)
        assert set(health["dependencies"]) == {"analytics-db", "analytics-store", "analytics-generator"}
        assert health["dependencies"]["analytics-db"]["reason"] == "1/1 nodes up, quorum 1"
        r = httpx.get(f"{url}/analytics/uves/config-nodes", timeout=10)
        assert [x["name"] for x in r.json()] == ["ctrl1", "ctrl2"]
        assert r.json()[0]["href"] == f"{url}/analytics/uves/config-node/ctrl1"
        text_error(httpx.post(f"{url}/analytics/query", content=b"x" * (api.MAX_BODY + 1), timeout=10), 413)
        q = httpx.post(f"{url}/analytics/query", json={"table": "MessageTable", "start_time": "now-4h",
                                                       "end_time": "now", "select_fields": ["MessageId"], "limit": 7})
        assert q.status_code == 200 and len(q.json()["value"]) == 7
    finally:
        proc.stop(p, timeout=15)
    assert p.returncode == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert re.search(r"listening on 127\.0\.71\.1:\d+", text) and "Traceback" not in text, text[-2000:]
