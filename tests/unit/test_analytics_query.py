"""The analytics query engine's pure parts: query parsing and its error texts, times, where/filter
evaluation, paging, sort and limit (over an in-memory row list with the store's read contract),
and the UVE filters (no servers)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from contrail_ha.services.analytics import query as q
from contrail_ha.services.analytics import store
from contrail_ha.services.analytics.query import BadRequest, NotFound, Op, UveFilter

NOW = 1_700_000_000_000_000
MIN = 60_000_000


def body(**kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"table": "MessageTable", "start_time": NOW - 10 * MIN, "end_time": NOW,
                         "select_fields": ["MessageTS", "Source"]}
    b.update(kw)
    return {k: v for k, v in b.items() if v is not None}


def bad(b: Any, *parts: str) -> str:
    with pytest.raises(BadRequest) as e:
        q.parse_query(b, now=NOW)
    for p in parts:
        assert p in str(e.value), (p, str(e.value))
    return str(e.value)


def msg(ts: int, i: int, **kw: Any) -> dict[str, Any]:
    r = {"ts": ts, "id": f"id{i:05d}", "source": "ctrl1", "node_type": "Config", "module": "contrail-api",
         "instance_id": "config-api-1", "messagetype": "Trace", "category": "", "level": 6, "seq": i,
         "body": {"n": i}}
    r.update(kw)
    return r


class Rows:
    """The store's read contract over a list: rows in (ts, id) order, ``start <= ts <= end``, at most ``limit``."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = sorted(rows, key=lambda r: (r["ts"], r["id"]))
        self.calls: list[tuple[Any, ...]] = []

    async def messages(self, start: int, end: int, limit: int, reverse: bool = False) -> list[dict[str, Any]]:
        self.calls.append(("messages", start, end, limit) + (("reverse",) if reverse else ()))
        rows = [dict(r) for r in self.rows if start <= r["ts"] <= end]
        return (rows[::-1] if reverse else rows)[:limit]

    async def objectlogs(self, table: str, start: int, end: int, limit: int,
                         reverse: bool = False) -> list[dict[str, Any]]:
        self.calls.append(("objectlogs", table, start, end, limit) + (("reverse",) if reverse else ()))
        rows = [dict(r) for r in self.rows if r.get("tbl") == table and start <= r["ts"] <= end]
        return (rows[::-1] if reverse else rows)[:limit]


def run(b: dict[str, Any], rows: Rows, **kw: Any) -> list[dict[str, Any]]:
    return asyncio.run(q.run(q.parse_query(b, now=NOW), rows, now=NOW, **kw))


# --- tables ----------------------------------------------------------------------------------------
def test_schemas_map_every_store_column() -> None:
    assert sorted(c.key for c in q.MESSAGE_SCHEMA.values()) == sorted(store.MESSAGE_COLUMNS)
    assert sorted(c.key for c in q.OBJECT_SCHEMA.values()) == sorted(store.OBJECT_COLUMNS)
    t = q.tables()
    assert t["MessageTable"] == "LOG" and t["ConfigObjectTable"] == "OBJECT" and t["ObjectConfigNode"] == "OBJECT"
    s = q.schema_json("MessageTable")
    assert s["type"] == "LOG"
    cols = {c["name"]: c for c in s["columns"]}
    assert cols["MessageTS"] == {"name": "MessageTS", "datatype": "int", "index": True}
    assert cols["Xmlmessage"] == {"name": "Xmlmessage", "datatype": "json", "index": False}
    assert {c["name"] for c in q.schema_json("ObjectLbNode")["columns"]} >= {"ObjectId", "ObjectLog"}
    with pytest.raises(NotFound, match=r"'NoSuchTable'.*MessageTable"):
        q.schema_json("NoSuchTable")


# --- times -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (123, 123), ("456", 456), (" now ", NOW), ("now-10m", NOW - 10 * MIN), ("now-1h", NOW - 60 * MIN),
    ("now-30s", NOW - 30_000_000), ("now+2d", NOW + 2 * 86_400_000_000), ("now - 5m", NOW - 5 * MIN)])
def test_parse_time(value: Any, expected: int) -> None:
    assert q.parse_time(value, "start_time", NOW) == expected


@pytest.mark.parametrize("value", ["yesterday", "now-10x", "now-m", "now10m", "", True, -1, 1.5, None, [1]])
def test_parse_time_refuses(value: Any) -> None:
    with pytest.raises(BadRequest, match=r"^start_time: "):
        q.parse_time(value, "start_time", NOW)


