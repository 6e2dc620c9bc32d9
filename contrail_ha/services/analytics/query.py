"""The analytics query engine: ``POST /analytics/query`` and the UVE filters, without I/O of its own.

Everything here is pure except ``run``, which reads through an injected store object offering the
read methods of ``store.AnalyticsStore`` (``messages(start, end, limit)``,
``objectlogs(table, start, end, limit)``, both in ``(ts, id)`` order).

The query body is the original's synchronous query::

    {"table": "MessageTable", "start_time": "now-10m", "end_time": "now",
     "select_fields": ["MessageTS", "Source", "Xmlmessage"],
     "where": [[{"name": "ModuleId", "value": "contrail-api", "op": 1}]],   # OR of AND-lists, optional
     "filter": [[{"name": "Level", "value": 4, "op": 5}]],                # same shape, optional
     "sort_fields": ["MessageTS"], "sort": 2, "limit": 100}

Times are microseconds since the epoch, ``"now"`` or ``"now-<N><s|m|h|d>"`` (also ``+``). Ops:
1 EQUAL, 2 NOT_EQUAL, 3 IN_RANGE (``value..value2``), 4 NOT_IN_RANGE, 5 LEQ, 6 GEQ, 7 PREFIX,
8 REGEX_MATCH (``re.search``). ``where`` takes the indexed columns (every column but the body);
``filter`` takes any column; on a body (``Xmlmessage``/``ObjectLog``, a JSON object in
contrail-ha where the original held sandesh XML) EQUAL/NOT_EQUAL compare the object and
PREFIX/REGEX_MATCH its compact JSON text (keys sorted).

Rows are read in time order, ``PAGE_ROWS`` per store call. A query returns at most ``MAX_ROWS``
rows: one without a limit that matches more, or with a larger limit, is refused (400).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Any

from contrail_ha.services.analytics.protocol import CONFIG_OBJECT_TABLE, MESSAGE_TABLE, UVE_TABLES, UVE_TYPES, now_us
from contrail_ha.services.analytics.uve import merge

MAX_ROWS = 10_000  # most rows one query returns
MAX_SCAN_ROWS = 1_000_000  # most rows one query reads
PAGE_ROWS = 5000  # rows per store call
MAX_FUTURE_US = 3_600_000_000  # the scan stops this far past "now", whatever end_time says
MAX_PATTERN = 512  # longest REGEX_MATCH pattern

LOG, OBJECT = "LOG", "OBJECT"
INT, STRING, JSON = "int", "string", "json"

_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_RELATIVE = re.compile(r"now(?:\s*([+-])\s*(\d{1,9})([smhd]))?")
_INTEGER = re.compile(r"[+-]?\d{1,19}")


class BadRequest(ValueError):
    """The request is invalid: 400, the text names the problem."""


class NotFound(LookupError):
    """The table, UVE type or route argument does not exist: 404."""


# --- tables and their columns --------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str  # the query's column name
    key: str  # the store row's key
    datatype: str  # int | string | json
    index: bool  # usable in ``where``


def _columns(*spec: tuple[str, str, str]) -> dict[str, Column]:
    return {name: Column(name, key, dt, dt != JSON) for name, key, dt in spec}


MESSAGE_SCHEMA = _columns(
    ("MessageTS", "ts", INT), ("MessageId", "id", STRING), ("Source", "source", STRING),
    ("NodeType", "node_type", STRING), ("ModuleId", "module", STRING), ("InstanceId", "instance_id", STRING),
    ("Messagetype", "messagetype", STRING), ("Category", "category", STRING), ("Level", "level", INT),
    ("SequenceNum", "seq", INT), ("Xmlmessage", "body", JSON))
OBJECT_SCHEMA = _columns(
    ("MessageTS", "ts", INT), ("MessageId", "id", STRING), ("ObjectId", "object_id", STRING),
    ("Source", "source", STRING), ("NodeType", "node_type", STRING), ("ModuleId", "module", STRING),
    ("InstanceId", "instance_id", STRING), ("Messagetype", "messagetype", STRING), ("ObjectLog", "body", JSON))


def tables() -> dict[str, str]:
    """Every queryable table and its type: the message table, the config object log, one per UVE table."""
    out = {MESSAGE_TABLE: LOG, CONFIG_OBJECT_TABLE: OBJECT}
    out.update({t: OBJECT for t in sorted(UVE_TABLES)})
    return out


def table_type(table: str) -> str:
    known = tables()
    if table not in known:
        raise NotFound(f"unknown table {table!r} (known: {', '.join(known)})")
    return known[table]


def schema(table: str) -> dict[str, Column]:
    return MESSAGE_SCHEMA if table_type(table) == LOG else OBJECT_SCHEMA


def schema_json(table: str) -> dict[str, Any]:
    """``GET /analytics/table/<t>/schema``."""
    return {"type": table_type(table),
            "columns": [{"name": c.name, "datatype": c.datatype, "index": c.index} for c in schema(table).values()]}


# --- times ---------------------------------------------------------------------------------------
def parse_time(value: Any, what: str, now: int) -> int:
    """Microseconds since the epoch from an int, a digit string, ``now`` or ``now-10m`` (s, m, h, d)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise BadRequest(f"{what}: {value} is negative")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        m = _RELATIVE.fullmatch(text)
        if m:
            sign, n, unit = m.groups()
            if sign is None:
                return now
            delta = int(n) * _UNITS_US[unit]
            return max(0, now - delta if sign == "-" else now + delta)
    raise BadRequest(f"{what}: bad time {value!r}: use microseconds since the epoch, 'now', or "
                     f"'now-<N><unit>' with unit s, m, h or d (e.g. 'now-10m')")


