"""IP address management: subnets carried on virtual-network -> network-ipam refs.

As R2005's ``vnc_addr_management``: each subnet reserves its network and broadcast
addresses, a default gateway and a service (DNS) address — by default the last usable
addresses (``last - 1`` and ``last - 2``), the first ones with ``addr_from_start`` — and
allocates from its allocation pools (default: the whole subnet). Allocations themselves are
znodes under ``/api-server/subnets/...`` (``zk.py``), so every replica sees them at once.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from contrail_ha.services.config_api.objects import ConfigError, Obj

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Subnet:
    """One subnet of a virtual network, with the addresses it never hands out."""

    network: Network
    gateway: Address | None
    dns: Address | None
    subnet_uuid: str
    addr_from_start: bool = False
    pools: tuple[tuple[int, int], ...] = ()  # inclusive offsets from the network address
    reserved: frozenset[int] = field(default_factory=frozenset)  # offsets never allocated

    @property
    def cidr(self) -> str:
        return str(self.network)

    @property
    def family(self) -> str:
        return "v4" if self.network.version == 4 else "v6"

    def offset(self, addr: Address) -> int:
        return int(addr) - int(self.network.network_address)

    def address(self, offset: int) -> Address:
        return ipaddress.ip_address(int(self.network.network_address) + offset)

    def usable(self) -> int:
        """How many addresses this subnet can hand out."""
        return sum(1 for lo, hi in self.pools for o in range(lo, hi + 1) if o not in self.reserved)

    def contains(self, addr: Address) -> bool:
        return addr in self.network


def _addr(value: Any, path: str) -> Address:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError as e:
        raise ConfigError(f"{path}: {value!r} is not an IP address") from e


def parse_subnet(entry: dict[str, Any], path: str) -> Subnet:
    """An ``IpamSubnetType`` dict -> Subnet, with R2005's defaults for gateway and DNS."""
    sn = entry.get("subnet") or {}
    try:
        net = ipaddress.ip_network(f"{sn.get('ip_prefix')}/{sn.get('ip_prefix_len')}", strict=False)
    except ValueError as e:
        raise ConfigError(f"{path}.subnet: {sn.get('ip_prefix')}/{sn.get('ip_prefix_len')} is not a subnet") from e
    first, last = 0, net.num_addresses - 1
    if last < 3:
        raise ConfigError(f"{path}.subnet: {net} is too small (needs room for gateway and DNS addresses)")
    from_start = bool(entry.get("addr_from_start"))
    gw_raw, dns_raw = entry.get("default_gateway"), entry.get("dns_server_address")
    gw = _addr(gw_raw, f"{path}.default_gateway") if gw_raw and gw_raw != "None" else \
        ipaddress.ip_address(int(net.network_address) + (first + 1 if from_start else last - 1))
    dns = _addr(dns_raw, f"{path}.dns_server_address") if dns_raw and dns_raw != "None" else \
        ipaddress.ip_address(int(net.network_address) + (first + 2 if from_start else last - 2))
    for name, a in (("default_gateway", gw), ("dns_server_address", dns)):
        if str(a) not in ("0.0.0.0", "::") and a not in net:
            raise ConfigError(f"{path}.{name}: {a} is not in subnet {net}")
    pools: list[tuple[int, int]] = []
    for i, pool in enumerate(entry.get("allocation_pools") or []):
        start = _addr(pool.get("start"), f"{path}.allocation_pools[{i}].start")
        end = _addr(pool.get("end"), f"{path}.allocation_pools[{i}].end")
        if start not in net or end not in net:
            raise ConfigError(f"{path}.allocation_pools[{i}]: {start}-{end} is outside subnet {net}")
        if int(end) < int(start):
            raise ConfigError(f"{path}.allocation_pools[{i}]: end {end} is before start {start}")
        pools.append((int(start) - int(net.network_address), int(end) - int(net.network_address)))
    if not pools:
        pools = [(first, last)]
    reserved = {first, last}
    for a in (gw, dns):
        if a in net:
            reserved.add(int(a) - int(net.network_address))
    return Subnet(net, gw, dns, entry.get("subnet_uuid") or "", from_start, tuple(pools), frozenset(reserved))


