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

The parts: ``query_lang`` (tables, columns, times, match terms, the parsed ``Query``) and
``uve_filter`` (the UVE routes' filters); their names are re-exported here. The limits live here,
read at call time by ``parse_query`` and ``run``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from contrail_ha.services.analytics.protocol import now_us
from contrail_ha.services.analytics.query_lang import (
    INT,
    JSON,
    LOG,
    MAX_PATTERN,
    MESSAGE_SCHEMA,
    OBJECT,
    OBJECT_SCHEMA,
    OPS_TEXT,
    STRING,
    TERM_KEYS,
    BadRequest,
    Column,
    NotFound,
    Op,
    Query,
    Term,
    accepts,
    json_text,
    parse_clause,
    parse_term,
    parse_time,
    schema,
    schema_json,
    table_type,
    tables,
    unknown_field,
)
from contrail_ha.services.analytics.uve_filter import (
    UveFilter,
    key_pattern,
    parse_cfilt,
    split_values,
    uve_list_type,
    uve_table,
)

__all__ = [
    "ASC", "DESC", "INT", "JSON", "LOG", "MAX_FUTURE_US", "MAX_PATTERN", "MAX_ROWS", "MAX_SCAN_ROWS",
    "MESSAGE_SCHEMA", "OBJECT", "OBJECT_SCHEMA", "OPS_TEXT", "PAGE_ROWS", "QUERY_KEYS", "STRING", "TERM_KEYS",
    "BadRequest", "Column", "Fetch", "NotFound", "Op", "Query", "Term", "UveFilter", "accepts", "fetcher",
    "json_text", "key_pattern", "parse_cfilt", "parse_clause", "parse_query", "parse_term", "parse_time",
    "project", "run", "schema", "schema_json", "sort_rows", "split_values", "table_type", "tables", "to_columns",
    "uve_list_type", "uve_table",
]

MAX_ROWS = 10_000  # most rows one query returns
MAX_SCAN_ROWS = 1_000_000  # most rows one query reads
PAGE_ROWS = 5000  # rows per store call
MAX_FUTURE_US = 3_600_000_000  # the scan stops this far past "now", whatever end_time says

QUERY_KEYS = ("table", "start_time", "end_time", "select_fields", "where", "filter", "sort_fields", "sort", "limit")
ASC, DESC = 1, 2


def _fields(raw: Any, table: str, cols: Mapping[str, Column], what: str) -> list[str]:
    if not isinstance(raw, list):
        raise BadRequest(f"{what}: expected a list of field names, not {raw!r:.80}")
    for f in raw:
        if not isinstance(f, str) or f not in cols:
            raise unknown_field(f, table, cols, what)
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