# --- match terms ---------------------------------------------------------------------------------
class Op(IntEnum):
    EQUAL = 1
    NOT_EQUAL = 2
    IN_RANGE = 3
    NOT_IN_RANGE = 4
    LEQ = 5
    GEQ = 6
    PREFIX = 7
    REGEX_MATCH = 8


OPS_TEXT = ", ".join(f"{o.value} {o.name}" for o in Op)
_RANGES = (Op.IN_RANGE, Op.NOT_IN_RANGE)
_ALLOWED = {INT: set(Op) - {Op.PREFIX, Op.REGEX_MATCH}, STRING: set(Op),
            JSON: {Op.EQUAL, Op.NOT_EQUAL, Op.PREFIX, Op.REGEX_MATCH}}
TERM_KEYS = ("name", "value", "op", "value2", "suffix")  # the original's ``suffix`` is accepted and ignored


def json_text(value: Any) -> str:
    """A body as PREFIX/REGEX_MATCH see it: compact JSON, keys sorted."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Term:
    """One ``{name, op, value[, value2]}`` of a where or filter AND-list."""

    column: str
    datatype: str
    op: Op
    value: Any
    value2: Any = None
    pattern: re.Pattern[str] | None = None

    def matches(self, row: Mapping[str, Any]) -> bool:
        x = row.get(self.column)
        if self.datatype == JSON and self.op in (Op.PREFIX, Op.REGEX_MATCH):
            x = json_text(x)
        elif x is None:
            if self.datatype == INT:
                return self.op in (Op.NOT_EQUAL, Op.NOT_IN_RANGE)
            x = ""
        op = self.op
        if op == Op.EQUAL:
            return bool(x == self.value)
        if op == Op.NOT_EQUAL:
            return bool(x != self.value)
        if op == Op.IN_RANGE:
            return bool(self.value <= x <= self.value2)
        if op == Op.NOT_IN_RANGE:
            return not self.value <= x <= self.value2
        if op == Op.LEQ:
            return bool(x <= self.value)
        if op == Op.GEQ:
            return bool(x >= self.value)
        if op == Op.PREFIX:
            return str(x).startswith(self.value)
        assert self.pattern is not None
        return self.pattern.search(str(x)) is not None


def _coerce(value: Any, col: Column, op: Op, what: str) -> Any:
    """A term's value as the column's type (the original sends numbers as strings too)."""
    dt = col.datatype
    if dt == INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value.strip())
        raise BadRequest(f"{what}: {col.name} takes an integer, not {value!r}")
    if dt == STRING or op in (Op.PREFIX, Op.REGEX_MATCH):
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise BadRequest(f"{what}: {col.name} with {op.name} takes a string, not {value!r}")
    return value  # a JSON column compared whole: any JSON value


def _op(raw: Any, what: str) -> Op:
    if isinstance(raw, str):
        name = raw.strip().upper()
        if name in Op.__members__:
            return Op[name]
        raw = int(name) if name.isdigit() else raw
    if isinstance(raw, int) and not isinstance(raw, bool) and Op.EQUAL <= raw <= Op.REGEX_MATCH:
        return Op(raw)
    raise BadRequest(f"{what}: bad op {raw!r}: use one of {OPS_TEXT}")


def _unknown_field(name: Any, table: str, cols: Mapping[str, Column], what: str) -> BadRequest:
    return BadRequest(f"{what}: unknown field {name!r} of {table} (valid: {', '.join(cols)})")


def parse_term(raw: Any, table: str, cols: Mapping[str, Column], what: str, *, where: bool) -> Term:
    """One match term; ``where`` terms are limited to indexed columns."""
    if not isinstance(raw, dict):
        raise BadRequest(f"{what}: a match term is an object {{\"name\", \"value\", \"op\"}}, not {raw!r:.80}")
    extra = sorted(set(raw) - set(TERM_KEYS))
    if extra:
        raise BadRequest(f"{what}: unknown key(s) {', '.join(map(repr, extra))} (valid: {', '.join(TERM_KEYS[:4])})")
    for k in ("name", "op", "value"):
        if k not in raw:
            raise BadRequest(f"{what}: {k!r} is required")
    name = raw["name"]
    if not isinstance(name, str) or name not in cols:
        raise _unknown_field(name, table, cols, what)
    col = cols[name]
    if where and not col.index:
        raise BadRequest(f"{what}: {name} is not indexed and cannot be used in where; use filter")
    op = _op(raw["op"], what)
    if op not in _ALLOWED[col.datatype]:
        raise BadRequest(f"{what}: op {op.value} {op.name} does not apply to {name} ({col.datatype}); "
                         f"use one of {', '.join(f'{o.value} {o.name}' for o in sorted(_ALLOWED[col.datatype]))}")
    value = _coerce(raw["value"], col, op, what)
    value2 = None
    if op in _RANGES:
        if raw.get("value2") is None:
            raise BadRequest(f"{what}: {op.name} needs 'value2' (the upper bound)")
        value2 = _coerce(raw["value2"], col, op, what)
        if value2 < value:
            raise BadRequest(f"{what}: value2 {value2!r} is below value {value!r}")
    pattern = None
    if op == Op.REGEX_MATCH:
        if len(value) > MAX_PATTERN:
            raise BadRequest(f"{what}: pattern longer than {MAX_PATTERN} characters")
        try:
            pattern = re.compile(value)
        except (re.error, RecursionError, OverflowError) as e:
            raise BadRequest(f"{what}: bad regular expression {value!r}: {e}") from e
    return Term(name, col.datatype, op, value, value2, pattern)


def parse_clause(raw: Any, table: str, cols: Mapping[str, Column], what: str, *,
                 where: bool) -> list[list[Term]]:
    """An OR of AND-lists (a flat list of terms is one AND-list); None or [] means no condition."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest(f"{what}: expected a list of AND-lists of match terms, not {raw!r:.80}")
    if raw and all(isinstance(x, dict) for x in raw):
        raw = [raw]
    out: list[list[Term]] = []
    for i, conj in enumerate(raw):
        if not isinstance(conj, list):
            raise BadRequest(f"{what}[{i}]: expected a list of match terms, not {conj!r:.80}")
        out.append([parse_term(t, table, cols, f"{what}[{i}][{j}]", where=where) for j, t in enumerate(conj)])
    return out


