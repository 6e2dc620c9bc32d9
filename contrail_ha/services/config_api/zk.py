"""Coordination of the contrail-api replicas through ZooKeeper, as the original (§1b).

All paths live under ``/<cluster_id>``:

* ``/fq-name-to-uuid/<obj_type>:<fq:name>`` (value uuid) - the create lock of an fq_name,
  persistent, with the original's stale-lock rule.
* ``/id/virtual-networks/%010d`` (VNID = index + 1) and ``/id/security-groups/id/%010d``
  (SG id = index + 8000000, index 0 reserved as ``__reserved__``) - :class:`IndexAllocator`.
* ``/api-server/subnets/<vn-fq-name>:<prefix>/<len>/%010d`` - one znode per allocated
  address, the index being the address's offset in the subnet (value: its owner).

kazoo is threaded: the :class:`Coordinator`'s ``async`` methods run its blocking calls with
``asyncio.to_thread``; :class:`IndexAllocator` methods are blocking and thread-safe (call them
with ``asyncio.to_thread`` from the event loop). A ``/`` or ``%`` inside an fq_name, and every
character that is not printable ASCII, is percent-escaped in znode names (*the original would
nest nodes on a ``/`` and fail on characters ZooKeeper refuses).
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.retry import KazooRetry

from contrail_ha.services.config_api.objects import Conflict, Unavailable, mark_write

log = logging.getLogger(__name__)

FQ_LOCK_PATH = "/fq-name-to-uuid"
SUBNET_PATH = "/api-server/subnets"
VN_ID_PATH = "/id/virtual-networks/"
VN_MAX_ID = 1 << 24
VNID_MIN_ALLOC = 1
SG_ID_PATH = "/id/security-groups/id/"
SG_MAX_ID = 1 << 32
SGID_MIN_ALLOC = 8_000_000
SG_RESERVED = "__reserved__"
STALE_LOCK_SECONDS = 5.0
NO_ZK = "No connection to zookeeper"

# Failures after which the request may or may not have been applied, or could not be sent.
_LINK_ERRORS = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, OperationTimeoutError)


class Exhausted(Conflict):
    """No free index left (HTTP 409, as the original's subnet exhaustion)."""


# Kept as they are in znode names: printable ASCII except '%' (the escape) and '/' (the separator).
# ZooKeeper refuses U+0000-U+001F, U+007F-U+009F, U+D800-U+F8FF and U+FFF0-U+FFFF (and Java sees
# characters beyond U+FFFF as surrogates), so everything else is percent-encoded as UTF-8.
_ZK_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"%", "/"}


def escape(name: str) -> str:
    """A string usable inside one znode name, injectively: every character that is not plain
    printable ASCII, and ``%`` and ``/``, becomes ``%XX`` per UTF-8 byte (``%`` -> ``%25``,
    ``/`` -> ``%2F``, tab -> ``%09``, ``é`` -> ``%C3%A9``). Names of plain ASCII keep the
    original's lock path. Lone surrogates (refused by validation) are encoded as surrogatepass."""
    if all(ch in _ZK_PLAIN for ch in name):
        return name
    out: list[str] = []
    for ch in name:
        if ch in _ZK_PLAIN:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def fq_lock_path(obj_type: str, fq_name: Sequence[str]) -> str:
    """``/fq-name-to-uuid/<obj_type>:<fq:name>`` (without the cluster prefix)."""
    return f"{FQ_LOCK_PATH}/{obj_type.replace('-', '_')}:{escape(':'.join(fq_name))}"


def subnet_path(vn_fq: Sequence[str] | str, subnet_cidr: str) -> str:
    """``/api-server/subnets/<vn-fq-name>:<prefix>/<len>/`` (without the cluster prefix)."""
    fq = vn_fq if isinstance(vn_fq, str) else ":".join(vn_fq)
    net = ipaddress.ip_network(subnet_cidr, strict=False)
    return f"{SUBNET_PATH}/{escape(fq)}:{net.network_address}/{net.prefixlen}/"


