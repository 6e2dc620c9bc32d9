"""One replica's ZooKeeper session, and the blocking primitives the recipes build on.

kazoo is threaded: the session's ``async`` methods run its blocking calls with
``asyncio.to_thread``; the primitives (:meth:`Session.call`, :meth:`Session.create_unique`,
``get``/``delete``/``children``/``replace``) are blocking and thread-safe, and wait out a
connection loss up to ``op_timeout``, then raise :class:`objects.Unavailable` (HTTP 503).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.retry import KazooRetry
from kazoo.security import READ_ACL_UNSAFE, make_acl, make_digest_acl

from contrail_ha.services.config_api.objects import Unavailable, mark_write

log = logging.getLogger(__package__)  # the package's logger, as before the split into modules

NO_ZK = "No connection to zookeeper"

# Failures after which the request may or may not have been applied, or could not be sent.
_LINK_ERRORS = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, OperationTimeoutError)

# The session timeout also sets how fast kazoo notices a server that went silent (a partition):
# it pings every third of it and drops the connection after two thirds, then moves to another server
# while the session lives on. 4 s: a silent server is left in ~2.7 s; a leader election (~1 s) is survived.
SESSION_TIMEOUT_S = 4.0
# A session that is SUSPENDED (its server stopped serving: a leader election, a dead server) is
# usually back within a second or two on another server. Writes wait this long for it, and the
# replica's health stays good meanwhile, before writes are refused with 503.
RECONNECT_GRACE_S = 3.0


class Session:
    """One replica's ZooKeeper session: its state, its listeners, and the blocking primitives
    (retried over a connection loss) the recipes of this package build on."""

    def __init__(self, hosts: str, cluster_id: str, *, auth: tuple[str, str] | None = None,
                 root_creators: Sequence[str] = (), timeout: float = SESSION_TIMEOUT_S, op_timeout: float = 10.0,
                 lost_restart_after: float = 10.0) -> None:
        self.hosts = hosts
        cid = cluster_id.strip("/")
        self.prefix = f"/{cid}" if cid else ""
        self.op_timeout = op_timeout
        self.lost_restart_after = lost_restart_after
        # ``auth`` (user, password): the session authenticates with ZooKeeper's digest scheme and
        # every znode it creates is readable and writable by that identity only
        self.acl = [make_digest_acl(auth[0], auth[1], all=True)] if auth else None
        # with ``auth``, ZooKeeper's root is locked too: readable by anyone, writable by this identity,
        # and the SASL identities in ``root_creators`` (Kafka's brokers: their chroot) may create there
        self.root_acl = [*self.acl, *(make_acl("sasl", n, create=True) for n in root_creators),
                         *READ_ACL_UNSAFE] if self.acl else None
        self.client = KazooClient(hosts=hosts, timeout=timeout,
                                  connection_retry=KazooRetry(max_tries=-1, max_delay=1.0),
                                  auth_data=[("digest", f"{auth[0]}:{auth[1]}")] if auth else None,
                                  default_acl=self.acl)
        self.state: str = "CONNECTING"
        self.epoch = 0  # bumped on every (re)connection after the first: allocators reload lazily
        self._live = threading.Event()
        self._up: asyncio.Event | None = None  # the same, on the event loop (set in ``start``)
        self.down_since: float | None = time.monotonic()  # monotonic time the session stopped being CONNECTED
        self._ever_connected = False
        self._listeners: list[Callable[[str], Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self.client.add_listener(self._on_state)

    # --- session ---------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """The session is CONNECTED (writes are refused with 503 otherwise)."""
        return self._live.is_set() and self.client.connected

    def add_listener(self, cb: Callable[[str], Any]) -> None:
        """``cb(state)`` on every session change (``CONNECTED``, ``SUSPENDED``, ``LOST``), called on the
        event loop the coordinator was started on."""
        self._listeners.append(cb)

    def remove_listener(self, cb: Callable[[str], Any]) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    def path(self, p: str) -> str:
        """An absolute path under the cluster prefix (a trailing ``/`` is kept)."""
        return f"{self.prefix}/{p.lstrip('/')}"

    def _on_state(self, state: str) -> None:
        """kazoo's listener (its connection thread: must not block)."""
        self.state = str(state)
        if state == KazooState.CONNECTED:
            if self._ever_connected:
                self.epoch += 1
            self._ever_connected = True
            self._live.set()
            self.down_since = None
        else:
            self._live.clear()
            if self.down_since is None:
                self.down_since = time.monotonic()
        log.info("zookeeper session %s", str(state).lower())
        loop = self._loop
        if loop is None:
            for cb in list(self._listeners):
                self._safe(cb, self.state)
            return
        try:
            loop.call_soon_threadsafe(self._notify, self.state)
        except RuntimeError:  # loop closed
            pass

    def _notify(self, state: str) -> None:
        if self._up is not None:
            if state == KazooState.CONNECTED:
                self._up.set()
            else:
                self._up.clear()
        for cb in list(self._listeners):
            self._safe(cb, state)
        if state == KazooState.LOST and not self._closing and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._reconnect())

    def _safe(self, cb: Callable[[str], Any], state: str) -> None:
        try:
            r = cb(state)
            if inspect.isawaitable(r):
                task = asyncio.ensure_future(r)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            log.exception("zookeeper state listener failed")

    async def _reconnect(self) -> None:
        """Session LOST: kazoo normally opens a new session by itself; if it has not after
        ``lost_restart_after`` seconds, restart the client (never exit, as the API server's lost-callback)."""
        try:
            while not self._closing and not self.connected:
                await asyncio.sleep(self.lost_restart_after)
                if self._closing or self.connected:
                    break
                log.warning("zookeeper session lost for %.0fs: restarting the client", self.lost_restart_after)
                try:
                    await asyncio.to_thread(self._restart)
                except Exception as e:
                    log.warning("zookeeper restart failed: %s", e)
        finally:
            self._watchdog = None

    def _restart(self) -> None:
        self.client.stop()
        self.client.start_async()

    async def start(self, timeout: float = 15.0) -> bool:
        """Open the session (retried forever in the background). Waits up to ``timeout`` s for it;
        returns whether it is connected (writes are refused until it is)."""
        self._loop = asyncio.get_running_loop()
        self._up = asyncio.Event()
        event = self.client.start_async()
        if await asyncio.to_thread(event.wait, timeout):
            if self.prefix:
                await asyncio.to_thread(self.call, self._own_prefix)
            return True
        log.warning("no zookeeper session after %.0fs (%s): still trying", timeout, self.hosts)
        return False

    def _own_prefix(self) -> None:
        """The cluster's root znode, made if missing, with this session's ACL even if someone else
        made it first while ZooKeeper's root was open; then the root locked (:meth:`_lock_root`)."""
        self.client.ensure_path(self.prefix)
        if self.acl is not None and self.client.get_acls(self.prefix)[0] != self.acl:
            self.client.set_acls(self.prefix, self.acl)
        self._lock_root()

    def _lock_root(self) -> None:
        """An open root lets anyone create top-level znodes: fill the ensemble, or squat the path of a
        cluster before its first start. The first replica to start closes it; a root whose ACL is
        someone else's (a shared ensemble's operator) is left as it is."""
        if self.root_acl is None:
            return
        have = self.client.get_acls("/")[0]
        if sorted(map(str, have)) == sorted(map(str, self.root_acl)):
            return
        try:
            self.client.set_acls("/", self.root_acl)
            log.info("zookeeper's root locked: %s", ", ".join(f"{a.id.scheme}:{a.id.id.split(':')[0]}"
                                                             for a in self.root_acl))
        except NoAuthError:
            log.warning("zookeeper's root is not ours to lock (its ACL: %s): left as it is", have)

    async def wait_connected(self, timeout: float) -> bool:
        if self.connected:
            return True
        if self._up is None:  # not started on a loop: wait in a thread
            return await asyncio.to_thread(self._live.wait, timeout)
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            pass
        return self.connected

    def within_grace(self) -> bool:
        """Not connected, but only for less than ``RECONNECT_GRACE_S`` (after having been connected)."""
        return self._ever_connected and self.down_since is not None and \
            time.monotonic() - self.down_since < RECONNECT_GRACE_S

    async def wait_writable(self) -> bool:
        """Connected, or back within what is left of the reconnect grace."""
        if self.connected:
            return True
        if not self.within_grace() or self.down_since is None:
            return False
        return await self.wait_connected(RECONNECT_GRACE_S - (time.monotonic() - self.down_since))

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        await asyncio.to_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        try:
            self.client.stop()
            self.client.close()
        except Exception as e:
            log.debug("zookeeper close: %s", e)

    # --- blocking primitives ----------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run a kazoo call, waiting out a connection loss up to ``op_timeout``; then Unavailable.

        Only for idempotent calls (reads, deletes): a create is :meth:`create_unique`.
        """
        deadline = time.monotonic() + self.op_timeout
        while True:
            try:
                return fn(*args, **kw)
            except _LINK_ERRORS as e:
                self._wait_link(deadline, e)

    def _wait_link(self, deadline: float, e: BaseException) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or self._closing:
            raise Unavailable(NO_ZK) from e
        self._live.wait(min(left, 1.0))
        if not self._live.is_set() and time.monotonic() >= deadline:
            raise Unavailable(NO_ZK) from e
        time.sleep(0.01)

    def create_unique(self, path: str, value: bytes) -> bool:
        """Create a persistent znode (parents as needed). False if it exists and is not ours: after a
        connection loss during our own create, a node holding exactly ``value`` counts as ours."""
        mark_write()
        deadline = time.monotonic() + self.op_timeout
        uncertain = False
        while True:
            try:
                self.client.create(path, value, makepath=True)
                return True
            except NodeExistsError:
                if not uncertain:
                    return False
                try:
                    data, _ = self.call(self.client.get, path)
                except NoNodeError:
                    continue
                return bool(data == value)
            except _LINK_ERRORS as e:
                uncertain = True
                self._wait_link(deadline, e)

    def get(self, path: str) -> tuple[bytes, ZnodeStat] | None:
        try:
            return self.call(self.client.get, path)
        except NoNodeError:
            return None

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        """Delete a znode (only at ``version`` unless -1). False if it was not there or changed."""
        mark_write()
        try:
            self.call(self.client.delete, path, version=version, recursive=recursive)
            return True
        except NoNodeError:
            return False
        except KazooException as e:  # BadVersion: someone else changed it
            if isinstance(e, NotEmptyError):
                raise
            return False

    def children(self, path: str) -> list[str]:
        try:
            return self.call(self.client.get_children, path)
        except NoNodeError:
            return []

    def replace(self, path: str, version: int, value: bytes) -> bool:
        """Atomically delete the znode at ``version`` and create it again with ``value``."""
        mark_write()
        deadline = time.monotonic() + self.op_timeout
        while True:
            tx = self.client.transaction()
            tx.delete(path, version=version)
            tx.create(path, value)
            try:
                results = tx.commit()
                return all(not isinstance(r, Exception) for r in results)
            except _LINK_ERRORS as e:
                self._wait_link(deadline, e)
                now = self.get(path)  # the commit may have gone through
                if now is not None and now[0] == value:
                    return True
                if now is None or now[1].version != version:
                    return False
