"""IPAM rules (R2005's): reserved gateway and DNS addresses, pools, usable counts, overlaps."""

from __future__ import annotations

import ipaddress
import re

import pytest

from contrail_ha.services.config_api.ipam import complete_subnets, parse_subnet, pick_subnet, vn_subnets
from contrail_ha.services.config_api.objects import ConfigError


def entry(prefix: str, plen: int, **kw: object) -> dict:
    return {"subnet": {"ip_prefix": prefix, "ip_prefix_len": plen}, **kw}


def test_defaults_reserve_last_addresses() -> None:
    s = parse_subnet(entry("10.0.0.0", 24), "s")
    assert str(s.gateway) == "10.0.0.254" and str(s.dns) == "10.0.0.253"
    assert s.usable() == 252  # 256 - network - broadcast - gateway - dns


def test_addr_from_start_reserves_first_addresses() -> None:
    s = parse_subnet(entry("10.0.0.0", 24, addr_from_start=True), "s")
    assert str(s.gateway) == "10.0.0.1" and str(s.dns) == "10.0.0.2"
    assert s.usable() == 252


def test_explicit_gateway_and_pool() -> None:
    s = parse_subnet(entry("10.1.0.0", 24, default_gateway="10.1.0.1",
                           allocation_pools=[{"start": "10.1.0.10", "end": "10.1.0.19"}]), "s")
    assert str(s.gateway) == "10.1.0.1"
    assert s.usable() == 10
    assert s.address(s.pools[0][0]) == ipaddress.ip_address("10.1.0.10")


def test_bad_subnets_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"s.default_gateway: 10.9.9.9 is not in subnet 10.0.0.0/24"):
        parse_subnet(entry("10.0.0.0", 24, default_gateway="10.9.9.9"), "s")
    with pytest.raises(ConfigError, match=r"s.allocation_pools\[0\]: end 10.0.0.40 is before start 10.0.0.50"):
        parse_subnet(entry("10.0.0.0", 24, allocation_pools=[{"start": "10.0.0.50", "end": "10.0.0.40"}]), "s")
    with pytest.raises(ConfigError, match="too small"):
        parse_subnet(entry("10.0.0.0", 31), "s")


def test_complete_and_overlap() -> None:
    vn = {"network_ipam_refs": [{"to": ["d", "p", "ipam"], "attr": {"ipam_subnets": [entry("10.0.0.0", 24)]}}]}
    complete_subnets(vn)
    e = vn["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]
    assert e["default_gateway"] == "10.0.0.254" and e["dns_server_address"] == "10.0.0.253" and e["subnet_uuid"]
    vn["network_ipam_refs"][0]["attr"]["ipam_subnets"].append(entry("10.0.0.128", 25))
    with pytest.raises(ConfigError, match=re.escape("Overlapping addresses: 10.0.0.0/24 and 10.0.0.128/25")):
        vn_subnets(vn)


def test_pick_subnet() -> None:
    a = parse_subnet(entry("10.0.0.0", 24, subnet_uuid="a"), "s")
    b = parse_subnet(entry("fd00::", 64, subnet_uuid="b"), "s")
    assert pick_subnet([a, b], family="v6") == [b]
    assert pick_subnet([a, b], subnet_uuid="a") == [a]
    assert pick_subnet([a, b], address=ipaddress.ip_address("10.0.0.7")) == [a]
