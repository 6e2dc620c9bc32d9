"""The asyncio bridge to cassandra-driver shared by our stores: no thread per query.

``execute_async`` callbacks run on the driver's event thread; they resolve an asyncio future
through ``loop.call_soon_threadsafe``. Every page of a result is fetched before it resolves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, ResponseFuture, Session
from cassandra.policies import ConstantReconnectionPolicy, RoundRobinPolicy

T = TypeVar("T")

# A node that stops answering without closing its connections (a partition, a frozen JVM) is probed
# on idle connections every few seconds and marked down when a probe is not answered. Not faster:
# on two loaded cores a shorter timeout marks healthy nodes down. (No speculative execution: the
# driver delivers a late speculative response as the next page of a paged result, or twice.)
HEARTBEAT_INTERVAL_S = 5
HEARTBEAT_TIMEOUT_S = 5


class WarmedUpFirst(RoundRobinPolicy):
    """Round robin over the nodes, but a node that came (back) up less than ``warmup_s`` ago, or
    that let a request time out less than ``suspect_s`` ago, is tried last: a restarted node answers
    its port long before it keeps up (JIT, commit-log and hint replay on shared cores), and a node
    cut off by a partition keeps its connections open while dropping every request (the idle
    heartbeat never fires on busy connections) - as the coordinator either times requests out."""

    def __init__(self, warmup_s: float = 90.0, suspect_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.warmup_s, self.suspect_s, self.clock = warmup_s, suspect_s, clock
        self._up_at: dict[Any, float] = {}
        self._timed_out_at: dict[Any, float] = {}

    def timed_out(self, host: Any) -> None:
        """A request coordinated by ``host`` got no answer in time."""
        if host is not None:
            self._timed_out_at[host] = self.clock()

    def on_up(self, host: Any) -> None:
        self._up_at[host] = self.clock()
        super().on_up(host)

    def on_add(self, host: Any) -> None:
        self._up_at[host] = self.clock()
        super().on_add(host)

    def deferred(self, host: Any, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        up, late = self._up_at.get(host), self._timed_out_at.get(host)
        return (up is not None and now - up < self.warmup_s) or (late is not None and now - late < self.suspect_s)

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Any:
        now = self.clock()
        first: list[Any] = []
        last: list[Any] = []
        for h in super().make_query_plan(working_keyspace, query):
            (last if self.deferred(h, now) else first).append(h)
        return iter(first + last)


Credentials = tuple[str, str]  # (role, password) of a PasswordAuthenticator login


def auth_provider(auth: Credentials | None) -> PlainTextAuthProvider | None:
    """The driver's login for ``auth``; None: connect without one (a node with AllowAllAuthenticator)."""
    return PlainTextAuthProvider(username=auth[0], password=auth[1]) if auth else None


def cluster(ips: Sequence[str], port: int, *, consistency: int = ConsistencyLevel.QUORUM,
            request_timeout: float = 5.0, connect_timeout: float = 5.0, row_factory: Any = None,
            auth: Credentials | None = None) -> Cluster:
    """A driver cluster over every node of a ring (never a VIP), with the fail-over settings above,
    logged in as ``auth`` (the client's own role).

    Statements marked ``is_idempotent`` are retried on the next node after a client-side error;
    nodes are tried in round robin, a node still warming up after a restart last.
    """
    kw: dict[str, Any] = {"row_factory": row_factory} if row_factory is not None else {}
    profile = ExecutionProfile(load_balancing_policy=WarmedUpFirst(), consistency_level=consistency,
                               request_timeout=request_timeout, **kw)
    return Cluster(list(ips), port=port, protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                   connect_timeout=connect_timeout, control_connection_timeout=connect_timeout,
                   reconnection_policy=ConstantReconnectionPolicy(1.0), idle_heartbeat_interval=HEARTBEAT_INTERVAL_S,
                   idle_heartbeat_timeout=HEARTBEAT_TIMEOUT_S, schema_metadata_enabled=False,
                   token_metadata_enabled=False, auth_provider=auth_provider(auth))


def idempotent(stmt: T) -> T:
    """Mark a (prepared or batch) statement safe to send twice (retried on another node on a client error)."""
    stmt.is_idempotent = True  # type: ignore[attr-defined]
    return stmt


async def execute(session: Session, stmt: Any, params: Sequence[Any] | None = None) -> list[Any]:
    """Run one statement; all its rows. Driver exceptions propagate unchanged."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[Any]] = loop.create_future()
    rows: list[Any] = []

    def settle(result: Any, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def post(result: Any, exc: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    rf: ResponseFuture = session.execute_async(stmt, params)
    finished = False

    def on_page(page: Any) -> None:
        nonlocal finished
        if finished:  # never deliver a result twice
            return
        if page:
            rows.extend(page)
        try:
            if rf.has_more_pages:
                rf.start_fetching_next_page()
                return
        except Exception as e:
            finished = True
            post(None, e)
            return
        finished = True
        post(list(rows), None)

    def on_error(e: BaseException) -> None:
        nonlocal finished
        if isinstance(e, OperationTimedOut):
            policy = session.cluster.profile_manager.default.load_balancing_policy
            if isinstance(policy, WarmedUpFirst):
                policy.timed_out(e.last_host)
        if not finished:
            finished = True
            post(None, e)

    rf.add_callbacks(on_page, on_error)
    return await fut


def when_visible(prepare: Callable[[], T], timeout: float = 10.0) -> T:
    """Run ``prepare`` (statement preparation) until the tables it names are visible to the node it asks.

    Right after several replicas created a table concurrently, a node can list it in
    ``system_schema`` a moment before it accepts statements on it ("table ... does not exist").
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return prepare()
        except InvalidRequest as e:
            if "does not exist" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
