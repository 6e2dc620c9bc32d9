"""The :class:`Coordinator`: one replica's ZooKeeper session with the recipes contrail-api uses
(the fq-name create lock of :mod:`.fqlock`, the subnet allocators of :mod:`.subnets`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from contrail_ha.services.config_api.zk import fqlock
from contrail_ha.services.config_api.zk.allocators import IndexAllocator
from contrail_ha.services.config_api.zk.fqlock import STALE_LOCK_SECONDS
from contrail_ha.services.config_api.zk.session import SESSION_TIMEOUT_S, Session
from contrail_ha.services.config_api.zk.subnets import SubnetAllocators


class Coordinator(Session):
    """One replica's ZooKeeper session: state, fq-name locks, allocators.

    ``stale_check`` answers whether a uuid exists in the config DB: an object with an
    ``exists(uuid)`` method (e.g. the ConfigStore) or a callable, sync or async. Without it a
    held lock is never considered stale.
    """

    def __init__(self, hosts: str, cluster_id: str, *, auth: tuple[str, str] | None = None,
                 root_creators: Sequence[str] = (), timeout: float = SESSION_TIMEOUT_S,
                 stale_lock_seconds: float = STALE_LOCK_SECONDS, stale_check: Any = None, op_timeout: float = 10.0,
                 lost_restart_after: float = 10.0) -> None:
        super().__init__(hosts, cluster_id, auth=auth, root_creators=root_creators, timeout=timeout,
                         op_timeout=op_timeout, lost_restart_after=lost_restart_after)
        self.stale_lock_seconds = stale_lock_seconds
        self.stale_check = stale_check
        self._subnets = SubnetAllocators(self)

    # --- fq-name create lock (fqlock.py) ------------------------------------------------------------
    async def create_fq_lock(self, obj_type: str, fq_name: Sequence[str], uuid: str,
                             fence_ts: int | None = None) -> bool:
        """Take the create lock of ``fq_name`` for ``uuid`` (its create's fence ``fence_ts``); False
        when another uuid holds it and the lock is not stale (:func:`.fqlock.create_fq_lock`)."""
        return await fqlock.create_fq_lock(self, obj_type, fq_name, uuid, fence_ts)

    async def delete_fq_lock(self, obj_type: str, fq_name: Sequence[str], uuid: str | None = None) -> bool:
        """Release the lock (only if ``uuid`` holds it, when given). False if it was not there."""
        return await fqlock.delete_fq_lock(self, obj_type, fq_name, uuid)

    async def read_fq_lock(self, obj_type: str, fq_name: Sequence[str]) -> str | None:
        return await fqlock.read_fq_lock(self, obj_type, fq_name)

    # --- subnet address allocation (subnets.py) -----------------------------------------------------
    def subnet_allocator(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> IndexAllocator:
        """The allocator of one subnet of a VN (index = offset of the address in the subnet)."""
        return self._subnets.allocator(vn_fq, subnet_cidr)

    async def alloc_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, owner: str,
                       exclude: Iterable[int] = (), start: int | None = None, end: int | None = None,
                       *, reverse: bool = False) -> int:
        """Allocate a free offset in ``[start, end]`` (inclusive; default the whole subnet) not in
        ``exclude``, lowest first (highest with ``reverse``). Raises :class:`Exhausted` (409)."""
        return await self._subnets.alloc(vn_fq, subnet_cidr, owner, exclude, start, end, reverse=reverse)

    async def reserve_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int, owner: str) -> bool:
        """Take one given offset; False if another owner holds it (idempotent for the same owner)."""
        return await self._subnets.reserve(vn_fq, subnet_cidr, offset, owner)

    async def free_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int,
                      owner: str | None = None) -> bool:
        """Release an offset (only if ``owner`` holds it, when given)."""
        return await self._subnets.free(vn_fq, subnet_cidr, offset, owner)

    async def read_ip(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int) -> str | None:
        return await self._subnets.read(vn_fq, subnet_cidr, offset)

    async def allocated_count(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> int:
        """How many addresses of the subnet are allocated, by any replica (counted in ZooKeeper)."""
        return await self._subnets.count(vn_fq, subnet_cidr)

    async def delete_subnet(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> None:
        """Forget a subnet and every allocation in it (its ``<vn>:<prefix>`` node, recursively)."""
        await self._subnets.delete(vn_fq, subnet_cidr)