# --- parsing and its messages ------------------------------------------------------------------------
def test_parse_valid_query() -> None:
    parsed = q.parse_query(body(start_time="now-10m", end_time="now", limit=5, sort=2, sort_fields=["Level"],
                                where=[[{"name": "Level", "value": "4", "op": 5}]],
                                filter=[{"name": "Source", "value": "ctrl", "op": "PREFIX"}]), now=NOW)
    assert (parsed.start_us, parsed.end_us, parsed.limit, parsed.descending) == (NOW - 10 * MIN, NOW, 5, True)
    assert parsed.where[0][0].value == 4 and parsed.where[0][0].op == Op.LEQ
    assert parsed.filter[0][0].op == Op.PREFIX  # a flat list is one AND-list; op by name
    assert not parsed.in_scan_order
    assert q.parse_query(body(sort=1), now=NOW).sort_fields == ["MessageTS"]
    assert q.parse_query(body(sort=1), now=NOW).in_scan_order


def test_parse_errors_name_the_problem() -> None:
    bad([1, 2], "JSON object", "list")
    bad(body(tabel="x"), "unknown key(s) 'tabel'", "valid: table")
    bad(body(table=None), "'table' is required", "MessageTable")
    bad(body(table=7), "table: expected a table name")
    with pytest.raises(NotFound) as e:
        q.parse_query(body(table="FlowTable"), now=NOW)
    assert "'FlowTable'" in str(e.value) and "MessageTable" in str(e.value) and "ConfigObjectTable" in str(e.value)
    bad(body(start_time=None), "'start_time' is required")
    bad(body(end_time="tomorrow"), "end_time: bad time 'tomorrow'")
    assert bad(body(start_time=NOW, end_time=NOW - 1)) == f"end_time {NOW - 1} is before start_time {NOW}"
    bad(body(select_fields=[]), "select_fields is empty")
    bad(body(select_fields="MessageTS"), "select_fields: expected a list")
    bad(body(select_fields=["MessageTS", "Foo"]), "select_fields: unknown field 'Foo' of MessageTable",
        "valid: MessageTS, MessageId, Source")
    bad(body(table="ConfigObjectTable", select_fields=["Xmlmessage"]), "unknown field 'Xmlmessage'", "ObjectLog")
    bad(body(sort_fields=["Nope"]), "sort_fields: unknown field 'Nope'")
    bad(body(sort=3), "sort: 3 is neither 1")
    bad(body(sort=True), "sort: True")
    for limit in (0, -1, "5", True, 1.5):
        bad(body(limit=limit), f"limit: {limit!r} is not a positive integer")
    bad(body(limit=q.MAX_ROWS + 1), f"limit {q.MAX_ROWS + 1} is above the maximum of {q.MAX_ROWS}",
        "narrow the time range")


def test_term_errors_name_the_problem() -> None:
    def where(*terms: Any) -> dict[str, Any]:
        return body(where=[list(terms)])

    bad(where({"name": "Nope", "value": 1, "op": 1}), "where[0][0]: unknown field 'Nope'", "valid: MessageTS")
    bad(where({"name": "Xmlmessage", "value": "x", "op": 8}), "Xmlmessage is not indexed", "use filter")
    for op in (0, 9, "FOO", True, None, 1.0):
        bad(where({"name": "Level", "value": 1, "op": op}), "where[0][0]: bad op", "1 EQUAL", "8 REGEX_MATCH")
    bad(where({"name": "Level", "value": 1, "op": 7}), "op 7 PREFIX does not apply to Level (int)")
    bad(where({"name": "Level", "value": "abc", "op": 1}), "Level takes an integer, not 'abc'")
    bad(where({"name": "Source", "value": {"a": 1}, "op": 1}), "Source with EQUAL takes a string")
    bad(where({"name": "Level", "value": 1, "op": 3}), "IN_RANGE needs 'value2'")
    bad(where({"name": "Level", "value": 5, "value2": 2, "op": 3}), "value2 2 is below value 5")
    bad(where({"name": "Source", "value": "(", "op": 8}), "bad regular expression '('")
    bad(where({"name": "Source", "value": "a" * 600, "op": 8}), "pattern longer than")
    bad(where({"name": "Source", "value": "x"}), "'op' is required")
    bad(where({"name": "Source", "op": 1, "valeu": "x"}), "unknown key(s) 'valeu'")
    bad(where("Source=x"), "a match term is an object")
    bad(body(where="Source=x"), "where: expected a list")
    bad(body(where=[[{"name": "Source", "value": "x", "op": 1}], "x"]), "where[1]: expected a list of match terms")
    bad(body(filter=[[{"name": "Xmlmessage", "value": 1, "op": 5}]]), "op 5 LEQ does not apply to Xmlmessage")


