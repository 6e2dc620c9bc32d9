"""Index allocators over ZooKeeper: one znode per allocated index, shared by every replica.

* ``/id/virtual-networks/%010d`` (VNID = index + 1) and ``/id/security-groups/id/%010d``
  (SG id = index + 8000000, index 0 reserved as ``__reserved__``) - :class:`IdAllocator`.
* ``/api-server/subnets/<vn-fq-name>:<prefix>/<len>/%010d`` - one znode per allocated
  address, the index being the address's offset in the subnet (:mod:`.subnets`).

:class:`IndexAllocator` methods are blocking and thread-safe (call them with
``asyncio.to_thread`` from the event loop).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from contrail_ha.services.config_api.objects import Conflict
from contrail_ha.services.config_api.zk.paths import (
    SG_ID_PATH,
    SG_MAX_ID,
    SG_RESERVED,
    SGID_MIN_ALLOC,
    VN_ID_PATH,
    VN_MAX_ID,
    VNID_MIN_ALLOC,
)
from contrail_ha.services.config_api.zk.session import Session


class Exhausted(Conflict):
    """No free index left (HTTP 409, as the original's subnet exhaustion)."""


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

    def __init__(self, zk: Session, path: str, size: int, start: int = 0,
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

    def __init__(self, zk: Session, path: str, size: int, offset: int, start: int = 0,
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


def virtual_network_allocator(zk: Session) -> IdAllocator:
    """``/id/virtual-networks/``: 2^24 indexes; ``alloc_id`` gives the VNID (index + 1)."""
    return IdAllocator(zk, VN_ID_PATH, VN_MAX_ID, offset=VNID_MIN_ALLOC)


def security_group_allocator(zk: Session) -> IdAllocator:
    """``/id/security-groups/id/``: 2^32 indexes, 0 reserved; ``alloc_id`` gives index + 8000000."""
    return IdAllocator(zk, SG_ID_PATH, SG_MAX_ID, offset=SGID_MIN_ALLOC, reserved={0: SG_RESERVED})
