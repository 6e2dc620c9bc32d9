"""contrail-api's config DB: Cassandra in the original thrift-style wide-row layout (§1a).

Keyspace ``config_db_uuid`` (``<prefix>_config_db_uuid`` with a prefix) holds three tables
and keyspace ``useragent`` one, each ``(key blob, column1 blob, value text, PRIMARY KEY (key,
column1))``:

* ``obj_uuid_table`` - one row per object (key = uuid). Columns: ``fq_name``, ``type``,
  ``parent_type``, ``META:latest_col_ts``, ``prop:<name>`` (JSON), ``parent:<type>:<uuid>``,
  ``ref:<type>:<uuid>`` (``{"attr":…, "is_weakref":false}``); written on *other* rows:
  ``children:<type>:<uuid>`` (the parent's row), ``backref:<type>:<uuid>`` (each ref target's
  row; refs between two objects of one type are ``ref:`` on both rows instead),
  ``relaxbackref:<uuid>`` (the referred object's row). Object types are underscore form.
* ``obj_fq_name_table`` - row = object type, column ``<fq:name:joined>:<uuid>``, value null.
* ``obj_shared_table`` - row = object type, column ``<share_type>:<share_id>:<uuid>``, value rwx.
* ``useragent.useragent_keyval_table`` - row = key, one column ``value``.

Choices (documented deviations are marked *):

* List and map properties are element columns ``propl:<name>:<position>`` /
  ``propm:<name>:<key>`` as in the original, beside a ``prop:<name>`` shell (see :mod:`rows`):
  concurrent element updates of different elements all survive.
* Writes that point at other rows (a create's parent and ref targets, an update's or
  ref-update's new refs) *claim* them first: the link columns are written on the target rows,
  then each target row is read back (QUORUM) and must exist without a fresh delete mark. A
  delete writes its mark first, then reads its links. Of a racing pair at least one sees the
  other, so no child outlives its parent and no ref outlives its target (docs/integrity.md).
* Children are ordered by the ``WRITETIME`` of their ``children:`` column (the original reads
  the thrift column timestamp); the column value stays JSON null as in the original.
* A create is one LOGGED batch holding the object's row, the parent's ``children:`` column,
  the targets' ``backref:`` columns *and* the fq-name column (*the original sends the fq-name
  insert after the batch; one batch makes the create atomic). When the batch would exceed
  Cassandra's multi-partition batch limit (``batch_size_fail_threshold``, 50 KiB by default) the
  bulky columns go first, one single-partition batch per row, and a small LOGGED "commit" batch
  with ``type``/``fq_name`` and the fq-name column makes the object visible last: a crash in
  between leaves only invisible columns under an unused uuid (so the ZooKeeper stale-lock rule
  applies). Updates whose batch is too large are split per partition likewise.
* While the driver holds a node down, and after a batchlog write timed out, a batch is applied
  per partition (the mutations are idempotent): Cassandra's failure detector convicts a dead
  node seconds after the driver lost its connections, and until then the coordinator may pick it
  for the batchlog and wait out the write timeout.
* A write that timed out (outcome unknown) during a create is undone with deletes carrying a
  later timestamp, so a failed create never surfaces later through batch-log replay; the create
  then fails with 503 (safe to retry, also on another replica: the retry's writes are later than
  the undo). When the undo times out too, the create fails with 504 :class:`OutcomeUnknown`: the
  object may or may not appear, and a retry could be deleted by the late undo, so nothing retries.
* Every read and write uses one consistency level (QUORUM by default); the driver knows every
  node and has no VIP. Keyspaces and tables are created with ``IF NOT EXISTS`` and a
  deterministic table ``ID`` (uuid5 of ``keyspace.table``), so replicas creating them at the
  same moment converge on one definition, then the store waits for schema agreement.

Errors of an unreachable or degraded cluster raise :class:`objects.Unavailable` (HTTP 503).
Queries are issued with ``execute_async``; the driver's callbacks resolve asyncio futures via
``loop.call_soon_threadsafe`` (no thread per query).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from cassandra import (
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    RequestExecutionException,
    Timeout,
    WriteTimeout,
    WriteType,
)
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.query import BatchStatement, BatchType, PreparedStatement, tuple_factory

from contrail_ha.services import cql
from contrail_ha.services.config_api.objects import (
    ENVELOPE,
    ConfigError,
    Conflict,
    NotFound,
    Obj,
    OutcomeUnknown,
    Unavailable,
    fq_str,
    mark_write,
)
from contrail_ha.services.config_api.rows import (
    DELETING,
    LAST_MODIFIED,
    LATEST,
    NULL,
    Collection,
    Layout,
    Links,
    Mutation,
    _share_rwx,
    bounds,
    col_backref,
    col_child,
    col_fq,
    col_parent,
    col_prop,
    col_ref,
    col_relax,
    col_shared,
    decode_row,
    deleting_mark,
    dumps,
    fq_hits,
    mark_is_fresh,
    otype,
    parse_fq_col,
    position_order,
    ref_type_of,
    ref_value,
    share_entries,
    whole_values,
)

log = logging.getLogger(__name__)

KEYSPACE = "config_db_uuid"
USERAGENT_KEYSPACE = "useragent"
UUID_TABLE = "obj_uuid_table"
FQ_TABLE = "obj_fq_name_table"
SHARED_TABLE = "obj_shared_table"
KV_TABLE = "useragent_keyval_table"
GC_GRACE_SECONDS = 864000
BATCH_LIMIT = 40 * 1024  # below Cassandra's default 50 KiB multi-partition batch failure threshold
FQ_CACHE_SIZE = 100_000
MAX_STATEMENTS = 4096  # statements in one unlogged batch (a huge collection is sent in several)
FANOUT = 64  # reads one request runs at once (the rest of the store's 256 stay for other requests)
CLAIM_WAIT_S = 2.0  # how long a write waits for a delete in progress on a row it points to

T = TypeVar("T")

# Re-exported: the row codec's names are part of the store's interface.
__all__ = [
    "Collection",
    "ConfigStore",
    "Layout",
    "Links",
    "MultiMatch",
    "Mutation",
    "bounds",
    "col_backref",
    "col_child",
    "col_fq",
    "col_parent",
    "col_prop",
    "col_ref",
    "col_relax",
    "col_shared",
    "decode_row",
    "fq_hits",
    "otype",
    "parse_fq_col",
    "ref_type_of",
    "ref_value",
    "share_entries",
]

class MultiMatch(ConfigError):
    """More than one object of a type holds one fq_name (a corrupt index, as the original's 'Multi match')."""

    status = 500


# --------------------------------------------------------------------------------------------


def _unavailable(e: BaseException) -> Unavailable:
    errors = getattr(e, "errors", None)
    inner = next(iter(errors.values())) if isinstance(errors, dict) and errors else None
    text = str(inner or e).strip().splitlines()[0] if str(inner or e).strip() else type(e).__name__
    return Unavailable(f"Config DB (Cassandra) unavailable: {type(e).__name__}: {text[:300]}")


_DOWN = (NoHostAvailable, RequestExecutionException, OperationTimedOut, ConnectionException)


class _Statements:
    """The prepared statements of one table."""

    def __init__(self, session: Session, ks: str, table: str) -> None:
        t = f'"{ks}"."{table}"'

        def p(q: str) -> PreparedStatement:
            return cql.idempotent(session.prepare(q))  # upserts, deletes and reads: safe to send twice

        self.insert = p(f"INSERT INTO {t} (key, column1, value) VALUES (?, ?, ?)")
        self.delete_col = p(f"DELETE FROM {t} WHERE key = ? AND column1 = ?")
        self.delete_row = p(f"DELETE FROM {t} WHERE key = ?")
        self.row = p(f"SELECT column1, value, WRITETIME(value) FROM {t} WHERE key = ?")
        self.slice = p(f"SELECT column1, value, WRITETIME(value) FROM {t} WHERE key = ? AND column1 >= ? "
                       "AND column1 < ?")
        self.cols = p(f"SELECT column1, value, WRITETIME(value) FROM {t} WHERE key = ? AND column1 IN ?")
        self.all = p(f"SELECT key, column1, value FROM {t}")


class ConfigStore:
    """The config DB of one contrail-api replica (async API over cassandra-driver)."""

    def __init__(self, ips: list[str], port: int, rf: int, *, prefix: str = "",
                 consistency: int = ConsistencyLevel.QUORUM, connect_timeout: float = 5.0,
                 request_timeout: float = 5.0, batch_limit: int = BATCH_LIMIT,
                 gc_grace_seconds: int = GC_GRACE_SECONDS, fq_cache_size: int = FQ_CACHE_SIZE,
                 max_in_flight: int = 256, schema_agreement_wait: float = 30.0, page_size: int = 5000,
                 layout: Layout = whole_values) -> None:
        self.layout = layout
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
                                    row_factory=tuple_factory)
        self._session = self._cluster.connect()
        self._session.default_fetch_size = self.page_size
        self._ensure_schema()
        for name, ks in ((UUID_TABLE, self.keyspace), (FQ_TABLE, self.keyspace), (SHARED_TABLE, self.keyspace),
                         (KV_TABLE, self.ua_keyspace)):
            self._st[name] = cql.when_visible(lambda n=name, k=ks: _Statements(self._session, k, n))

    def _ensure_schema(self) -> None:
        """Idempotent and safe when several replicas do it at once (fixed table ids), then schema agreement."""
        s = self._session
        assert s is not None and self._cluster is not None
        for ks, tables in ((self.keyspace, (UUID_TABLE, FQ_TABLE, SHARED_TABLE)), (self.ua_keyspace, (KV_TABLE,))):
            have = s.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)).one()
            if have is None:
                s.execute(f'CREATE KEYSPACE IF NOT EXISTS "{ks}" WITH replication = '
                          f"{{'class': 'SimpleStrategy', 'replication_factor': {int(self.rf)}}}")
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

    async def __aenter__(self) -> ConfigStore:
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

    # --- create / read / update / delete --------------------------------------------------------
    async def create(self, obj: Obj) -> None:
        """Write a new object (the dict of objects.py: envelope, props, ``<type>_refs`` with uuids).

        First the *claim*: the link columns on the rows the object points to (its parent's
        ``children:``, each target's ``backref:``), then a QUORUM read of those rows - each must
        exist with no delete in progress (:meth:`_check_targets`) - and only then the object's
        own row and fq-name column. A delete marks its row before reading its links, so of a
        create and a delete racing on one row at least one sees the other (QUORUM write then
        QUORUM read on both sides): no orphan, no dangling ref.
        """
        u, t, fq = obj["uuid"], otype(obj["type"]), list(obj["fq_name"])
        body: list[Mutation] = []
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        modified = (obj.get("id_perms") or {}).get("last_modified") if isinstance(obj.get("id_perms"), dict) else None
        commit = [Mutation(UUID_TABLE, u, "fq_name", dumps(fq)), Mutation(UUID_TABLE, u, "type", dumps(t)),
                  Mutation(UUID_TABLE, u, LATEST, NULL)]
        if modified:
            commit.append(Mutation(UUID_TABLE, u, LAST_MODIFIED, dumps(modified)))
        if obj.get("parent_type") and obj.get("parent_uuid"):
            pt, pu = otype(obj["parent_type"]), obj["parent_uuid"]
            commit += [Mutation(UUID_TABLE, u, "parent_type", dumps(pt)),
                       Mutation(UUID_TABLE, u, col_parent(pt, pu), NULL)]
            links.append(Mutation(UUID_TABLE, pu, col_child(t, u), NULL))
            targets[pu] = f"Parent {obj['parent_type']} {pu}"
        for k, v in obj.items():
            if k in ENVELOPE or k.endswith("_back_refs") or k == "relaxed_back_refs":
                continue
            rtype = ref_type_of(k)
            if rtype is not None and isinstance(v, list):
                for r in v:
                    body.append(Mutation(UUID_TABLE, u, col_ref(rtype, r["uuid"]), ref_value(r.get("attr"))))
                    links.append(self._other_side(t, u, rtype, r["uuid"], ref_value(r.get("attr"))))
                    targets.setdefault(r["uuid"], f"{k}: {rtype.replace('_', '-')} {r['uuid']}")
            elif v is not None:
                body += self._prop_columns(t, u, k, v)
        commit.append(Mutation(FQ_TABLE, t, col_fq(fq, u), NULL))
        await self._claim(links, targets)
        try:
            await self._write(body, commit)
        except Unavailable as e:
            if not isinstance(e.__cause__, (Timeout, OperationTimedOut)):
                await self._unclaim(links)
            elif not await self._undo_create(u, t, fq, links):  # it may still apply
                raise OutcomeUnknown(f"The create of {t} {u} timed out and may still apply "
                                     f"(retry it after reading the object): {e}") from e
            raise
        except BaseException:
            await self._unclaim(links)
            raise
        self._cache_put(u, fq, t)

    def _prop_columns(self, obj_type: str, uuid: str, name: str, value: Any) -> list[Mutation]:
        """The columns of a property value: one, or a collection's shell and one per element."""
        coll = self.layout(obj_type, name)
        if coll is None:
            return [Mutation(UUID_TABLE, uuid, col_prop(name), dumps(value))]
        shell, items = coll.split(value)
        return [Mutation(UUID_TABLE, uuid, col_prop(name), dumps(shell))] + \
            [Mutation(UUID_TABLE, uuid, coll.column(name, pos), dumps(e)) for pos, e in items]

    async def _claim(self, links: list[Mutation], targets: dict[str, str]) -> None:
        """Write ``links`` on the targets' rows, then check the targets (see :meth:`create`)."""
        if not links:
            return
        await self._write_links(links)
        try:
            await self._check_targets(targets)
        except BaseException:
            await self._unclaim(links)
            raise

    async def _write_links(self, links: list[Mutation]) -> None:
        """Link columns on other rows: unlogged (each is idempotent and undone on failure), in
        batches under the batch limit, concurrently."""
        chunks: list[list[Mutation]] = [[]]
        size = 0
        for m in links:
            if chunks[-1] and size + m.size() > self.batch_limit:
                chunks.append([])
                size = 0
            chunks[-1].append(m)
            size += m.size()
        await asyncio.gather(*(self._send(c, BatchType.UNLOGGED) for c in chunks if c))

    async def _unclaim(self, links: list[Mutation]) -> None:
        """Remove claimed link columns (best effort: a leftover is invisible and goes stale)."""
        if not links:
            return
        try:
            await self._write_links([Mutation(m.table, m.key, m.column) for m in links])
        except Exception as e:
            log.warning("could not remove %d claimed link columns: %s", len(links), e)

    async def _check_targets(self, targets: dict[str, str]) -> None:
        """Every target row exists and is not being deleted. A delete in progress is waited for
        briefly (it either finishes - the target is gone: 404 - or gives up: go on)."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        pending = dict(targets)
        while pending:
            rows = await self._bounded(lambda u: self._cols(UUID_TABLE, u, ("type", DELETING)), list(pending))
            busy: dict[str, str] = {}
            for (u, what), cols in zip(pending.items(), rows, strict=True):
                have = {c: v for c, v, _ in cols}
                if "type" not in have:  # a missing parent is a bad request (as R2005), a missing target 404
                    raise ConfigError(f"{what} does not exist") if what.startswith("Parent") \
                        else NotFound(f"{what} not found")
                if mark_is_fresh(have.get(DELETING)):
                    busy[u] = what
            if busy and time.monotonic() > deadline:
                raise Conflict(f"{next(iter(busy.values()))} is being deleted; try again")
            pending = busy
            if pending:
                await asyncio.sleep(0.05)

    async def _undo_create(self, u: str, t: str, fq: list[str], links: list[Mutation]) -> bool:
        """Delete what a timed-out create may have written (later timestamp); False if that failed too."""
        undo = [Mutation(UUID_TABLE, u, None), Mutation(FQ_TABLE, t, col_fq(fq, u))]
        undo += [Mutation(m.table, m.key, m.column) for m in links]
        try:
            await self._send(undo)
        except Exception as e:
            log.warning("could not undo the timed-out create of %s %s (outcome unknown): %s", t, u, e)
            return False
        return True

    @staticmethod
    def _other_side(obj_type: str, obj_uuid: str, ref_type: str, ref_uuid: str, value: str | None) -> Mutation:
        """The column a ref writes on its target's row: ``backref:`` (or ``ref:`` between objects of one type)."""
        if otype(ref_type) == obj_type:
            return Mutation(UUID_TABLE, ref_uuid, col_ref(obj_type, obj_uuid), value)
        return Mutation(UUID_TABLE, ref_uuid, col_backref(obj_type, obj_uuid), value)

    async def read(self, uuid: str, *, fields: Sequence[str] | None = None) -> Obj | None:
        """The object (objects.py form) with its children and back-refs, or None.

        With ``fields`` only those (props, ``<t>_refs``, ``<t>s`` children, ``<t>_back_refs``) plus
        the envelope, ``id_perms`` and ``perms2``. A full read also carries ``relaxed_back_refs``
        (uuids of referrers whose ref was relaxed for delete) when there are any.
        """
        if fields is None:
            cols = await self._row(UUID_TABLE, uuid)
        else:
            cols = await self._read_fields(uuid, fields)
        return await self._assemble(uuid, cols, full=fields is None)

    async def read_row(self, uuid: str) -> tuple[Obj, Links] | None:
        """The object's own fields and raw link columns, read now at QUORUM (no cache): what a
        delete decides on."""
        return decode_row(uuid, await self._row(UUID_TABLE, uuid), self.layout)

    async def _read_fields(self, uuid: str, fields: Sequence[str]) -> list[tuple[str, str, int | None]]:
        names = ["fq_name", "type", "parent_type", col_prop("id_perms"), col_prop("perms2"), LAST_MODIFIED]
        known = self._fq_cache.get(uuid)
        slices = ["parent"]
        for f in dict.fromkeys(fields):
            if f in ENVELOPE:
                continue
            names.append(col_prop(f))
            if f.endswith("_back_refs"):
                slices.append(f"backref:{f[: -len('_back_refs')]}")
            elif f.endswith("_refs"):
                slices.append(f"ref:{f[: -len('_refs')]}")
            elif f.endswith("s"):
                slices.append(f"children:{f[:-1]}")
            if known is None:  # type not cached: the field may be a collection of either kind
                slices += [f"propl:{f}", f"propm:{f}"]
            elif (coll := self.layout(known[1], f)) is not None:
                slices.append(f"{coll.prefix}:{f}")
        parts = await asyncio.gather(self._cols(UUID_TABLE, uuid, dict.fromkeys(names)),
                                     *(self._slice(UUID_TABLE, uuid, p) for p in slices))
        return [c for part in parts for c in part]

    async def _assemble(self, uuid: str, cols: list[tuple[str, str, int | None]], full: bool) -> Obj | None:
        decoded = decode_row(uuid, cols, self.layout)
        if decoded is None:
            return None
        obj, links = decoded
        self._cache_put(uuid, obj["fq_name"], obj["type"])
        fqs = await self._fq_many([u for _, u, _ in links.refs] + [u for _, u, _ in links.children]
                                  + [u for _, u, _ in links.backrefs])
        for t, u, attr in links.refs:
            if u in fqs:
                obj.setdefault(f"{t}_refs", []).append({"to": fqs[u][0], "uuid": u, "attr": attr})
        for t, u, _ in sorted(links.children, key=lambda c: (c[2], c[1])):
            if u in fqs:
                obj.setdefault(f"{t}s", []).append({"to": fqs[u][0], "uuid": u})
        for t, u, attr in links.backrefs:
            if u in fqs:
                obj.setdefault(f"{t}_back_refs", []).append({"to": fqs[u][0], "uuid": u, "attr": attr})
        if full and links.relaxed:
            obj["relaxed_back_refs"] = list(links.relaxed)
        return obj

    async def read_many(self, uuids: Sequence[str], fields: Sequence[str] | None = None) -> list[Obj | None]:
        """:meth:`read` of each uuid; the result is aligned with ``uuids``. At most :data:`FANOUT`
        reads of one request run at once, so a huge request cannot starve the others."""
        return await self._bounded(lambda u: self.read(u, fields=fields), list(uuids))

    async def _bounded(self, fn: Callable[[str], Awaitable[T]], items: list[str]) -> list[T]:
        out: list[T] = []
        for i in range(0, len(items), FANOUT):
            out += await asyncio.gather(*(fn(x) for x in items[i:i + FANOUT]))
        return out

    async def update(self, uuid: str, changes: Obj, refs: dict[str, list[Obj]] | None = None, *,
                     modified: str | None = None) -> None:
        """Set props (None deletes the property) and replace whole ref lists (``{field: [{"uuid", "attr"}]}``).

        Envelope keys in ``changes`` are ignored (fq_name, type and parent never change); a
        ``<t>_refs`` key in ``changes`` is treated as a ref-list replacement. A list or map
        property is replaced element-wise (the elements it had and no longer has are deleted).
        ``modified`` is the new ``id_perms.last_modified``. New refs are claimed on their targets
        first (as in :meth:`create`). Raises ``NotFound`` when the object does not exist.
        """
        found = await self.uuid_to_fq_name(uuid)
        if found is None:
            raise NotFound(f"{uuid} not found")
        t = found[1]
        muts = [Mutation(UUID_TABLE, uuid, LATEST, NULL)]
        if modified:
            muts.append(Mutation(UUID_TABLE, uuid, LAST_MODIFIED, dumps(modified)))
        refs = dict(refs or {})
        whole: dict[str, Any] = {}
        for k, v in changes.items():
            if k in ENVELOPE or k.endswith("_back_refs") or k == "relaxed_back_refs":
                continue
            if ref_type_of(k) is not None and isinstance(v, list):
                refs[k] = v
                continue
            if self.layout(t, k) is not None:
                whole[k] = v
                continue
            muts.append(Mutation(UUID_TABLE, uuid, col_prop(k), None if v is None else dumps(v)))
        reads = [self._slice(UUID_TABLE, uuid, f"{self.layout(t, k).prefix}:{k}") for k in whole]  # type: ignore[union-attr]
        reads += [self._slice(UUID_TABLE, uuid, f"ref:{ref_type_of(f)}") for f in refs]
        current = await asyncio.gather(*reads)
        for (k, v), cols in zip(whole.items(), current[:len(whole)], strict=True):
            new = self._prop_columns(t, uuid, k, v) if v is not None else [Mutation(UUID_TABLE, uuid, col_prop(k))]
            keep = {m.column for m in new}
            muts += new + [Mutation(UUID_TABLE, uuid, c) for c, _, _ in cols if c not in keep]
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        for (f, new_refs), cols in zip(refs.items(), current[len(whole):], strict=True):
            rtype = ref_type_of(f)
            if rtype is None:
                raise ValueError(f"{f} is not a ref field")
            have = {c.rsplit(":", 1)[1]: v for c, v, _ in cols}
            want = {r["uuid"]: ref_value(r.get("attr")) for r in new_refs or []}
            for ru in have.keys() - want.keys():
                muts += self._unlink(t, uuid, rtype, ru)
            for ru, val in want.items():
                if have.get(ru) != val:
                    muts.append(Mutation(UUID_TABLE, uuid, col_ref(rtype, ru), val))
                    links.append(self._other_side(t, uuid, rtype, ru, val))
                    if ru not in have:
                        targets[ru] = f"{f}: {rtype.replace('_', '-')} {ru}"
        await self._claim(links, targets)
        try:
            await self._write(muts)
        except BaseException:
            await self._unclaim([m for m in links if m.key in targets])
            raise

    async def update_elements(self, uuid: str, changes: Sequence[tuple[str, str, Any]], *,
                              shells: Obj | None = None, modified: str | None = None) -> None:
        """Set (value) or delete (value None) single elements: ``(property, position or key, value)``.

        Each element is its own column, so concurrent changes of different elements all survive.
        ``shells``: the ``prop:<name>`` shell of each touched collection (so the property reads
        back as set). Raises ``NotFound`` when the object does not exist.
        """
        found = await self.uuid_to_fq_name(uuid)
        if found is None:
            raise NotFound(f"{uuid} not found")
        t = found[1]
        muts = [Mutation(UUID_TABLE, uuid, LATEST, NULL)]
        if modified:
            muts.append(Mutation(UUID_TABLE, uuid, LAST_MODIFIED, dumps(modified)))
        for name, shell in (shells or {}).items():
            muts.append(Mutation(UUID_TABLE, uuid, col_prop(name), dumps(shell)))
        for name, pos, value in changes:
            coll = self.layout(t, name)
            if coll is None:
                raise ValueError(f"{name} is not a list or map property of {t}")
            muts.append(Mutation(UUID_TABLE, uuid, coll.column(name, pos), None if value is None else dumps(value)))
        await self._write(muts)

    async def read_elements(self, uuid: str, name: str) -> list[tuple[str, Any]] | None:
        """``(position or key, element)`` of a list or map property in order; None when the
        object does not exist or the property is not a collection."""
        found = await self.uuid_to_fq_name(uuid)
        coll = self.layout(found[1], name) if found else None
        if found is None or coll is None:
            return None
        cols = await self._slice(UUID_TABLE, uuid, f"{coll.prefix}:{name}")
        items = [(c[len(coll.prefix) + len(name) + 2:], json.loads(v)) for c, v, _ in cols]
        if coll.kind == "list":
            items.sort(key=lambda pe: position_order(pe[0]))
        return items

    def _unlink(self, obj_type: str, obj_uuid: str, ref_type: str, ref_uuid: str) -> list[Mutation]:
        """Deletes of a ref on both rows (and the relaxed marker on the target)."""
        out = [Mutation(UUID_TABLE, obj_uuid, col_ref(ref_type, ref_uuid)),
               self._other_side(obj_type, obj_uuid, ref_type, ref_uuid, None)]
        if otype(ref_type) != obj_type:
            out.append(Mutation(UUID_TABLE, ref_uuid, col_relax(obj_uuid)))
        return out

    async def ref_update(self, uuid: str, ref_type: str, ref_uuid: str, attr: Any, op: str, *,
                         modified: str | None = None) -> None:
        """Add (or re-attribute) one ref with ``op`` ``ADD``, remove it with ``DELETE``."""
        if op.upper() == "ADD":
            await self.ref_ops(uuid, adds=[(ref_type, ref_uuid, attr)], modified=modified)
        elif op.upper() == "DELETE":
            await self.ref_ops(uuid, deletes=[(ref_type, ref_uuid)], modified=modified)
        else:
            raise ConfigError(f"ref-update operation must be ADD or DELETE, got {op!r}")

    async def ref_ops(self, uuid: str, adds: Sequence[tuple[str, str, Any]] = (),
                      deletes: Sequence[tuple[str, str]] = (), *, modified: str | None = None) -> None:
        """Add refs ``(ref type, uuid, attr)`` and remove refs ``(ref type, uuid)``: only those refs'
        columns are written, so concurrent changes of different refs all survive. Added refs claim
        their targets first (each must exist and not be being deleted)."""
        found = await self.uuid_to_fq_name(uuid)
        if found is None:
            raise NotFound(f"{uuid} not found")
        t = found[1]
        muts = [Mutation(UUID_TABLE, uuid, LATEST, NULL)]
        if modified:
            muts.append(Mutation(UUID_TABLE, uuid, LAST_MODIFIED, dumps(modified)))
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        for ref_type, ref_uuid, attr in adds:
            rtype, val = otype(ref_type), ref_value(attr)
            muts.append(Mutation(UUID_TABLE, uuid, col_ref(rtype, ref_uuid), val))
            links.append(self._other_side(t, uuid, rtype, ref_uuid, val))
            targets[ref_uuid] = f"{rtype.replace('_', '-')} {ref_uuid}"
        for ref_type, ref_uuid in deletes:
            muts += self._unlink(t, uuid, otype(ref_type), ref_uuid)
        if links:  # the object itself must still be there (not being deleted) when refs are added
            targets[uuid] = f"{t.replace('_', '-')} {uuid}"
        await self._claim(links, targets)
        try:
            await self._write(muts)
        except BaseException:
            await self._unclaim(links)
            raise

    async def relax_ref(self, uuid: str, ref_uuid: str) -> None:
        """Mark ``uuid``'s ref to ``ref_uuid`` as relaxed for delete (``relaxbackref:<uuid>`` on ``ref_uuid``)."""
        await self._send([Mutation(UUID_TABLE, ref_uuid, col_relax(uuid), NULL)])

    # --- guarded delete -------------------------------------------------------------------------
    async def mark_deleting(self, uuid: str) -> None:
        """Announce a delete on the object's row before its links are read (see :meth:`create`)."""
        await self._send([Mutation(UUID_TABLE, uuid, DELETING, deleting_mark())])

    async def unmark_deleting(self, uuid: str) -> None:
        """The delete gave up (409 or an error): creates pointing here may go on."""
        try:
            await self._send([Mutation(UUID_TABLE, uuid, DELETING)])
        except Exception as e:  # the mark goes stale by itself
            log.warning("could not remove the delete mark of %s: %s", uuid, e)

    async def visible(self, uuids: Sequence[str]) -> dict[str, tuple[list[str], str]]:
        """``(fq_name, type)`` of those uuids whose object exists now (QUORUM reads, no cache)."""
        found = await self._bounded(lambda u: self._cols(UUID_TABLE, u, ("fq_name", "type")), list(uuids))
        out: dict[str, tuple[list[str], str]] = {}
        for u, cols in zip(uuids, found, strict=True):
            have = {c: v for c, v, _ in cols}
            if "fq_name" in have and "type" in have:
                out[u] = (json.loads(have["fq_name"]), json.loads(have["type"]))
        return out

    async def delete(self, uuid: str, decoded: tuple[Obj, Links] | None = None) -> bool:
        """Remove an object: its row, the parent's child column, its refs' other sides, relaxed
        referrers' refs, its fq-name and shared columns. False if it did not exist. ``decoded``:
        the row as :meth:`read_row` just read it (saves reading it again)."""
        if decoded is None:
            decoded = await self.read_row(uuid)
        if decoded is None:
            return False
        obj, links = decoded
        t, fq = obj["type"], obj["fq_name"]
        muts = [Mutation(UUID_TABLE, uuid, None), Mutation(FQ_TABLE, t, col_fq(fq, uuid))]
        if obj.get("parent_uuid"):
            muts.append(Mutation(UUID_TABLE, obj["parent_uuid"], col_child(t, uuid)))
        for rt, ru, _ in links.refs:
            muts += self._unlink(t, uuid, rt, ru)[1:]
        for src in links.relaxed:
            muts.append(Mutation(UUID_TABLE, src, col_ref(t, uuid)))
        for share_type, share_id, _ in share_entries(obj.get("perms2")):
            muts.append(Mutation(SHARED_TABLE, t, col_shared(share_type, share_id, uuid)))
        await self._write(muts)
        self.forget(uuid)
        return True

    # --- names and lists --------------------------------------------------------------------------
    async def fq_name_to_uuid(self, obj_type: str, fq_name: Sequence[str]) -> str | None:
        """The uuid of an object by type and fq_name: the original's column slice ``fq:`` .. ``fq;``."""
        cols = await self._slice(FQ_TABLE, otype(obj_type), fq_str(list(fq_name)))
        hits = fq_hits(fq_name, (c for c, _, _ in cols))
        if len(hits) > 1:
            raise MultiMatch(f"Multi match {list(fq_name)} for {otype(obj_type)}: {hits}")
        return hits[0] if hits else None

    async def list(self, obj_type: str, *, parent_uuids: Sequence[str] | None = None,
                   back_ref_uuids: Sequence[str] | None = None,
                   obj_uuids: Sequence[str] | None = None) -> list[tuple[list[str], str]]:
        """``(fq_name, uuid)`` of the objects of a type; each given filter narrows (intersection).

        No filter: the type's fq-name row. ``parent_uuids``: the parents' ``children:<type>:``
        columns. ``back_ref_uuids``: objects whose refs point to any of them (the targets'
        ``backref:<type>:`` columns, or ``ref:`` between objects of one type).
        """
        t = otype(obj_type)
        if parent_uuids is None and back_ref_uuids is None and obj_uuids is None:
            rows = await self._row(FQ_TABLE, t)
            return [parse_fq_col(c) for c, _, _ in rows]
        candidates: list[str] | None = None

        def narrow(found: Iterable[str]) -> None:
            nonlocal candidates
            got = list(dict.fromkeys(found))
            if candidates is None:
                candidates = got
            else:
                keep = set(got)
                candidates = [u for u in candidates if u in keep]

        if parent_uuids is not None:
            parts = await asyncio.gather(*(self._slice(UUID_TABLE, p, f"children:{t}") for p in parent_uuids))
            narrow(c.rsplit(":", 1)[1] for part in parts for c, _, _ in sorted(part, key=lambda x: (x[2] or 0, x[0])))
        if back_ref_uuids is not None:
            targets = await self._fq_many(back_ref_uuids)
            parts = await asyncio.gather(*(self._slice(UUID_TABLE, b, ("ref:" if targets[b][1] == t else "backref:")
                                                       + t) for b in back_ref_uuids if b in targets))
            narrow(c.rsplit(":", 1)[1] for part in parts for c, _, _ in part)
        if obj_uuids is not None:
            narrow(obj_uuids)
        fqs = await self._fq_many(candidates or [])
        return [(fqs[u][0], u) for u in candidates or [] if u in fqs and fqs[u][1] == t]

    # --- sharing -----------------------------------------------------------------------------------
    async def shared_add(self, obj_type: str, obj_uuid: str, share_type: str, share_id: str, rwx: int) -> None:
        """Share an object (``share_type`` ``tenant``/``domain``/``global``, ``share_id`` '' for global)."""
        await self._send([Mutation(SHARED_TABLE, otype(obj_type), col_shared(share_type, share_id, obj_uuid),
                                   dumps(int(rwx)))])

    async def shared_remove(self, obj_type: str, obj_uuid: str, share_type: str, share_id: str) -> None:
        await self._send([Mutation(SHARED_TABLE, otype(obj_type), col_shared(share_type, share_id, obj_uuid))])

    async def shared_list(self, obj_type: str, share_type: str, share_id: str) -> list[tuple[str, int]]:
        """``(uuid, rwx)`` of the objects of a type shared with ``share_type:share_id``."""
        cols = await self._slice(SHARED_TABLE, otype(obj_type), f"{share_type}:{share_id}")
        out = []
        for c, v, _ in cols:
            rest = c[len(share_type) + len(share_id) + 2:]
            if rest and ":" not in rest:
                out.append((rest, _share_rwx(v)))
        return out

    # --- useragent key/value -------------------------------------------------------------------------
    async def kv_store(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else dumps(value)
        await self._send([Mutation(KV_TABLE, str(key), "value", text)])

    async def kv_retrieve(self, key: str) -> str | None:
        cols = await self._cols(KV_TABLE, str(key), ("value",))
        return cols[0][1] if cols else None

    async def kv_delete(self, key: str) -> bool:
        """Remove a key; False if it was not there."""
        if await self.kv_retrieve(key) is None:
            return False
        await self._send([Mutation(KV_TABLE, str(key), None)])
        return True

    async def kv_all(self) -> list[dict[str, str]]:
        rows = await self._run(self._st[KV_TABLE].all)
        return [{"key": k.decode(), "value": v} for k, c, v in rows if c == b"value"]