# --- evaluation -------------------------------------------------------------------------------------
def term(name: str, op: int, value: Any, value2: Any = None, *, where: bool = False) -> q.Term:
    raw = {"name": name, "op": op, "value": value} | ({"value2": value2} if value2 is not None else {})
    return q.parse_term(raw, "MessageTable", q.MESSAGE_SCHEMA, "t", where=where)


ROW = q.to_columns(msg(NOW, 1, level=4, source="ctrl2", body={"vn": "blue", "n": 3}), q.MESSAGE_SCHEMA)


@pytest.mark.parametrize(("t", "expected"), [
    (("Level", 1, 4), True), (("Level", 1, "4"), True), (("Level", 1, 5), False),
    (("Level", 2, 5), True), (("Level", 2, 4), False),
    (("Level", 3, 3, 4), True), (("Level", 3, 5, 7), False), (("Level", 4, 5, 7), True), (("Level", 4, 4, 7), False),
    (("Level", 5, 4), True), (("Level", 5, 3), False), (("Level", 6, 4), True), (("Level", 6, 5), False),
    (("Source", 1, "ctrl2"), True), (("Source", 2, "ctrl2"), False), (("Source", 7, "ctrl"), True),
    (("Source", 7, "trl"), False), (("Source", 8, "trl[0-9]$"), True), (("Source", 8, "^trl"), False),
    (("Source", 3, "ctrl1", "ctrl3"), True), (("Source", 6, "ctrl3"), False),
    (("MessageTS", 6, NOW), True), (("MessageTS", 6, NOW + 1), False),
    (("Xmlmessage", 1, {"n": 3, "vn": "blue"}), True), (("Xmlmessage", 2, {"n": 3}), True),
    (("Xmlmessage", 8, '"vn":"blue"'), True), (("Xmlmessage", 7, '{"n":3,'), True), (("Xmlmessage", 8, "red"), False),
])
def test_term_matches(t: tuple[Any, ...], expected: bool) -> None:
    assert term(*t).matches(ROW) is expected


def test_or_of_and_lists() -> None:
    level4, src1, src2 = term("Level", 1, 4), term("Source", 1, "ctrl1"), term("Source", 1, "ctrl2")
    assert q.accepts([], ROW)
    assert q.accepts([[]], ROW)
    assert q.accepts([[level4, src2]], ROW)
    assert not q.accepts([[level4, src1]], ROW)
    assert q.accepts([[level4, src1], [src2]], ROW)
    assert not q.accepts([[src1], [term("Level", 2, 4)]], ROW)