# The session timeout also sets how fast kazoo notices a server that went silent (a partition):
# it pings every third of it and drops the connection after two thirds, then moves to another server
# while the session lives on. 4 s: a silent server is left in ~2.7 s; a leader election (~1 s) is survived.
SESSION_TIMEOUT_S = 4.0
# A session that is SUSPENDED (its server stopped serving: a leader election, a dead server) is
# usually back within a second or two on another server. Writes wait this long for it, and the
# replica's health stays good meanwhile, before writes are refused with 503.
RECONNECT_GRACE_S = 3.0


class Coordinator:
    """One replica's ZooKeeper session: state, fq-name locks, allocators.

    ``stale_check`` answers whether a uuid exists in the config DB: an object with an
    ``exists(uuid)`` method (e.g. the ConfigStore) or a callable, sync or async. Without it a
    held lock is never considered stale.
    """

    def __init__(self, hosts: str, cluster_id: str, *, timeout: float = SESSION_TIMEOUT_S,
                 stale_lock_seconds: float = STALE_LOCK_SECONDS, stale_check: Any = None,
                 op_timeout: float = 10.0, lost_restart_after: float = 10.0) -> None:
        self.hosts = hosts
        cid = cluster_id.strip("/")
        self.prefix = f"/{cid}" if cid else ""
        self.stale_lock_seconds = stale_lock_seconds
        self.stale_check = stale_check
        self.op_timeout = op_timeout
        self.lost_restart_after = lost_restart_after
        self.client = KazooClient(hosts=hosts, timeout=timeout,
                                  connection_retry=KazooRetry(max_tries=-1, max_delay=1.0))
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
        self._subnets: dict[tuple[str, str], IndexAllocator] = {}
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
                await asyncio.to_thread(self.call, self.client.ensure_path, self.prefix)
            return True
        log.warning("no zookeeper session after %.0fs (%s): still trying", timeout, self.hosts)
        return False

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

    # --- fq-name create lock ------------------------------------------------------------------------
    async def create_fq_lock(self, obj_type: str, fq_name: Sequence[str], uuid: str) -> bool:
        """Take the create lock of ``fq_name`` for ``uuid``. False when another uuid holds it (409),
        unless that lock is stale: its uuid is absent from the config DB and the znode is older
        than ``stale_lock_seconds`` - then it is replaced (atomically) and this call wins."""
        path = self.path(fq_lock_path(obj_type, fq_name))
        for _ in range(5):
            holder = await asyncio.to_thread(self._take, path, uuid)
            if holder is None:
                return True
            held_by, stat = holder
            age = time.time() - stat.ctime / 1000.0
            if age <= self.stale_lock_seconds or await self._exists(held_by):
                return False
            if await asyncio.to_thread(self.replace, path, stat.version, uuid.encode()):
                log.warning("replaced stale fq-name lock %s (uuid %s, %.1fs old, not in the config DB) for %s",
                            path, held_by, age, uuid)
                return True
        return False

    def _take(self, path: str, uuid: str) -> tuple[str, ZnodeStat] | None:
        """None when we hold the lock, else (holder, stat)."""
        for _ in range(10):
            if self.create_unique(path, uuid.encode()):
                return None
            found = self.get(path)
            if found is None:
                continue  # deleted meanwhile
            holder = found[0].decode()
            if holder == uuid:
                return None
            return holder, found[1]
        raise Unavailable(f"fq-name lock {path} keeps changing")

    async def _exists(self, uuid: str) -> bool:
        check = self.stale_check
        if check is None:
            return True
        r = check.exists(uuid) if hasattr(check, "exists") else check(uuid)
        if inspect.isawaitable(r):
            r = await r
        return bool(r)

    async def delete_fq_lock(self, obj_type: str, fq_name: Sequence[str], uuid: str | None = None) -> bool:
        """Release the lock (only if ``uuid`` holds it, when given). False if it was not there."""
        path = self.path(fq_lock_path(obj_type, fq_name))
        if uuid is None:
            return await asyncio.to_thread(self.delete, path)

        def release() -> bool:
            found = self.get(path)
            if found is None or found[0].decode() != uuid:
                return False
            return self.delete(path, version=found[1].version)

        return await asyncio.to_thread(release)

    async def read_fq_lock(self, obj_type: str, fq_name: Sequence[str]) -> str | None:
        found = await asyncio.to_thread(self.get, self.path(fq_lock_path(obj_type, fq_name)))
        return None if found is None else found[0].decode()

    # --- subnet address allocation ---------------------------------------------------------------------
    def subnet_allocator(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> IndexAllocator:
        """The allocator of one subnet of a VN (index = offset of the address in the subnet)."""
        fq = vn_fq if isinstance(vn_fq, str) else ":".join(vn_fq)
        net = ipaddress.ip_network(subnet_cidr, strict=False)
        key = (fq, str(net))
        alloc = self._subnets.get(key)
        if alloc is None:
            alloc = IndexAllocator(self, subnet_path(fq, str(net)), net.num_addresses)
            alloc.exhausted_message = f"Virtual-Network({fq.split(':')}) has exhausted subnet({net})"
            self._subnets[key] = alloc
        return alloc

    async def alloc_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, owner: str,
                       exclude: Iterable[int] = (), start: int | None = None, end: int | None = None,
                       *, reverse: bool = False) -> int:
        """Allocate a free offset in ``[start, end]`` (inclusive; default the whole subnet) not in
        ``exclude``, lowest first (highest with ``reverse``). Raises :class:`Exhausted` (409)."""
        alloc = self.subnet_allocator(vn_fq, subnet_cidr)
        return await asyncio.to_thread(alloc.alloc, owner, lo=start, hi=end, exclude=frozenset(exclude),
                                       reverse=reverse)

    async def reserve_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int, owner: str) -> bool:
        """Take one given offset; False if another owner holds it (idempotent for the same owner)."""
        return await asyncio.to_thread(self.subnet_allocator(vn_fq, subnet_cidr).reserve, offset, owner)

    async def free_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int,
                      owner: str | None = None) -> bool:
        """Release an offset (only if ``owner`` holds it, when given)."""
        return await asyncio.to_thread(self.subnet_allocator(vn_fq, subnet_cidr).free, offset, owner)

    async def read_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int) -> str | None:
        return await asyncio.to_thread(self.subnet_allocator(vn_fq, subnet_cidr).read, offset)

    async def allocated_count(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> int:
        """How many addresses of the subnet are allocated, by any replica (counted in ZooKeeper)."""
        return await asyncio.to_thread(self.subnet_allocator(vn_fq, subnet_cidr).zk_count)

    async def delete_subnet(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> None:
        """Forget a subnet and every allocation in it (its ``<vn>:<prefix>`` node, recursively)."""
        fq = vn_fq if isinstance(vn_fq, str) else ":".join(vn_fq)
        net = ipaddress.ip_network(subnet_cidr, strict=False)
        self._subnets.pop((fq, str(net)), None)
        top = self.path(subnet_path(fq, str(net))).rstrip("/").rsplit("/", 1)[0]
        await asyncio.to_thread(self.delete, top, -1, True)


class IndexAllocator:
    """Indexes ``start .. start+size-1``, each allocation a znode ``path + "%010d" % index`` holding
    a value; every replica allocates from the same path.

    The in-memory bitmap (a Python int, bit ``i`` = index ``start + i``) is rebuilt from the
    children at first use, after each session re-establishment and on :meth:`refresh`. It may
    lag other replicas: a create that hits NodeExistsError marks the index used and tries the next
    free one; an allocation that finds nothing free refreshes once before giving up. ``reserved``
    maps indexes to the values they must hold (rewritten at load if they hold something else).
    Blocking and thread-safe.
    """

    exhausted_message = ""

    def __init__(self, zk: Coordinator, path: str, size: int, start: int = 0,
                 reserved: Mapping[int, str] | Iterable[tuple[int, str]] = ()) -> None:
        self.zk = zk
        self.path = zk.path(path)
        self.dir, _, self.name_prefix = self.path.rpartition("/")
        self.size, self.start = size, start
        self.reserved = dict(reserved.items() if isinstance(reserved, Mapping) else reserved)
        self._bits = 0
        self._pending: set[int] = set()
        self._loaded_epoch: int | None = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def node(self, index: int) -> str:
        return f"{self.path}{index:010d}"

    @property
    def last(self) -> int:
        return self.start + self.size - 1

    # --- bitmap -----------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._loaded_epoch != self.zk.epoch:
            self.refresh()

    def refresh(self) -> None:
        """Rebuild the bitmap from ZooKeeper (after another replica's notification, or when stale)."""
        with self._load_lock:
            epoch = self.zk.epoch
            for index, value in self.reserved.items():
                self._hold(index, value)
            bits = 0
            n = len(self.name_prefix)
            for name in self.zk.children(self.dir):
                if name.startswith(self.name_prefix) and name[n:].isdigit():
                    i = int(name[n:]) - self.start
                    if 0 <= i < self.size:
                        bits |= 1 << i
            for index in self.reserved:
                bits |= 1 << (index - self.start)
            with self._lock:
                for i in self._pending:
                    bits |= 1 << i
                self._bits = bits
            self._loaded_epoch = epoch

    def _hold(self, index: int, value: str) -> None:
        """Make a reserved index hold ``value`` (replacing anything else there)."""
        found = self.zk.get(self.node(index))
        if found is not None and found[0].decode() != value:
            self.zk.delete(self.node(index), version=found[1].version)
        if found is None or found[0].decode() != value:
            self.zk.create_unique(self.node(index), value.encode())

    def _find(self, lo: int, hi: int, exclude: frozenset[int], reverse: bool) -> int | None:
        """A free bit in ``[lo, hi]`` (bit numbers) - lowest, or highest with ``reverse``."""
        used = self._bits
        for i in exclude:
            if lo <= i - self.start <= hi:
                used |= 1 << (i - self.start)
        if reverse:
            if hi >= used.bit_length():
                return hi
            free = ~used & (((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1))
            return free.bit_length() - 1 if free else None
        window = used >> lo
        i = ((~window) & (window + 1)).bit_length() - 1 + lo
        return i if i <= hi else None

    def set_in_use(self, index: int) -> None:
        """Mark an index used in memory only (another replica's allocation, from its notification)."""
        with self._lock:
            self._bits |= 1 << (index - self.start)

    def reset_in_use(self, index: int) -> None:
        """Mark an index free in memory only (another replica's free)."""
        with self._lock:
            self._bits &= ~(1 << (index - self.start))

    def in_use(self, index: int) -> bool:
        self._ensure()
        return bool(self._bits >> (index - self.start) & 1)

    def count(self) -> int:
        """Allocated indexes as this replica's bitmap knows them."""
        self._ensure()
        return self._bits.bit_count()

    def zk_count(self) -> int:
        """Allocated indexes as ZooKeeper holds them (every replica's)."""
        n = len(self.name_prefix)
        return sum(1 for c in self.zk.children(self.dir) if c.startswith(self.name_prefix) and c[n:].isdigit())

    # --- operations ---------------------------------------------------------------------------------
    def alloc(self, value: str, *, lo: int | None = None, hi: int | None = None,
              exclude: frozenset[int] = frozenset(), reverse: bool = False) -> int:
        """The lowest (``reverse``: highest) free index in ``[lo, hi]`` not in ``exclude``, now holding ``value``."""
        self._ensure()
        lo_b = max(lo if lo is not None else self.start, self.start) - self.start
        hi_b = min(hi if hi is not None else self.last, self.last) - self.start
        refreshed = False
        while True:
            with self._lock:
                bit = self._find(lo_b, hi_b, exclude, reverse)
                if bit is not None:
                    self._bits |= 1 << bit
                    self._pending.add(bit)
            if bit is None:
                if refreshed:
                    raise Exhausted(self.exhausted_message or f"{self.path}: no free index in "
                                                              f"[{lo_b + self.start}, {hi_b + self.start}]")
                self.refresh()  # other replicas may have freed some
                refreshed = True
                continue
            try:
                if self.zk.create_unique(self.node(bit + self.start), value.encode()):
                    return bit + self.start
                # NodeExists: another replica got it first; its bit stays set, try the next one
            except BaseException:
                with self._lock:
                    self._bits &= ~(1 << bit)
                raise
            finally:
                with self._lock:
                    self._pending.discard(bit)

    def reserve(self, index: int, value: str) -> bool:
        """Take a given index. True if it now holds ``value`` (also when it already did), False
        when it holds another value."""
        if not self.start <= index <= self.last:
            raise ValueError(f"index {index} outside {self.start}..{self.last}")
        self._ensure()
        created = self.zk.create_unique(self.node(index), value.encode())
        self.set_in_use(index)
        if created:
            return True
        found = self.zk.get(self.node(index))
        if found is None:  # freed meanwhile: try once more
            return self.reserve(index, value)
        return found[0].decode() == value

    def read(self, index: int) -> str | None:
        """The value an index holds, or None if it is free."""
        found = self.zk.get(self.node(index))
        return None if found is None else found[0].decode()

    def free(self, index: int, value: str | None = None) -> bool:
        """Release an index (only if it holds ``value``, when given). False if not released."""
        if index in self.reserved:
            return False
        if value is None:
            done = self.zk.delete(self.node(index))
        else:
            found = self.zk.get(self.node(index))
            if found is None or found[0].decode() != value:
                return False
            done = self.zk.delete(self.node(index), version=found[1].version)
        self.reset_in_use(index)
        return done


class IdAllocator(IndexAllocator):
    """An IndexAllocator whose public ids are ``index + offset`` (VNID = index + 1, SG id = index + 8000000)."""

    def __init__(self, zk: Coordinator, path: str, size: int, offset: int, start: int = 0,
                 reserved: Mapping[int, str] | Iterable[tuple[int, str]] = ()) -> None:
        super().__init__(zk, path, size, start, reserved)
        self.offset = offset

    def alloc_id(self, value: str) -> int:
        return self.alloc(value) + self.offset

    def reserve_id(self, id_: int, value: str) -> bool:
        return self.reserve(id_ - self.offset, value)

    def free_id(self, id_: int, value: str | None = None) -> bool:
        """Release an id (kept when ``value`` is given and another value holds it, as the original)."""
        index = id_ - self.offset
        if not self.start <= index <= self.last:
            return False
        return self.free(index, value)

    def read_id(self, id_: int) -> str | None:
        index = id_ - self.offset
        return self.read(index) if self.start <= index <= self.last else None


def virtual_network_allocator(zk: Coordinator) -> IdAllocator:
    """``/id/virtual-networks/``: 2^24 indexes; ``alloc_id`` gives the VNID (index + 1)."""
    return IdAllocator(zk, VN_ID_PATH, VN_MAX_ID, offset=VNID_MIN_ALLOC)


def security_group_allocator(zk: Coordinator) -> IdAllocator:
    """``/id/security-groups/id/``: 2^32 indexes, 0 reserved; ``alloc_id`` gives index + 8000000."""
    return IdAllocator(zk, SG_ID_PATH, SG_MAX_ID, offset=SGID_MIN_ALLOC, reserved={0: SG_RESERVED})
