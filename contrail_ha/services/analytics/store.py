"""The analytics DB: Cassandra keyspace ``ContrailAnalyticsCql`` (RF from the topology, QUORUM).

Tables (contrail-ha's layout; the original's ``MessageTablev2``/``ObjectValueTable`` are
thrift-era column families with secondary-index rows, replaced by clustering on time):

* ``messagetable``: one row per message, partition = the hour (``t2``), clustered by
  ``(ts, id)``; a re-delivered message (same id and ts) overwrites itself, so at-least-once
  delivery stores each message once. TTL 48 h, as the original's default.
* ``objecttable``: object logs (e.g. ``ConfigObjectTable``, one per config change), partition
  ``(tbl, t2)``, clustered by ``(ts, id)``; same TTL.
* ``uves``: the aggregated state of each UVE, partition = UVE table, clustered by key:
  ``value`` (merged structs), ``origins`` (each live origin's structs, for source/module
  filters), ``alarms`` (the UVEAlarms list), ``ts`` (last change, us) and the Kafka
  ``partition`` whose owner writes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut
from cassandra.cluster import Cluster, Session
from cassandra.query import dict_factory

from contrail_ha.errors import ContrailHaError
from contrail_ha.services import cql
from contrail_ha.services.analytics.protocol import MessageRecord, ObjectLogRecord, Origin, now_us
from contrail_ha.services.keyspaces import ANALYTICS_KEYSPACE, create_keyspace

log = logging.getLogger(__name__)

KEYSPACE = ANALYTICS_KEYSPACE
HOUR_US = 3_600_000_000
TTL_S = 48 * 3600
GC_GRACE_S = 3600  # short: TTL'd time series and overwritten UVE rows

TABLES = {
    "messagetable": (
        "t2 bigint, ts bigint, id text, source text, node_type text, module text, instance_id text, "
        "messagetype text, category text, level int, seq bigint, body text, PRIMARY KEY ((t2), ts, id)",
        f"CLUSTERING ORDER BY (ts ASC, id ASC) AND default_time_to_live = {TTL_S}"),
    "objecttable": (
        "tbl text, t2 bigint, ts bigint, id text, object_id text, source text, node_type text, module text, "
        "instance_id text, messagetype text, body text, PRIMARY KEY ((tbl, t2), ts, id)",
        f"CLUSTERING ORDER BY (ts ASC, id ASC) AND default_time_to_live = {TTL_S}"),
    "uves": (
        "tbl text, key text, value text, origins text, alarms text, ts bigint, partition int, "
        "PRIMARY KEY ((tbl), key)",
        "CLUSTERING ORDER BY (key ASC)"),
}
MESSAGE_COLUMNS = ["ts", "id", "source", "node_type", "module", "instance_id", "messagetype", "category", "level",
                   "seq", "body"]
OBJECT_COLUMNS = ["ts", "id", "object_id", "source", "node_type", "module", "instance_id", "messagetype", "body"]


def bucket(ts_us: int) -> int:
    return ts_us // HOUR_US


class StoreUnavailable(ContrailHaError, RuntimeError):
    """The analytics DB cannot serve the request (no quorum, not connected)."""


class AnalyticsStore:
    """Async access to the analytics DB, shared by the aggregators (writes) and analytics-api (reads)."""

    def __init__(self, ips: Sequence[str], port: int, rf: int, *, keyspace: str = KEYSPACE,
                 consistency: int = ConsistencyLevel.QUORUM, connect_timeout: float = 5.0,
                 request_timeout: float = 5.0, max_in_flight: int = 128,
                 auth: cql.Credentials | None = None) -> None:
        self.ips, self.port, self.rf = list(ips), port, rf
        self.auth = auth  # the analytics' Cassandra role (owns the analytics keyspace only)
        self.keyspace = keyspace
        self.consistency = consistency
        self.connect_timeout, self.request_timeout = connect_timeout, request_timeout
        self._max_in_flight = max_in_flight
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._sem: asyncio.Semaphore | None = None
        self._st: dict[str, Any] = {}
        self._ready = False  # connected, schema in place, statements prepared

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._sem = asyncio.Semaphore(self._max_in_flight)
        try:
            await asyncio.to_thread(self._start_blocking)
        except Exception as e:
            await self.close()
            raise StoreUnavailable(f"analytics DB: {e.__class__.__name__}: {e}"[:300]) from e

    def _start_blocking(self) -> None:
        self._cluster = cql.cluster(self.ips, self.port, consistency=self.consistency,
                                    request_timeout=self.request_timeout, connect_timeout=self.connect_timeout,
                                    row_factory=dict_factory, auth=self.auth)
        self._session = self._cluster.connect()
        self._ensure_schema()
        ks = self.keyspace
        session = self._session

        def p(query: str) -> Any:
            return cql.idempotent(cql.when_visible(lambda: session.prepare(query)))

        self._st = {
            "message": p(f'INSERT INTO "{ks}".messagetable (t2, {", ".join(MESSAGE_COLUMNS)}) '
                         f"VALUES (?, {', '.join('?' * len(MESSAGE_COLUMNS))})"),
            "object": p(f'INSERT INTO "{ks}".objecttable (tbl, t2, {", ".join(OBJECT_COLUMNS)}) '
                        f"VALUES (?, ?, {', '.join('?' * len(OBJECT_COLUMNS))})"),
            "uve": p(f'INSERT INTO "{ks}".uves (tbl, key, value, origins, alarms, ts, partition) '
                     "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"),
            "uve_del": p(f'DELETE FROM "{ks}".uves USING TIMESTAMP ? WHERE tbl = ? AND key = ?'),
            "uve_get": p(f'SELECT key, value, origins, alarms, ts, partition FROM "{ks}".uves '
                         "WHERE tbl = ? AND key = ?"),
            "uve_tbl": p(f'SELECT key, value, origins, alarms, ts, partition FROM "{ks}".uves WHERE tbl = ?'),
            "uve_all": p(f'SELECT tbl, key, value, origins, alarms, ts, partition FROM "{ks}".uves'),
            "msg_range": p(f'SELECT {", ".join(MESSAGE_COLUMNS)} FROM "{ks}".messagetable '
                           "WHERE t2 = ? AND ts >= ? AND ts <= ? LIMIT ?"),
            "obj_range": p(f'SELECT {", ".join(OBJECT_COLUMNS)} FROM "{ks}".objecttable '
                           "WHERE tbl = ? AND t2 = ? AND ts >= ? AND ts <= ? LIMIT ?"),
            "msg_range_desc": p(f'SELECT {", ".join(MESSAGE_COLUMNS)} FROM "{ks}".messagetable '
                                "WHERE t2 = ? AND ts >= ? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT ?"),
            "obj_range_desc": p(f'SELECT {", ".join(OBJECT_COLUMNS)} FROM "{ks}".objecttable '
                                "WHERE tbl = ? AND t2 = ? AND ts >= ? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT ?"),
        }
        self._ready = True

    def _ensure_schema(self) -> None:
        """Idempotent; fixed table ids so replicas creating them at once converge; then schema agreement."""
        s, ks = self._session, self.keyspace
        assert s is not None and self._cluster is not None
        if s.execute("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)).one() is None:
            s.execute(create_keyspace(ks, self.rf))
            log.info("created keyspace %s (RF %d)", ks, self.rf)
        have = {r["table_name"] for r in s.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (ks,))}
        for name, (columns, options) in TABLES.items():
            if name in have:
                continue
            tid = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"contrail-ha:{ks}.{name}")
            s.execute(f'CREATE TABLE IF NOT EXISTS "{ks}".{name} ({columns}) WITH {options} '
                      f"AND gc_grace_seconds = {GC_GRACE_S} AND ID = {tid}")
            log.info("created table %s.%s", ks, name)
        if not self._cluster.control_connection.wait_for_schema_agreement(wait_time=30):
            raise OperationTimedOut("no schema agreement after 30s")

    async def close(self) -> None:
        self._ready = False
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    @property
    def started(self) -> bool:
        return self._ready

    async def _run(self, name: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Execute the prepared statement ``name``."""
        session = self._session
        if not self._ready or session is None or self._sem is None:
            raise StoreUnavailable("analytics DB: not connected")
        async with self._sem:
            try:
                return await cql.execute(session, self._st[name], params)
            except Exception as e:
                raise StoreUnavailable(f"analytics DB: {e.__class__.__name__}: {e}"[:300]) from e

    # --- writes (aggregators) ------------------------------------------------------------------------
    async def write_messages(self, items: Sequence[tuple[Origin, MessageRecord]]) -> None:
        await asyncio.gather(*(self._run("message", (
            bucket(r.ts), r.ts, r.id, o.source, o.node_type, o.module, o.instance_id, r.messagetype, r.category,
            r.level, r.seq, json.dumps(r.body))) for o, r in items))

    async def write_objectlogs(self, items: Sequence[tuple[Origin, ObjectLogRecord]]) -> None:
        await asyncio.gather(*(self._run("object", (
            r.table, bucket(r.ts), r.ts, r.id, r.object_id, o.source, o.node_type, o.module, o.instance_id,
            r.messagetype, json.dumps(r.body))) for o, r in items))

    async def write_uve(self, table: str, key: str, value: dict[str, Any], origins: dict[str, Any],
                        alarms: list[dict[str, Any]], ts: int, partition: int, write_ts: int) -> None:
        await self._run("uve", (table, key, json.dumps(value, sort_keys=True),
                                          json.dumps(origins, sort_keys=True), json.dumps(alarms), ts, partition,
                                          write_ts))

    async def delete_uve(self, table: str, key: str, write_ts: int) -> None:
        await self._run("uve_del", (write_ts, table, key))

    # --- reads (analytics-api) -----------------------------------------------------------------------
    @staticmethod
    def _uve_row(row: dict[str, Any]) -> dict[str, Any]:
        return {"key": row["key"], "value": json.loads(row["value"] or "{}"),
                "origins": json.loads(row["origins"] or "{}"), "alarms": json.loads(row["alarms"] or "[]"),
                "ts": row["ts"], "partition": row["partition"]}

    async def uve(self, table: str, key: str) -> dict[str, Any] | None:
        rows = await self._run("uve_get", (table, key))
        return self._uve_row(rows[0]) if rows else None

    async def uves(self, table: str) -> list[dict[str, Any]]:
        """Every UVE of ``table``, ordered by key."""
        return [self._uve_row(r) for r in await self._run("uve_tbl", (table,))]

    async def all_uves(self) -> list[dict[str, Any]]:
        """Every UVE of every table (``tbl`` added), e.g. for the alarm list."""
        return [{"tbl": r["tbl"], **self._uve_row(r)} for r in await self._run("uve_all")]

    async def messages(self, start_us: int, end_us: int, limit: int, reverse: bool = False) -> list[dict[str, Any]]:
        """Messages with ``start_us <= ts <= end_us``, in ``(ts, id)`` order (newest first with ``reverse``),
        at most ``limit``."""
        return await self._range("msg_range_desc" if reverse else "msg_range", (), start_us, end_us, limit, reverse)

    async def objectlogs(self, table: str, start_us: int, end_us: int, limit: int,
                         reverse: bool = False) -> list[dict[str, Any]]:
        """Object logs of ``table`` with ``start_us <= ts <= end_us``, in ``(ts, id)`` order (newest first
        with ``reverse``), at most ``limit``."""
        return await self._range("obj_range_desc" if reverse else "obj_range", (table,), start_us, end_us, limit,
                                 reverse)

    async def _range(self, stmt: str, head: tuple[Any, ...], start_us: int, end_us: int,
                     limit: int, reverse: bool = False) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        now = now_us()
        start_us = max(start_us, now - TTL_S * 1_000_000)  # nothing older is kept
        end_us = min(end_us, now + HOUR_US)  # nor anything from the future (clock skew aside)
        buckets = range(bucket(start_us), bucket(end_us) + 1)
        for t2 in reversed(buckets) if reverse else buckets:
            rows = await self._run(stmt, (*head, t2, start_us, end_us, limit - len(out)))
            for r in rows:
                if "body" in r:
                    r["body"] = json.loads(r["body"]) if r["body"] else {}
            out.extend(rows)
            if len(out) >= limit:
                break
        return out
