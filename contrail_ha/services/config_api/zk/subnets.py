"""Subnet address allocation: ``/api-server/subnets/<vn-fq-name>:<prefix>/<len>/%010d``, one
znode per allocated address, the index being the address's offset in the subnet (value: its owner).

One :class:`~.allocators.IndexAllocator` per subnet of a VN, created at first use and kept;
the :class:`~.coordinator.Coordinator`'s ``alloc_ip``, ``reserve_ip``, ``free_ip``, ``read_ip``,
``allocated_count`` and ``delete_subnet`` are those of its :class:`SubnetAllocators`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence

from contrail_ha.services.config_api.zk.allocators import IndexAllocator
from contrail_ha.services.config_api.zk.paths import subnet_path
from contrail_ha.services.config_api.zk.session import Session


class SubnetAllocators:
    """The address allocators of every subnet this replica has used, over one session."""

    def __init__(self, zk: Session) -> None:
        self.zk = zk
        self._subnets: dict[tuple[str, str], IndexAllocator] = {}

    def allocator(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> IndexAllocator:
        """The allocator of one subnet of a VN (index = offset of the address in the subnet)."""
        fq = vn_fq if isinstance(vn_fq, str) else ":".join(vn_fq)
        net = ipaddress.ip_network(subnet_cidr, strict=False)
        key = (fq, str(net))
        alloc = self._subnets.get(key)
        if alloc is None:
            alloc = IndexAllocator(self.zk, subnet_path(fq, str(net)), net.num_addresses)
            alloc.exhausted_message = f"Virtual-Network({fq.split(':')}) has exhausted subnet({net})"
            self._subnets[key] = alloc
        return alloc

    async def alloc(self, vn_fq: Sequence[str] | str, subnet_cidr: str, owner: str,
                    exclude: Iterable[int] = (), start: int | None = None, end: int | None = None,
                    *, reverse: bool = False) -> int:
        """Allocate a free offset in ``[start, end]`` (inclusive; default the whole subnet) not in
        ``exclude``, lowest first (highest with ``reverse``). Raises :class:`Exhausted` (409)."""
        alloc = self.allocator(vn_fq, subnet_cidr)
        return await asyncio.to_thread(alloc.alloc, owner, lo=start, hi=end, exclude=frozenset(exclude),
                                       reverse=reverse)

    async def reserve(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int, owner: str) -> bool:
        """Take one given offset; False if another owner holds it (idempotent for the same owner)."""
        return await asyncio.to_thread(self.allocator(vn_fq, subnet_cidr).reserve, offset, owner)

    async def free(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int,
                   owner: str | None = None) -> bool:
        """Release an offset (only if ``owner`` holds it, when given)."""
        return await asyncio.to_thread(self.allocator(vn_fq, subnet_cidr).free, offset, owner)

    async def read(self, vn_fq: Sequence[str] | str, subnet_cidr: str, offset: int) -> str | None:
        """The owner of an offset, or None if it is free."""
        return await asyncio.to_thread(self.allocator(vn_fq, subnet_cidr).read, offset)

    async def count(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> int:
        """How many addresses of the subnet are allocated, by any replica (counted in ZooKeeper)."""
        return await asyncio.to_thread(self.allocator(vn_fq, subnet_cidr).zk_count)

    async def delete(self, vn_fq: Sequence[str] | str, subnet_cidr: str) -> None:
        """Forget a subnet and every allocation in it (its ``<vn>:<prefix>`` node, recursively)."""
        fq = vn_fq if isinstance(vn_fq, str) else ":".join(vn_fq)
        net = ipaddress.ip_network(subnet_cidr, strict=False)
        self._subnets.pop((fq, str(net)), None)
        top = self.zk.path(subnet_path(fq, str(net))).rstrip("/").rsplit("/", 1)[0]
        await asyncio.to_thread(self.zk.delete, top, -1, True)