def vn_subnets(vn: Obj) -> list[Subnet]:
    """Every subnet of a virtual network, over all its network-ipam refs."""
    out: list[Subnet] = []
    for i, ref in enumerate(vn.get("network_ipam_refs") or []):
        attr = ref.get("attr") or {}
        for j, entry in enumerate(attr.get("ipam_subnets") or []):
            out.append(parse_subnet(entry, f"network_ipam_refs[{i}].attr.ipam_subnets[{j}]"))
    seen: dict[str, int] = {}
    for k, s in enumerate(out):
        for other in out[:k]:
            if s.network.version == other.network.version and s.network.overlaps(other.network):
                raise ConfigError(f"Overlapping addresses: {other.cidr} and {s.cidr}")
        seen[s.cidr] = k
    return out


def complete_subnets(vn: Obj) -> None:
    """Fill default_gateway, dns_server_address and subnet_uuid on a VN's subnets (in place)."""
    for ref in vn.get("network_ipam_refs") or []:
        attr = ref.get("attr") or {}
        for j, entry in enumerate(attr.get("ipam_subnets") or []):
            s = parse_subnet(entry, f"ipam_subnets[{j}]")
            if not entry.get("default_gateway"):
                entry["default_gateway"] = str(s.gateway)
            if not entry.get("dns_server_address"):
                entry["dns_server_address"] = str(s.dns)
            if not entry.get("subnet_uuid"):
                entry["subnet_uuid"] = str(uuidlib.uuid4())
    vn_subnets(vn)  # overlap check


def pick_subnet(subnets: list[Subnet], *, family: str | None = None, subnet_uuid: str | None = None,
                address: Address | None = None) -> list[Subnet]:
    """Subnets eligible for an allocation, in order."""
    out = subnets
    if subnet_uuid:
        out = [s for s in out if s.subnet_uuid == subnet_uuid or s.cidr == subnet_uuid]
    if family in ("v4", "v6"):
        out = [s for s in out if s.family == family]
    if address is not None:
        out = [s for s in out if s.contains(address)]
    return out


def allocation_ranges(s: Subnet) -> list[tuple[int, int]]:
    """Offsets to try, lowest first with addr_from_start, else highest first (as R2005)."""
    return sorted(s.pools, reverse=not s.addr_from_start)


class Ipam:
    """Allocation of addresses from a VN's subnets, with the znodes of ``zk.Coordinator``."""

    def __init__(self, zk: Any) -> None:
        self.zk = zk

    async def allocate(self, vn: Obj, owner: str, *, family: str | None = None, subnet_uuid: str | None = None,
                       address: str | None = None) -> tuple[str, Subnet]:
        """One address of ``vn`` for ``owner``: the given one (409 if taken) or the next free one."""
        from contrail_ha.services.config_api.objects import Conflict
        from contrail_ha.services.config_api.zk import Exhausted

        subnets = vn_subnets(vn)
        vn_fq = vn["fq_name"]
        if not subnets:
            raise ConfigError(f"Virtual-Network({vn_fq}) has no defined subnet(s)")
        if address:
            addr = _addr(address, "instance_ip_address")
            eligible = pick_subnet(subnets, subnet_uuid=subnet_uuid, address=addr)
            if not eligible:
                raise ConfigError(f"instance_ip_address: {addr} is in no subnet of {vn_fq}")
            s = eligible[0]
            off = s.offset(addr)
            if off in s.reserved or not await self.zk.reserve_ip(vn_fq, s.cidr, off, owner):
                raise Conflict(f"Ip address already in use: {addr}")
            return str(addr), s
        eligible = pick_subnet(subnets, family=family, subnet_uuid=subnet_uuid)
        if not eligible:
            raise ConfigError(f"Virtual-Network({vn_fq}) has no subnet for family {family} / subnet {subnet_uuid}")
        for s in eligible:
            for lo, hi in allocation_ranges(s):
                try:
                    off = await self.zk.alloc_ip(vn_fq, s.cidr, owner, exclude=s.reserved, start=lo, end=hi,
                                                 reverse=not s.addr_from_start)
                except Exhausted:
                    continue
                return str(s.address(off)), s
        raise Conflict(f"Virtual-Network({vn_fq}) has exhausted subnet(all)")

    async def free(self, vn: Obj, address: str, owner: str | None = None) -> bool:
        addr = _addr(address, "ip_addr")
        for s in vn_subnets(vn):
            if s.contains(addr):
                return bool(await self.zk.free_ip(vn["fq_name"], s.cidr, s.offset(addr), owner))
        return False

    async def count(self, vn: Obj, cidr: str) -> int:
        for s in vn_subnets(vn):
            if s.cidr == str(ipaddress.ip_network(cidr, strict=False)):
                return int(await self.zk.allocated_count(vn["fq_name"], s.cidr))
        raise ConfigError(f"subnet_list: {cidr} is not a subnet of {vn['fq_name']}")
