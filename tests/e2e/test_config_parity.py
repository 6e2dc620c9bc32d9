"""VNC parity items real clients rely on, through the VIP: ETag / If-None-Match, list and map
elements with their positions (the real vnc_api client), pagination markers, the advertised
actions, and aaa-mode as one cluster-wide setting."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import Cluster


def base(cluster: Cluster) -> str:
    return cluster.api


def replicas(cluster: Cluster) -> list[str]:
    return [f"http://{i.address}" for i in cluster.plan.of("config-api")]


@pytest.fixture(scope="module")
def vn(lib):
    from vnc_api.vnc_api import Project, VirtualNetwork

    project = Project(f"par-{uuid.uuid4().hex[:6]}")
    lib.project_create(project)
    net = VirtualNetwork("vn", parent_obj=project)
    lib.virtual_network_create(net)
    yield net
    lib.virtual_network_delete(id=net.uuid)
    lib.project_delete(id=project.uuid)


def test_etag_and_if_none_match(cluster: Cluster, lib, vn) -> None:
    url = f"{base(cluster)}/virtual-network/{vn.uuid}"
    first = httpx.get(url, timeout=10)
    etag = first.headers["ETag"]
    assert etag == f'"{first.json()["virtual-network"]["id_perms"]["last_modified"]}"'
    same = httpx.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert same.status_code == 304 and same.content == b""
    # any replica answers the same tag: it is stored, not computed per replica
    for r in replicas(cluster):
        assert httpx.get(f"{r}/virtual-network/{vn.uuid}", timeout=10).headers["ETag"] == etag
    lib.prop_map_set_element(vn.uuid, "annotations", {"key": "etag", "value": "1"})
    changed = httpx.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_list_elements_keep_their_positions(lib, vn) -> None:
    from vnc_api.gen.resource_xsd import ProtocolType

    field = "virtual_network_fat_flow_protocols"
    lib.prop_list_add_element(vn.uuid, field, ProtocolType(protocol="tcp", port=80), position="web")
    lib.prop_list_add_element(vn.uuid, field, ProtocolType(protocol="udp", port=53))
    lib.prop_list_add_element(vn.uuid, field, ProtocolType(protocol="tcp", port=22), position="ssh")
    got = lib.prop_list_get(vn.uuid, field)
    by_pos = {pos: elem for elem, pos in got}
    assert by_pos["web"]["port"] == 80 and by_pos["ssh"]["port"] == 22
    assert lib.prop_list_get(vn.uuid, field, position="ssh") == [[by_pos["ssh"], "ssh"]]
    lib.prop_list_modify_element(vn.uuid, field, ProtocolType(protocol="tcp", port=2222), "ssh")
    lib.prop_list_delete_element(vn.uuid, field, "web")
    left = {pos: elem["port"] for elem, pos in lib.prop_list_get(vn.uuid, field)}
    assert left["ssh"] == 2222 and "web" not in left and len(left) == 2
    read = lib.virtual_network_read(id=vn.uuid).get_virtual_network_fat_flow_protocols()
    assert sorted(p.port for p in read.fat_flow_protocol) == sorted(left.values())


def test_map_elements_through_the_client(lib, vn) -> None:
    from vnc_api.gen.resource_xsd import KeyValuePair

    for i in range(3):
        lib.prop_map_set_element(vn.uuid, "annotations", KeyValuePair(key=f"m{i}", value=str(i)))
    lib.prop_map_delete_element(vn.uuid, "annotations", "m1")
    keys = {pos for _, pos in lib.prop_map_get(vn.uuid, "annotations")}
    assert {"m0", "m2"} <= keys and "m1" not in keys


def test_page_marker_none_starts_from_the_beginning(cluster: Cluster, lib, vn) -> None:
    url = f"{base(cluster)}/virtual-networks"
    params = {"parent_id": vn.parent_uuid, "page_limit": "10"}
    plain = httpx.get(url, params=params, timeout=10).json()
    for marker in ("None", "none", ""):
        got = httpx.get(url, params={**params, "page_marker": marker}, timeout=10).json()
        assert got["virtual-networks"] == plain["virtual-networks"], marker
    bad = httpx.get(url, params={**params, "page_marker": "not-a-marker"}, timeout=10)
    assert bad.status_code == 400 and "page_marker" in bad.text


def test_every_advertised_action_is_served(cluster: Cluster) -> None:
    """Each action link of the homepage answers something other than 404/405 for its method."""
    home = httpx.get(f"{base(cluster)}/", timeout=10).json()
    actions = [e["link"] for e in home["links"] if e["link"]["rel"] == "action"]
    assert actions
    for a in actions:
        href = a["href"].replace("%s", str(uuid.uuid4()))
        method = a["method"] or "GET"
        r = httpx.request(method, href, json={} if method in ("POST", "PUT") else None, timeout=10)
        assert r.status_code < 500, (a["name"], r.status_code, r.text[:200])
        # a 404 may only be about the (made up) object, never about the route itself
        route_missing = r.status_code == 404 and ("Unknown collection" in r.text or r.text.startswith("404:"))
        assert r.status_code != 405 and not route_missing, (a["name"], r.text)


def test_aaa_mode_is_one_cluster_wide_setting(cluster: Cluster) -> None:
    urls = replicas(cluster)
    before = httpx.get(f"{urls[0]}/aaa-mode", timeout=10).json()["aaa-mode"]
    try:
        assert httpx.put(f"{urls[0]}/aaa-mode", json={"aaa-mode": "cloud-admin"}, timeout=10).status_code == 200
        assert [httpx.get(f"{u}/aaa-mode", timeout=10).json()["aaa-mode"] for u in urls] == ["cloud-admin"] * 3
        bad = httpx.put(f"{urls[1]}/aaa-mode", json={"aaa-mode": "everyone"}, timeout=10)
        assert bad.status_code == 400 and "aaa-mode" in bad.text
    finally:
        httpx.put(f"{urls[1]}/aaa-mode", json={"aaa-mode": before}, timeout=10)
    assert {httpx.get(f"{u}/aaa-mode", timeout=10).json()["aaa-mode"] for u in urls} == {before}