def accepts(clause: list[list[Term]], row: Mapping[str, Any]) -> bool:
    """True when ``clause`` is empty or any of its AND-lists matches ``row``."""
    return not clause or any(all(t.matches(row) for t in conj) for conj in clause)


# --- the query -----------------------------------------------------------------------------------
QUERY_KEYS = ("table", "start_time", "end_time", "select_fields", "where", "filter", "sort_fields", "sort", "limit")
ASC, DESC = 1, 2


@dataclass(frozen=True)
class Query:
    table: str
    kind: str  # LOG | OBJECT
    start_us: int
    end_us: int
    select: list[str]
    where: list[list[Term]] = field(default_factory=list)
    filter: list[list[Term]] = field(default_factory=list)
    sort_fields: list[str] = field(default_factory=list)
    descending: bool = False
    limit: int | None = None

    @property
    def columns(self) -> dict[str, Column]:
        return MESSAGE_SCHEMA if self.kind == LOG else OBJECT_SCHEMA

    @property
    def in_scan_order(self) -> bool:
        """The rows come out of the scan already ordered as asked (time ascending, or newest first)."""
        return not self.sort_fields or self.sort_fields == ["MessageTS"]

    @property
    def newest_first(self) -> bool:
        """Sorted by time, descending: the scan runs backwards from ``end_time`` and stops at ``limit``."""
        return self.sort_fields == ["MessageTS"] and self.descending

    def accepts(self, row: Mapping[str, Any]) -> bool:
        return accepts(self.where, row) and accepts(self.filter, row)