# --- run: paging, sort, limit -----------------------------------------------------------------------
def test_run_pages_without_losing_or_doubling_rows_at_one_timestamp() -> None:
    rows = [msg(NOW - 100 + i // 2, i) for i in range(20)]  # pairs share a timestamp
    rows += [msg(NOW - 50, 100 + i) for i in range(13)]  # 13 rows at one timestamp: more than a page
    rows += [msg(NOW - 10 + i, 200 + i) for i in range(5)]
    store_ = Rows(rows)
    got = run(body(select_fields=["MessageId", "MessageTS"]), store_, page=4)
    assert [r["MessageId"] for r in got] == [r["id"] for r in store_.rows]
    assert len(store_.calls) > 5  # paged
    assert max(c[3] for c in store_.calls) >= 13  # asked past the ids already seen at one timestamp


def test_run_newest_first_scans_backwards_and_stops_at_limit() -> None:
    rows = [msg(NOW - 100 + i // 2, i) for i in range(20)]
    rows += [msg(NOW - 50, 100 + i) for i in range(13)]  # more than a page at one timestamp
    rows += [msg(NOW - 10 + i, 200 + i) for i in range(5)]
    store_ = Rows(rows)
    every = run(body(select_fields=["MessageId"], sort_fields=["MessageTS"], sort=2), store_, page=4)
    assert [r["MessageId"] for r in every] == [r["id"] for r in reversed(store_.rows)]
    assert all(c[-1] == "reverse" for c in store_.calls)
    store_ = Rows(rows)
    newest = run(body(select_fields=["MessageId"], sort_fields=["MessageTS"], sort=2, limit=3), store_, page=4)
    assert [r["MessageId"] for r in newest] == ["id00204", "id00203", "id00202"]
    assert len(store_.calls) == 1  # the newest page was enough


def test_run_stops_once_limit_rows_match() -> None:
    store_ = Rows([msg(NOW - 1000 + i, i, level=3 if i % 10 == 0 else 6) for i in range(1000)])
    got = run(body(select_fields=["SequenceNum"], limit=3, where=[[{"name": "Level", "value": 3, "op": 1}]]),
              store_, page=25)
    assert got == [{"SequenceNum": 0}, {"SequenceNum": 10}, {"SequenceNum": 20}]
    assert len(store_.calls) == 1
    assert store_.calls[0][1] == NOW - 10 * MIN  # the range asked starts at start_time


def test_run_filter_applies_after_where_and_projects() -> None:
    rows = [msg(NOW - 100 + i, i, source=f"ctrl{i % 3}", body={"n": i}) for i in range(30)]
    got = run(body(select_fields=["Source", "Xmlmessage"],
                   where=[[{"name": "Source", "value": "ctrl1", "op": 1}], [{"name": "Source", "value": "ctrl2",
                                                                             "op": 1}]],
                   filter=[[{"name": "Xmlmessage", "value": r'"n":2\d\b', "op": 8}]]), Rows(rows))
    assert got == [{"Source": f"ctrl{i % 3}", "Xmlmessage": {"n": i}} for i in range(20, 30) if i % 3]


def test_run_refuses_oversize_without_limit() -> None:
    rows = [msg(NOW - 20_000 + i, i) for i in range(q.MAX_ROWS + 1)]
    with pytest.raises(BadRequest, match=f"more than {q.MAX_ROWS} rows match: add a limit"):
        run(body(), Rows(rows))
    assert len(run(body(limit=q.MAX_ROWS), Rows(rows))) == q.MAX_ROWS
    assert len(run(body(), Rows(rows[:q.MAX_ROWS]))) == q.MAX_ROWS
    with pytest.raises(BadRequest, match="more than 10 rows match"):
        run(body(sort=2), Rows(rows[:11]), max_rows=10)


def test_run_sorts_desc_with_top_k_and_stable_ties() -> None:
    rows = [msg(NOW - 1000 + i, i, level=i % 4) for i in range(40)]
    got = run(body(select_fields=["Level", "SequenceNum"], sort_fields=["Level"], sort=2, limit=5), Rows(rows),
              page=7)
    assert got == [{"Level": 3, "SequenceNum": s} for s in (3, 7, 11, 15, 19)]
    newest = run(body(select_fields=["SequenceNum"], sort=2, limit=2), Rows(rows), page=7)
    assert newest == [{"SequenceNum": 39}, {"SequenceNum": 38}]
    asc = run(body(select_fields=["Level", "SequenceNum"], sort_fields=["Level", "SequenceNum"], sort=1), Rows(rows))
    assert asc[:3] == [{"Level": 0, "SequenceNum": s} for s in (0, 4, 8)] and len(asc) == 40


def test_run_time_range_and_object_tables() -> None:
    rows = [msg(NOW - 100 + i, i) | {"tbl": "ConfigObjectTable" if i % 2 else "ObjectConfigNode",
                                     "object_id": f"vn{i}"} for i in range(10)]
    store_ = Rows(rows)
    got = run(body(table="ConfigObjectTable", select_fields=["ObjectId", "ObjectLog"], start_time=NOW - 95,
                   end_time=2**62), store_)
    assert got == [{"ObjectId": f"vn{i}", "ObjectLog": {"n": i}} for i in (5, 7, 9)]
    assert store_.calls[0][:2] == ("objectlogs", "ConfigObjectTable")
    assert store_.calls[0][3] == NOW + q.MAX_FUTURE_US  # a far end_time is cut at now + MAX_FUTURE_US
    assert run(body(start_time=NOW + 2 * q.MAX_FUTURE_US, end_time=NOW + 3 * q.MAX_FUTURE_US), store_) == []


# --- UVEs ---------------------------------------------------------------------------------------------
def _timed(structs: dict[str, Any], ts: int) -> dict[str, Any]:
    """An origin's structs as the aggregator stores them."""
    return {s: {"ts": ts, "data": d} for s, d in structs.items()}


UVE = {"key": "ctrl1",
       "value": {"NodeStatus": {"process_status": [{"module_id": "contrail-api", "instance_id": "a"}],
                                "process_info": [{"process_name": "zookeeper"}]},
                 "ConfigStatus": {"vns": 3, "uptime": 9}},
       "origins": {"ctrl1:Config:contrail-api:a": _timed({"NodeStatus": {"process_status": [
                       {"module_id": "contrail-api", "instance_id": "a"}]},
                       "ConfigStatus": {"vns": 3, "uptime": 9}}, 2),
                   "ctrl1:Config:contrail-node-agent:ctrl1": _timed({"NodeStatus": {"process_info": [
                       {"process_name": "zookeeper"}]}}, 1),
                   "ctrl2:Config:contrail-api:b:x": _timed({"NodeStatus": {"process_status": [
                       {"module_id": "contrail-api", "instance_id": "b:x"}]}}, 3)},
       "alarms": [{"type": "t", "severity": 1}], "ts": 1, "partition": 0}


def test_uve_types_and_key_patterns() -> None:
    assert q.uve_table("config-node") == "ObjectConfigNode"
    assert q.uve_list_type("analytics-nodes") == "analytics-node"
    with pytest.raises(NotFound, match=r"'vrouter'.*config-node"):
        q.uve_table("vrouter")
    with pytest.raises(NotFound, match=r"'config-node'.*config-nodes"):
        q.uve_list_type("config-node")
    p = q.key_pattern(["ctrl*", "a.b"])
    assert p is not None
    assert [k for k in ("ctrl1", "xctrl", "a.b", "aXb", "ctrl") if p.fullmatch(k)] == ["ctrl1", "a.b", "ctrl"]
    assert q.key_pattern([]) is None
    assert q.split_values(["a,b", " c ,", ""]) == ["a", "b", "c"]
    assert q.parse_cfilt(["A:x", "A:y", "B", "B:z"]) == {"A": frozenset({"x", "y"}), "B": None}
    for entry in (":x", "A:"):
        with pytest.raises(BadRequest, match="cfilt: bad entry"):
            q.parse_cfilt([entry])


def test_uve_view_filters() -> None:
    full = UveFilter().view(UVE)
    assert full["ConfigStatus"] == {"vns": 3, "uptime": 9} and full["UVEAlarms"] == {"alarms": UVE["alarms"]}
    assert UveFilter(cfilt=q.parse_cfilt(["ConfigStatus:vns", "UVEAlarms"])).view(UVE) == {
        "ConfigStatus": {"vns": 3}, "UVEAlarms": {"alarms": UVE["alarms"]}}
    assert UveFilter(cfilt=q.parse_cfilt(["Missing"])).view(UVE) == {}
    by_source = UveFilter(sfilt="ctrl1").view(UVE)
    assert by_source["NodeStatus"] == {"process_status": [{"module_id": "contrail-api", "instance_id": "a"}],
                                       "process_info": [{"process_name": "zookeeper"}]}
    ctrl2 = UveFilter(sfilt="ctrl2").view(UVE)
    assert "ConfigStatus" not in ctrl2 and ctrl2["NodeStatus"]["process_status"][0]["instance_id"] == "b:x"
    assert UveFilter(sfilt="ctrl9").view(UVE) == {}
    agent = UveFilter(mfilt="contrail-node-agent").view(UVE)
    assert agent["NodeStatus"] == {"process_info": [{"process_name": "zookeeper"}]}
    assert UveFilter(mfilt="contrail-api:b:x").view(UVE)["NodeStatus"]["process_status"][0]["instance_id"] == "b:x"
    assert UveFilter(mfilt="contrail-api:zzz").view(UVE) == {}
    merged = UveFilter(mfilt="contrail-api").view(UVE)["NodeStatus"]["process_status"]
    assert sorted(p["instance_id"] for p in merged) == ["a", "b:x"]
    assert UveFilter().view({"key": "k", "value": {}, "origins": {}, "alarms": []}) == {}


def test_uve_filter_from_query_and_body() -> None:
    f = UveFilter.from_query({"kfilt": "a*,b", "sfilt": "ctrl1", "cfilt": "NodeStatus", "flat": ""})
    assert (f.kfilt, f.sfilt, f.mfilt, f.cfilt) == (("a*", "b"), "ctrl1", None, {"NodeStatus": None})
    assert f.key_ok("abc") and f.key_ok("b") and not f.key_ok("bc")
    g = UveFilter.from_body({"kfilt": ["x*"], "cfilt": ["A:b"], "mfilt": "m:i"})
    assert (g.kfilt, g.mfilt, g.cfilt) == (("x*",), "m:i", {"A": frozenset({"b"})})
    for b, text in (([], "JSON object"), ({"kfilt": "x", "zfilt": 1}, "unknown key(s) 'zfilt'"),
                    ({"kfilt": [1]}, "kfilt: expected a list of strings"),
                    ({"sfilt": ["a"]}, "sfilt: expected a string")):
        with pytest.raises(BadRequest, match=re.escape(text)):
            UveFilter.from_body(b)
