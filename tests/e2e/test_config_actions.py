"""The action endpoints through the real vnc_api client: refs, relax, key-value store, property collections."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="module")
def project(lib):
    from vnc_api.vnc_api import Project

    p = Project(f"act-{uuid.uuid4().hex[:6]}")
    lib.project_create(p)
    return p


def test_ref_update_add_delete_and_relax(lib, project) -> None:
    from vnc_api.exceptions import RefsExistError
    from vnc_api.vnc_api import IpamSubnetType, NetworkIpam, SubnetType, VirtualNetwork, VnSubnetsType

    ipam = NetworkIpam("ipam", parent_obj=project)
    lib.network_ipam_create(ipam)
    vn = VirtualNetwork("vn", parent_obj=project)
    lib.virtual_network_create(vn)
    attr = VnSubnetsType([IpamSubnetType(subnet=SubnetType("10.90.0.0", 24))])
    lib.ref_update("virtual-network", vn.uuid, "network-ipam", ipam.uuid, None, "ADD", attr)
    got = lib.virtual_network_read(id=vn.uuid)
    refs = got.get_network_ipam_refs()
    assert [r["uuid"] for r in refs] == [ipam.uuid]
    assert refs[0]["attr"].ipam_subnets[0].subnet.ip_prefix == "10.90.0.0"
    with pytest.raises(RefsExistError):
        lib.network_ipam_delete(id=ipam.uuid)
    lib.ref_update("virtual-network", vn.uuid, "network-ipam", ipam.uuid, None, "DELETE")
    assert not lib.virtual_network_read(id=vn.uuid).get_network_ipam_refs()
    # relax: a relaxed back-ref no longer blocks the referred object's delete
    lib.ref_update("virtual-network", vn.uuid, "network-ipam", ipam.uuid, None, "ADD", attr)
    lib.ref_relax_for_delete(vn.uuid, ipam.uuid)
    lib.network_ipam_delete(id=ipam.uuid)
    assert not lib.virtual_network_read(id=vn.uuid).get_network_ipam_refs()


def test_useragent_kv(lib) -> None:
    from vnc_api.exceptions import NoIdError

    key = f"k-{uuid.uuid4().hex[:6]}"
    lib.kv_store(key, "v1")
    assert lib.kv_retrieve(key) == "v1"
    assert {"key": key, "value": "v1"} in lib.kv_retrieve()
    lib.kv_delete(key)
    with pytest.raises(NoIdError):
        lib.kv_retrieve(key)


def test_prop_collections_and_names(lib, project) -> None:
    from vnc_api.vnc_api import KeyValuePair, KeyValuePairs, VirtualNetwork

    vn = VirtualNetwork("annotated", parent_obj=project,
                        annotations=KeyValuePairs([KeyValuePair("a", "1")]))
    lib.virtual_network_create(vn)
    lib.prop_map_set_element(vn.uuid, "annotations", KeyValuePair("b", "2"))  # asks id-to-fqname for the key
    lib.prop_map_delete_element(vn.uuid, "annotations", "a")
    got = lib.prop_map_get(vn.uuid, "annotations")
    assert [(e["key"], e["value"]) for e, _pos in got] == [("b", "2")]
    assert lib.id_to_fq_name(vn.uuid) == vn.get_fq_name()
    assert lib.fq_name_to_id("virtual-network", vn.get_fq_name()) == vn.uuid


def test_chmod_changes_perms2(lib, project) -> None:
    lib.chmod(project.uuid, global_access=5)
    assert lib.project_read(id=project.uuid).get_perms2().global_access == 5