def _fields(raw: Any, table: str, cols: Mapping[str, Column], what: str) -> list[str]:
    if not isinstance(raw, list):
        raise BadRequest(f"{what}: expected a list of field names, not {raw!r:.80}")
    for f in raw:
        if not isinstance(f, str) or f not in cols:
            raise _unknown_field(f, table, cols, what)
    return list(dict.fromkeys(raw))


def parse_query(body: Any, now: int | None = None) -> Query:
    """Validate a ``POST /analytics/query`` body (BadRequest/NotFound name the problem)."""
    now = now_us() if now is None else now
    if not isinstance(body, dict):
        raise BadRequest(f"the query must be a JSON object, not {type(body).__name__}")
    extra = sorted(set(body) - set(QUERY_KEYS))
    if extra:
        raise BadRequest(f"unknown key(s) {', '.join(map(repr, extra))} (valid: {', '.join(QUERY_KEYS)})")
    table = body.get("table")
    if table is None:
        raise BadRequest(f"'table' is required (one of {', '.join(tables())})")
    if not isinstance(table, str):
        raise BadRequest(f"table: expected a table name, not {table!r:.80}")
    kind = table_type(table)
    cols = MESSAGE_SCHEMA if kind == LOG else OBJECT_SCHEMA
    for k in ("start_time", "end_time", "select_fields"):
        if k not in body:
            raise BadRequest(f"{k!r} is required")
    start = parse_time(body["start_time"], "start_time", now)
    end = parse_time(body["end_time"], "end_time", now)
    if end < start:
        raise BadRequest(f"end_time {end} is before start_time {start}")
    select = _fields(body["select_fields"], table, cols, "select_fields")
    if not select:
        raise BadRequest(f"select_fields is empty: name at least one of {', '.join(cols)}")
    where = parse_clause(body.get("where"), table, cols, "where", where=True)
    filt = parse_clause(body.get("filter"), table, cols, "filter", where=False)
    sort_fields = _fields(body.get("sort_fields") or [], table, cols, "sort_fields")
    sort = body.get("sort")
    if sort is not None and (isinstance(sort, bool) or sort not in (ASC, DESC)):
        raise BadRequest(f"sort: {sort!r} is neither 1 (ascending) nor 2 (descending)")
    if sort is not None and not sort_fields:
        sort_fields = ["MessageTS"]
    limit = body.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadRequest(f"limit: {limit!r} is not a positive integer")
        if limit > MAX_ROWS:
            raise BadRequest(f"limit {limit} is above the maximum of {MAX_ROWS} rows: "
                             f"use a smaller limit or narrow the time range")
    return Query(table, kind, start, end, select, where, filt, sort_fields, sort == DESC, limit)


def _oversize(max_rows: int) -> BadRequest:
    return BadRequest(f"more than {max_rows} rows match: add a limit (at most {max_rows}), "
                      f"narrow the time range or the where clause")


