"""The config DB's connection and its primitives: the schema, the asyncio bridge to
cassandra-driver (``_run``/``_send``/``_write``/``_per_partition``), the reads of one row
(``_slice``/``_row``/``_cols``) and the fq-name cache. The operations of :mod:`.crud` and
:mod:`.names` are built on :class:`StoreSession`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    RequestExecutionException,
    Timeout,
    Unauthorized,
    WriteTimeout,
    WriteType,
)
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.query import BatchStatement, BatchType, PreparedStatement, tuple_factory

from contrail_ha.services import cql
from contrail_ha.services.config_api.clock import Sample
from contrail_ha.services.config_api.objects import Unavailable, mark_write
from contrail_ha.services.config_api.rows import (
    CREATE_DEADLINE_S,
    LINK_STALE_S,
    Layout,
    Mutation,
    bounds,
    link_is_fresh,
    whole_values,
)
from contrail_ha.services.keyspaces import CONFIG_KEYSPACE, USERAGENT_KEYSPACE, create_keyspace

log = logging.getLogger(__package__)  # the package's logger, as before the split into modules


KEYSPACE = CONFIG_KEYSPACE
UUID_TABLE = "obj_uuid_table"
FQ_TABLE = "obj_fq_name_table"
SHARED_TABLE = "obj_shared_table"
KV_TABLE = "useragent_keyval_table"
GC_GRACE_SECONDS = 864000
BATCH_LIMIT = 40 * 1024  # below Cassandra's default 50 KiB multi-partition batch failure threshold
FQ_CACHE_SIZE = 100_000
MAX_STATEMENTS = 4096  # statements in one unlogged batch (a huge collection is sent in several)
CLOCK_QUERY = "SELECT toUnixTimestamp(now()) FROM system.local"  # the node's clock, in ms
FANOUT = 64  # reads one request runs at once (the rest of the store's 256 stay for other requests)
CLAIM_WAIT_S = 2.0  # how long a write waits for a delete in progress on a row it points to

T = TypeVar("T")


def _unavailable(e: BaseException) -> Unavailable:
    errors = getattr(e, "errors", None)
    inner = next(iter(errors.values())) if isinstance(errors, dict) and errors else None
    text = str(inner or e).strip().splitlines()[0] if str(inner or e).strip() else type(e).__name__
    return Unavailable(f"Config DB (Cassandra) unavailable: {type(e).__name__}: {text[:300]}")


# Unauthorized/AuthenticationFailed: the node could not check our role (its auth read failed, e.g.
# while it is cut off) or refuses it (a misconfigured cluster): the DB's state, never the client's.
_DOWN = (NoHostAvailable, RequestExecutionException, OperationTimedOut, ConnectionException, Unauthorized,
         AuthenticationFailed)


class _Statements:
    """The prepared statements of one table."""

    def __init__(self, session: Session, ks: str, table: str) -> None:
        t = f'"{ks}"."{table}"'

        def p(q: str) -> PreparedStatement:
            return cql.idempotent(session.prepare(q))  # upserts, deletes and reads: safe to send twice

        self.insert = p(f"INSERT INTO {t} (key, column1, value) VALUES (?, ?, ?)")
        self.delete_col = p(f"DELETE FROM {t} WHERE key = ? AND column1 = ?")
        self.delete_row = p(f"DELETE FROM {t} WHERE key = ?")
        # the same with an explicit write time (a create's fence, a revoke, an ordered delete)
        self.insert_at = p(f"INSERT INTO {t} (key, column1, value) VALUES (?, ?, ?) USING TIMESTAMP ?")
        self.delete_col_at = p(f"DELETE FROM {t} USING TIMESTAMP ? WHERE key = ? AND column1 = ?")
        self.delete_row_at = p(f"DELETE FROM {t} USING TIMESTAMP ? WHERE key = ?")
        self.row = p(f"SELECT column1, value, WRITETIME(value) FROM {t} WHERE key = ?")
        self.slice = p(f"SELECT column1, value, WRITETIME(value) FROM {t} WHERE key = ? AND column1 >= ? "
                       "AND column1 < ?")
        self.cols = p(f"SELECT column1, value, WRITETIME(value) FROM {t} WHERE key = ? AND column1 IN ?")
        self.all = p(f"SELECT key, column1, value FROM {t}")

class StoreSession:
    """The connection of one contrail-api replica to the config DB, and the primitives of its
    operations (async API over cassandra-driver)."""

    def __init__(self, ips: list[str], port: int, rf: int, *, prefix: str = "",
                 consistency: int = ConsistencyLevel.QUORUM, connect_timeout: float = 5.0,
                 request_timeout: float = 5.0, batch_limit: int = BATCH_LIMIT,
                 gc_grace_seconds: int = GC_GRACE_SECONDS, fq_cache_size: int = FQ_CACHE_SIZE,
                 max_in_flight: int = 256, schema_agreement_wait: float = 30.0, page_size: int = 5000,
                 layout: Layout = whole_values, create_deadline: float = CREATE_DEADLINE_S,
                 auth: cql.Credentials | None = None) -> None:
        self.layout = layout
        self.auth = auth  # its own Cassandra role (owns the config keyspaces only)
        self.create_deadline = create_deadline
        # a claim older than this (by our clock) belongs to a create that can no longer acknowledge
        self.link_stale = create_deadline + (LINK_STALE_S - CREATE_DEADLINE_S)
        self.ips, self.port, self.rf = list(ips), port, rf
        self.keyspace = f"{prefix}_{KEYSPACE}" if prefix else KEYSPACE
        self.ua_keyspace = f"{prefix}_{USERAGENT_KEYSPACE}" if prefix else USERAGENT_KEYSPACE
        self.consistency = consistency
        self.connect_timeout, self.request_timeout = connect_timeout, request_timeout
        self.batch_limit = batch_limit
        self.gc_grace_seconds = gc_grace_seconds
        self.schema_agreement_wait = schema_agreement_wait
        self.page_size = page_size
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._st: dict[str, _Statements] = {}
        self._fq_cache: OrderedDict[str, tuple[list[str], str]] = OrderedDict()
        self._fq_cache_size = fq_cache_size
        self._fq_inflight: dict[str, asyncio.Future[tuple[list[str], str] | None]] = {}
        self._max_in_flight = max_in_flight
        self._sem: asyncio.Semaphore | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to every node, create the keyspaces/tables if missing, prepare the statements."""
        self._sem = asyncio.Semaphore(self._max_in_flight)
        try:
            await asyncio.to_thread(self._start_blocking)
        except (DriverException, *_DOWN) as e:
            await self.close()
            raise _unavailable(e) from e

    def _start_blocking(self) -> None:
        self._cluster = cql.cluster(self.ips, self.port, consistency=self.consistency,
                                    request_timeout=self.request_timeout, connect_timeout=self.connect_timeout,
                                    row_factory=tuple_factory, auth=self.auth)
        self._session = self._cluster.connect()
        self._session.default_fetch_size = self.page_size
        self._ensure_schema()
        for name, ks in ((UUID_TABLE, self.keyspace), (FQ_TABLE, self.keyspace), (SHARED_TABLE, self.keyspace),
                         (KV_TABLE, self.ua_keyspace)):
            def statements(n: str = name, k: str = ks) -> _Statements:
                return _Statements(self._session, k, n)

            self._st[name] = cql.when_visible(statements)

    def _ensure_schema(self) -> None:
        """Idempotent and safe when several replicas do it at once (fixed table ids), then schema agreement."""
        s = self._session
        assert s is not None and self._cluster is not None
        for ks, tables in ((self.keyspace, (UUID_TABLE, FQ_TABLE, SHARED_TABLE)), (self.ua_keyspace, (KV_TABLE,))):
            have = s.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)).one()
            if have is None:
                s.execute(create_keyspace(ks, self.rf))
                log.info("created keyspace %s (RF %d)", ks, self.rf)
            elif str(have[0].get("replication_factor")) != str(self.rf):
                log.warning("keyspace %s has replication %s, configured RF is %d (left as is)", ks, have[0], self.rf)
            existing = {r[0] for r in s.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (ks,))}
            for t in tables:
                if t in existing:
                    continue
                tid = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"contrail-ha:{ks}.{t}")
                s.execute(f'CREATE TABLE IF NOT EXISTS "{ks}"."{t}" (key blob, column1 blob, value text, '
                          f"PRIMARY KEY (key, column1)) WITH CLUSTERING ORDER BY (column1 ASC) "
                          f"AND gc_grace_seconds = {int(self.gc_grace_seconds)} AND ID = {tid}")
                log.info("created table %s.%s", ks, t)
        if not self._cluster.control_connection.wait_for_schema_agreement(wait_time=self.schema_agreement_wait):
            raise OperationTimedOut(f"no schema agreement after {self.schema_agreement_wait}s")

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the asyncio bridge ----------------------------------------------------------------------
    async def _run(self, stmt: Any, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute one statement; every page of its rows (driver callbacks -> asyncio future)."""
        session = self._session
        if session is None:
            raise Unavailable("Config DB (Cassandra) unavailable: the store is not started")
        assert self._sem is not None
        async with self._sem:
            try:
                return await cql.execute(session, stmt, params)
            except _DOWN as e:
                raise _unavailable(e) from e

    def _stmt(self, m: Mutation) -> tuple[PreparedStatement, tuple[Any, ...]]:
        st = self._st[m.table]
        k = m.key.encode()
        if m.ts is not None:
            if m.column is None:
                return st.delete_row_at, (m.ts, k)
            if m.value is None:
                return st.delete_col_at, (m.ts, k, m.column.encode())
            return st.insert_at, (k, m.column.encode(), m.value, m.ts)
        if m.column is None:
            return st.delete_row, (k,)
        if m.value is None:
            return st.delete_col, (k, m.column.encode())
        return st.insert, (k, m.column.encode(), m.value)

    async def _send(self, muts: list[Mutation], batch_type: BatchType = BatchType.LOGGED) -> None:
        if not muts:
            return
        mark_write()
        if len(muts) == 1:
            await self._run(*self._stmt(muts[0]))
            return
        if batch_type == BatchType.UNLOGGED and len(muts) > MAX_STATEMENTS:  # the protocol's limit is 65535
            await asyncio.gather(*(self._send(muts[i:i + MAX_STATEMENTS], batch_type)
                                   for i in range(0, len(muts), MAX_STATEMENTS)))
            return
        if batch_type == BatchType.LOGGED and self.node_down():
            # A node is down (the driver lost it): the coordinator may still pick it for the batchlog
            # until Cassandra's failure detector convicts it, and such a batch waits out the write
            # timeout. Go per partition at once, as after a batchlog timeout.
            await self._per_partition(muts)
            return
        b = cql.idempotent(BatchStatement(batch_type=batch_type, consistency_level=self.consistency))
        for m in muts:
            b.add(*self._stmt(m))
        try:
            await self._run(b)
        except Unavailable as e:
            # Right after a node dies, the coordinator may still pick it for the batchlog (2 replicas
            # needed), while every data partition still has its quorum. The mutations are idempotent:
            # applying them per partition at QUORUM gives the state the batch would have given.
            cause = e.__cause__
            if batch_type != BatchType.LOGGED or not isinstance(cause, WriteTimeout) or \
                    cause.write_type not in (WriteType.BATCH_LOG, "BATCH_LOG"):
                raise
            log.warning("batchlog write timed out (%s); applying the batch per partition", cause)
            await self._per_partition(muts)

    async def _per_partition(self, muts: list[Mutation]) -> None:
        parts: dict[tuple[str, str], list[Mutation]] = {}
        for m in muts:
            parts.setdefault((m.table, m.key), []).append(m)
        done = await asyncio.gather(*(self._send(p, BatchType.UNLOGGED) for p in parts.values()),
                                    return_exceptions=True)
        errors = [e for e in done if isinstance(e, BaseException)]
        if errors:  # a timed-out one first: the caller must learn that some write may still apply
            raise next((e for e in errors if isinstance(e.__cause__, (Timeout, OperationTimedOut))), errors[0])

    def node_down(self) -> bool:
        """The driver holds a node of the ring for down (it lost its connections to it)."""
        cluster = self._cluster
        return cluster is not None and any(h.is_up is False for h in cluster.metadata.all_hosts())

    async def _write(self, muts: list[Mutation], commit: list[Mutation] | None = None) -> None:
        """All of ``muts`` + ``commit`` in one LOGGED batch if it fits the batch limit; else one
        single-partition batch per row for ``muts`` (concurrently), then ``commit``."""
        commit = commit or []
        if sum(m.size() for m in muts + commit) <= self.batch_limit:
            await self._send(muts + commit)
            return
        parts: dict[tuple[str, str], list[Mutation]] = {}
        for m in muts:
            parts.setdefault((m.table, m.key), []).append(m)
        await asyncio.gather(*(self._send(p, BatchType.UNLOGGED) for p in parts.values()))
        if sum(m.size() for m in commit) <= self.batch_limit:
            await self._send(commit)
        else:
            for m in commit:
                await self._send([m])

    async def _slice(self, table: str, key: str, prefix: str) -> list[tuple[str, str, int | None]]:
        lo, hi = bounds(prefix)
        rows = await self._run(self._st[table].slice, (key.encode(), lo.encode(), hi.encode()))
        return [(c.decode(), v, ts) for c, v, ts in rows]

    async def _row(self, table: str, key: str) -> list[tuple[str, str, int | None]]:
        rows = await self._run(self._st[table].row, (key.encode(),))
        return [(c.decode(), v, ts) for c, v, ts in rows]

    async def _cols(self, table: str, key: str, names: Iterable[str]) -> list[tuple[str, str, int | None]]:
        rows = await self._run(self._st[table].cols, (key.encode(), [n.encode() for n in names]))
        return [(c.decode(), v, ts) for c, v, ts in rows]

    # --- fq-name cache -----------------------------------------------------------------------------
    def _cache_put(self, uuid: str, fq_name: list[str], obj_type: str) -> None:
        self._fq_cache[uuid] = (list(fq_name), obj_type)
        self._fq_cache.move_to_end(uuid)
        while len(self._fq_cache) > self._fq_cache_size:
            self._fq_cache.popitem(last=False)

    def forget(self, uuid: str) -> None:
        """Drop a uuid from the fq-name cache (call on another replica's DELETE notification)."""
        self._fq_cache.pop(uuid, None)

    def forget_all(self) -> None:
        """Drop the whole fq-name cache (after notifications may have been missed)."""
        self._fq_cache.clear()

    async def _load_fq(self, uuid: str) -> tuple[list[str], str] | None:
        cols = {c: v for c, v, _ in await self._cols(UUID_TABLE, uuid, ("fq_name", "type"))}
        if "fq_name" not in cols or "type" not in cols:
            return None
        found = (json.loads(cols["fq_name"]), json.loads(cols["type"]))
        self._cache_put(uuid, *found)
        return found

    async def uuid_to_fq_name(self, uuid: str) -> tuple[list[str], str] | None:
        """``(fq_name, object type)`` of a uuid, or None. Cached (fq_names never change)."""
        hit = self._fq_cache.get(uuid)
        if hit is not None:
            self._fq_cache.move_to_end(uuid)
            return list(hit[0]), hit[1]
        fut = self._fq_inflight.get(uuid)
        if fut is None:
            fut = asyncio.ensure_future(self._load_fq(uuid))
            self._fq_inflight[uuid] = fut

            def done(f: asyncio.Future[Any], u: str = uuid) -> None:
                self._fq_inflight.pop(u, None)
                if not f.cancelled():
                    f.exception()  # retrieved: a lone cancelled waiter must not leave it unobserved

            fut.add_done_callback(done)
        found = await asyncio.shield(fut)
        return None if found is None else (list(found[0]), found[1])

    async def _fq_many(self, uuids: Iterable[str]) -> dict[str, tuple[list[str], str]]:
        wanted = list(dict.fromkeys(uuids))
        found = await self._bounded(self.uuid_to_fq_name, wanted)
        return {u: f for u, f in zip(wanted, found, strict=True) if f is not None}

    async def exists(self, uuid: str) -> bool:
        """Whether the object's row exists in Cassandra now (uncached; the fq-lock stale rule asks this)."""
        return bool(await self._cols(UUID_TABLE, uuid, ("type",)))

    async def clock_samples(self) -> list[Sample]:
        """Each reachable config-DB node's clock against ours: ``now()`` of ``system.local``, one
        query pinned to each node; the uncertainty is half the round trip (and the 1 ms unit)."""
        cluster, session = self._cluster, self._session
        if cluster is None or session is None:
            return []

        def one(host: Any) -> Sample:
            t0 = time.time()
            row = session.execute(CLOCK_QUERY, host=host, timeout=2.0).one()
            t1 = time.time()
            return Sample(str(host.address), row[0] / 1000.0 - (t0 + t1) / 2, (t1 - t0) / 2 + 0.001)

        hosts = [h for h in cluster.metadata.all_hosts() if h.is_up is not False]
        found = await asyncio.gather(*(asyncio.to_thread(one, h) for h in hosts), return_exceptions=True)
        return [s for s in found if isinstance(s, Sample)]

    def claim_is_live(self, writetime_us: int | None) -> bool:
        """Whether a claim (link column, fq-name lock) written at ``writetime_us`` may belong to a
        create that can still acknowledge: it must not be revoked."""
        return link_is_fresh(writetime_us, stale=self.link_stale)

    async def _bounded(self, fn: Callable[[str], Awaitable[T]], items: list[str]) -> list[T]:
        out: list[T] = []
        for i in range(0, len(items), FANOUT):
            out += await asyncio.gather(*(fn(x) for x in items[i:i + FANOUT]))
        return out
