"""The analytics query language's parts: the tables and their columns, times, match terms and their
AND/OR clauses (``where``, ``filter``), the parsed ``Query``, and the errors (400, 404).

``query.parse_query`` assembles these from a request body; ``query.run`` executes the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from contrail_ha.errors import ContrailHaError
from contrail_ha.services.analytics.protocol import CONFIG_OBJECT_TABLE, MESSAGE_TABLE, UVE_TABLES

MAX_PATTERN = 512  # longest REGEX_MATCH pattern

LOG, OBJECT = "LOG", "OBJECT"
INT, STRING, JSON = "int", "string", "json"

_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_RELATIVE = re.compile(r"now(?:\s*([+-])\s*(\d{1,9})([smhd]))?")
_INTEGER = re.compile(r"[+-]?\d{1,19}")


class BadRequest(ContrailHaError, ValueError):
    """The request is invalid: 400, the text names the problem."""


class NotFound(ContrailHaError, LookupError):
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


def unknown_field(name: Any, table: str, cols: Mapping[str, Column], what: str) -> BadRequest:
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
        raise unknown_field(name, table, cols, what)
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


# --- the parsed query ------------------------------------------------------------------------------
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