def _sort_key(fields: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for f in fields:
            v = row.get(f)
            out.append((1, "") if v is None else (0, json_text(v) if isinstance(v, dict | list) else v))
        return tuple(out)
    return key


def sort_rows(rows: list[dict[str, Any]], fields: list[str], descending: bool) -> list[dict[str, Any]]:
    """Stable: rows equal on ``fields`` keep their time order."""
    return sorted(rows, key=_sort_key(fields), reverse=descending) if fields else list(rows)


def to_columns(row: Mapping[str, Any], cols: Mapping[str, Column]) -> dict[str, Any]:
    """A store row keyed by the query's column names."""
    return {c.name: row.get(c.key) for c in cols.values()}


def project(rows: Iterable[Mapping[str, Any]], select: list[str]) -> list[dict[str, Any]]:
    return [{f: r.get(f) for f in select} for r in rows]


Fetch = Callable[[int, int, int], Awaitable[list[dict[str, Any]]]]


def fetcher(q: Query, store: Any) -> Fetch:
    """``(start_us, end_us, limit) -> rows`` of the query's table, in the query's scan direction."""
    if q.kind == LOG:
        if q.newest_first:
            return lambda s, e, n: store.messages(s, e, n, reverse=True)
        return lambda s, e, n: store.messages(s, e, n)
    if q.newest_first:
        return lambda s, e, n: store.objectlogs(q.table, s, e, n, reverse=True)
    return lambda s, e, n: store.objectlogs(q.table, s, e, n)


async def run(q: Query, store: Any, *, page: int = PAGE_ROWS, now: int | None = None,
              max_rows: int | None = None, max_scan: int | None = None) -> list[dict[str, Any]]:
    """The query's rows (only ``select`` fields).

    Pages through the time range: each store call starts at the last timestamp seen and asks for
    ``page`` more rows than the ids already handled at that timestamp, which it skips, so rows
    sharing one timestamp are never lost nor doubled. Stops as soon as enough rows match.
    """
    max_rows = MAX_ROWS if max_rows is None else max_rows
    max_scan = MAX_SCAN_ROWS if max_scan is None else max_scan
    now = now_us() if now is None else now
    end = min(q.end_us, now + MAX_FUTURE_US)
    fetch = fetcher(q, store)
    cols = q.columns
    ordered = q.in_scan_order
    want = q.limit if q.limit is not None else max_rows + 1
    sort_key = _sort_key(q.sort_fields)
    matches: list[dict[str, Any]] = []
    back = q.newest_first
    low, high = q.start_us, end  # what is left to scan; the scan moves ``high`` down when ``back``
    cursor = high if back else low
    scanned = 0
    seen: set[str] = set()
    while low <= high:
        ask = page + len(seen)
        rows = await (fetch(low, cursor, ask) if back else fetch(cursor, high, ask))
        for r in rows:
            if r["ts"] == cursor and r["id"] in seen:
                continue
            scanned += 1
            row = to_columns(r, cols)
            if q.accepts(row):
                matches.append(row)
                if ordered and len(matches) >= want:
                    break
        if ordered and len(matches) >= want:
            break
        if not ordered:
            if q.limit is not None and len(matches) > q.limit:  # keep only the best ``limit``
                matches = sorted(matches, key=sort_key, reverse=q.descending)[:q.limit]
            elif q.limit is None and len(matches) > max_rows:
                raise _oversize(max_rows)
        if len(rows) < ask:
            break  # the range is exhausted
        if scanned > max_scan:
            raise BadRequest(f"the query reads more than {max_scan} rows: narrow the time range or the where clause")
        last = rows[-1]["ts"]
        if last == cursor:
            seen.update(r["id"] for r in rows)
        else:
            seen = {r["id"] for r in rows if r["ts"] == last}
            cursor = last
    if q.limit is None and len(matches) > max_rows:
        raise _oversize(max_rows)
    if not ordered:
        matches = sort_rows(matches, q.sort_fields, q.descending)
    if q.limit is not None:
        matches = matches[:q.limit]
    return project(matches, q.select)


# --- UVEs ----------------------------------------------------------------------------------------
def uve_table(type_name: str) -> str:
    """The table of a UVE type (``config-node`` -> ``ObjectConfigNode``)."""
    if type_name not in UVE_TYPES:
        raise NotFound(f"unknown UVE type {type_name!r} (known: {', '.join(UVE_TYPES)})")
    return UVE_TYPES[type_name]


def uve_list_type(plural: str) -> str:
    """``config-nodes`` -> ``config-node``."""
    if plural.endswith("s") and plural[:-1] in UVE_TYPES:
        return plural[:-1]
    raise NotFound(f"unknown UVE list {plural!r} (known: {', '.join(t + 's' for t in UVE_TYPES)}; "
                   f"one UVE is /analytics/uves/<type>/<key>)")


def key_pattern(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """``kfilt``: key patterns with ``*`` wildcards as one regex; None when there is none."""
    parts = [".*".join(re.escape(p) for p in pat.split("*")) for pat in patterns if pat]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def split_values(values: Iterable[str]) -> list[str]:
    """Query-string values, each possibly comma-separated."""
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def parse_cfilt(items: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """``Struct`` (all of it) or ``Struct:field`` -> ``{struct: fields or None}``."""
    out: dict[str, frozenset[str] | None] = {}
    for item in items:
        struct, colon, fld = item.partition(":")
        if not struct or (colon and not fld):
            raise BadRequest(f"cfilt: bad entry {item!r}: use Struct or Struct:field")
        if not fld:
            out[struct] = None
        elif struct not in out or out[struct] is not None:
            out[struct] = (out.get(struct) or frozenset()) | {fld}
    return out


def _origin_parts(origin: str) -> list[str]:
    """``source:node_type:module:instance_id`` (the instance id may hold colons)."""
    parts = origin.split(":", 3)
    return parts + [""] * (4 - len(parts))


@dataclass(frozen=True)
class UveFilter:
    """``kfilt``, ``sfilt``, ``mfilt`` and ``cfilt`` of the UVE routes."""

    kfilt: tuple[str, ...] = ()
    sfilt: str | None = None
    mfilt: str | None = None  # module or module:instance_id
    cfilt: dict[str, frozenset[str] | None] = field(default_factory=dict)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> UveFilter:
        """From a query string (a multidict's ``getall`` is used when it has one)."""
        def every(name: str) -> list[str]:
            getall = getattr(query, "getall", None)
            return list(getall(name, [])) if getall else ([query[name]] if name in query else [])
        def last(name: str) -> str | None:
            values = [v.strip() for v in every(name) if v.strip()]
            return values[-1] if values else None

        return cls(tuple(split_values(every("kfilt"))), last("sfilt"), last("mfilt"),
                   parse_cfilt(split_values(every("cfilt"))))

    @classmethod
    def from_body(cls, body: Any) -> UveFilter:
        """``POST /analytics/uves/<type>s``: ``{"kfilt": [...], "cfilt": [...], "sfilt": s, "mfilt": m}``."""
        if not isinstance(body, dict):
            raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
        valid = ("kfilt", "cfilt", "sfilt", "mfilt")
        extra = sorted(set(body) - set(valid))
        if extra:
            raise BadRequest(f"unknown key(s) {', '.join(map(repr, extra))} (valid: {', '.join(valid)})")
        lists: dict[str, list[str]] = {}
        for k in ("kfilt", "cfilt"):
            v = body.get(k) or []
            if isinstance(v, str):
                v = split_values([v])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise BadRequest(f"{k}: expected a list of strings, not {v!r:.80}")
            lists[k] = v
        single: dict[str, str | None] = {}
        for k in ("sfilt", "mfilt"):
            v = body.get(k)
            if v is not None and not isinstance(v, str):
                raise BadRequest(f"{k}: expected a string, not {v!r:.80}")
            single[k] = v or None
        return cls(tuple(lists["kfilt"]), single["sfilt"], single["mfilt"], parse_cfilt(lists["cfilt"]))

    @cached_property
    def _key_re(self) -> re.Pattern[str] | None:
        return key_pattern(self.kfilt)

    def key_ok(self, key: str) -> bool:
        return self._key_re is None or self._key_re.fullmatch(key) is not None

    def origin_ok(self, origin: str) -> bool:
        source, _node_type, module, instance = _origin_parts(origin)
        if self.sfilt is not None and source != self.sfilt:
            return False
        if self.mfilt is not None:
            want_module, _, want_instance = self.mfilt.partition(":")
            if module != want_module or (want_instance and instance != want_instance):
                return False
        return True

    def view(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """What a UVE row shows under this filter; ``{}`` when nothing is left."""
        if self.sfilt is not None or self.mfilt is not None:
            value: dict[str, Any] = {}
            # merged oldest first, as the aggregator does: {origin: {struct: {"ts": us, "data": ...}}}
            chosen = sorted((part["ts"], o, s, part["data"]) for o, structs in (row.get("origins") or {}).items()
                            if self.origin_ok(o) for s, part in structs.items())
            if not chosen:
                return {}
            for _ts, _o, s, data in chosen:
                value[s] = merge(value[s], data) if s in value else data
        else:
            value = dict(row.get("value") or {})
        if row.get("alarms"):
            value["UVEAlarms"] = {"alarms": row["alarms"]}
        if self.cfilt:
            kept: dict[str, Any] = {}
            for s, fields in self.cfilt.items():
                if s not in value:
                    continue
                if fields is None:
                    kept[s] = value[s]
                elif isinstance(value[s], dict):
                    part = {f: value[s][f] for f in sorted(fields) if f in value[s]}
                    if part:
                        kept[s] = part
            value = kept
        return value
