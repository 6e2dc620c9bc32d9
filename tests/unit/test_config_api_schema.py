"""contrail-api schema layer: metadata read from vnc_api, the homepage, and XSD validation.

The real client (``contrail-api-client``, module ``vnc_api``) is the oracle: its homepage
parser must accept our homepage, and the bodies it serializes must validate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

vnc_api = pytest.importorskip("vnc_api.vnc_api")

from vnc_api.gen import resource_xsd  # noqa: E402
from vnc_api.gen.vnc_api_client_gen import all_resource_type_tuples  # noqa: E402
from vnc_api.utils import _obj_serializer_all, obj_type_to_vnc_class  # noqa: E402

from contrail_ha.services.config_api.schema import SERVED_ACTIONS, schema  # noqa: E402
from contrail_ha.services.config_api.validation import (  # noqa: E402
    FieldError,
    check_update_allowed,
    resolve_parent_type,
    validate_collection_element,
    validate_fq_name,
    validate_object,
    validate_prop,
    validate_ref_attr,
    validate_refs,
    validate_simple,
    validate_xsd,
)

VncApi = vnc_api.VncApi
BASE = "http://127.0.0.1:8082"
S = schema()

# Every action name the client looks up (vnc_api.py), with the path and method of R2005.
CLIENT_ACTIONS = {
    "name-to-id": ("/fqname-to-id", "POST"),
    "id-to-name": ("/id-to-fqname", "POST"),
    "ref-update": ("/ref-update", "POST"),
    "ref-relax-for-delete": ("/ref-relax-for-delete", "POST"),
    "prop-collection-get": ("/prop-collection-get", "GET"),
    "prop-collection-update": ("/prop-collection-update", "POST"),
    "useragent-keyvalue": ("/useragent-kv", "POST"),
    "list-bulk-collection": ("/list-bulk-collection", "POST"),
    "chown": ("/chown", "POST"),
    "chmod": ("/chmod", "POST"),
    "aaa-mode": ("/aaa-mode", "PUT"),
    "set-tag": ("/set-tag", "POST"),
    "security-policy-draft": ("/security-policy-draft", "POST"),
    "execute-job": ("/execute-job", "POST"),
    "abort-job": ("/abort-job", "POST"),
    "amqp-publish": ("/amqp-publish", "POST"),
    "amqp-request": ("/amqp-request", "POST"),
    "fetch-records": ("/fetch-records", "POST"),
    "virtual-network-ip-alloc": ("/virtual-network/%s/ip-alloc", "POST"),
    "virtual-network-ip-free": ("/virtual-network/%s/ip-free", "POST"),
    "virtual-network-subnet-ip-count": ("/virtual-network/%s/subnet-ip-count", "POST"),
    "int-pools": ("/int-pools", "POST"),
    "int-pool": ("/int-pool", "POST"),
}
R2005_EXTRA_ACTIONS = {
    "database-check": ("/db-check", "POST"),
    "start-profile": ("/start-profile", "POST"),
    "stop-profile": ("/stop-profile", "POST"),
    "obj-cache": ("/obj-cache", "GET"),
    "hbs-get": ("/hbs-get", "POST"),
    "watch": ("/watch", "GET"),
    "obj-perms": ("/obj-perms", "GET"),
}


def error_of(fn: Any, *args: Any, **kwargs: Any) -> FieldError:
    with pytest.raises(FieldError) as info:
        fn(*args, **kwargs)
    return info.value


def client_body(obj: Any) -> dict[str, Any]:
    """What ``VncApi._object_create`` POSTs for ``obj`` (without the type wrapper)."""
    obj._pending_field_updates |= obj._pending_ref_updates
    obj._pending_ref_updates = set()
    return json.loads(json.dumps(obj, default=lambda o: VncApi._obj_serializer_diff(None, o)))


def xsd_dict(value: Any) -> Any:
    """An XSD object as the client serializes it (every attribute, nulls included)."""
    return json.loads(json.dumps(value, default=_obj_serializer_all))


# --------------------------------------------------------------------------------------------
# Metadata


def test_all_121_types_load_with_both_spellings() -> None:
    assert len(S) == 121 == len(all_resource_type_tuples)
    for object_type, resource_type in all_resource_type_tuples:
        rtype = S.get(resource_type)
        assert rtype is not None, resource_type
        assert S.get(object_type) is rtype
        assert S[object_type] is S[resource_type]
        assert object_type in S and resource_type in S
        assert (rtype.resource_type, rtype.object_type) == (resource_type, object_type)
        assert S.by_collection(f"{resource_type}s") is rtype
    assert S.get("virtual-network") == S.get("virtual_network")
    assert S.get("virtual-DNS") is S.get("virtual_DNS")
    assert S.get("no-such-type") is None and "no-such-type" not in S
    with pytest.raises(KeyError):
        S["no-such-type"]
    assert schema() is S


def test_collection_names_are_naive_plurals() -> None:
    assert S["virtual-network"].collection == "virtual-networks"
    assert S["network-policy"].collection == "network-policys"
    assert S["virtual-DNS"].collection == "virtual-DNSs"
    assert S["access-control-list"].collection == "access-control-lists"


def test_virtual_network_facts() -> None:
    vn = S["virtual-network"]
    assert vn.parent_types == ("project",)
    assert vn.default_parent_type == "project" and not vn.needs_parent_type and not vn.is_top_level
    ref = vn.refs["network_ipam_refs"]
    assert (ref.target, ref.attr_type, ref.is_derived) == ("network-ipam", "VnSubnetsType", False)
    assert vn.ref_to("network-ipam") is ref and vn.ref_to("network_ipam") is ref
    assert vn.refs["network_policy_refs"].attr_type == "VirtualNetworkPolicyType"
    assert vn.refs["route_table_refs"].attr_type is None
    assert {"routing_instances", "access_control_lists"} <= vn.derived_children
    assert "floating_ip_pools" in vn.children and "floating_ip_pools" not in vn.derived_children
    assert vn.children["routing_instances"].child_type == "routing-instance"
    assert vn.back_refs["virtual_machine_interface_back_refs"].source == "virtual-machine-interface"
    assert vn.props["is_shared"].xsd_type == "boolean" and not vn.props["is_shared"].is_complex
    category = vn.props["virtual_network_category"]
    assert (category.restriction_type, category.default) == ("enum", "tenant")
    assert "tenant" in category.restrictions
    assert vn.props["virtual_network_network_id"].system_only
    assert not vn.props["virtual_network_network_id"].updatable
    assert {"network_ipam_refs", "routing_instances", "display_name", "virtual_machine_interface_back_refs"} \
        <= vn.field_names


def test_other_derived_children() -> None:
    assert "access_control_lists" in S["security-group"].derived_children
    assert "port_tuples" in S["service-instance"].derived_children
    assert S["project"].derived_children == frozenset()


def test_annotations_is_a_map_keyed_by_key_on_every_type() -> None:
    for rtype in S:
        annotations = rtype.props["annotations"]
        assert annotations.is_map and not annotations.is_list
        assert (annotations.wrapper, annotations.map_key, annotations.element_type) == \
            ("key_value_pair", "key", "KeyValuePair")
        assert annotations.has_wrapper and annotations.element_is_complex
        assert "annotations" in rtype.map_props
        assert rtype.props["id_perms"].system_only and rtype.props["perms2"].system_only
        assert "display_name" in rtype.props


def test_list_and_map_props() -> None:
    assert sum(len(t.list_props) for t in S) == 15
    assert sum(len(t.map_props) for t in S) == 127
    fat = S["virtual-network"].props["virtual_network_fat_flow_protocols"]
    assert fat.is_list and (fat.wrapper, fat.element_type, fat.map_key) == ("fat_flow_protocol", "ProtocolType", None)
    dscp = S["qos-config"].map_props["dscp_entries"]
    assert (dscp.wrapper, dscp.map_key) == ("qos_id_forwarding_class_pair", "key")
    tags = S["firewall-rule"].list_props["match_tags"]
    assert (tags.element_type, tags.element_is_complex) == ("string", False)


def test_parent_types() -> None:
    multi = {t.resource_type: t for t in S if len(t.parent_types) > 1}
    assert sum(len(t.parent_types) == 2 for t in multi.values()) == 15
    assert sum(len(t.parent_types) == 3 for t in multi.values()) == 2
    assert len([t for t in S if t.is_top_level]) == 23  # 22 types + config-root itself
    for name in ("address-group", "virtual-machine-interface", "floating-ip", "access-control-list"):
        assert multi[name].default_parent_type is None and multi[name].needs_parent_type
    for name in ("tag", "policy-management"):  # several parents, config-root among them
        assert multi[name].default_parent_type == "config-root" and multi[name].is_top_level
    assert S["domain"].default_parent_type == "config-root" and S["domain"].is_top_level


def test_every_xsd_type_named_by_the_metadata_exists() -> None:
    for rtype in S:
        for prop in rtype.props.values():
            if prop.is_complex:
                assert S.xsd(prop.xsd_type) is not None, (rtype.resource_type, prop.name)
        for ref in rtype.refs.values():
            assert ref.target in S
            assert ref.attr_type is None or S.xsd(ref.attr_type) is not None
        for child in rtype.children.values():
            assert child.child_type in S
        for parent in rtype.parent_types:
            assert parent in S
    assert len(S.xsd_types) == 215
    for xsd in S.xsd_types.values():
        assert xsd.field_names == tuple(getattr(resource_xsd, xsd.name).attr_fields)
        for attr in xsd.fields.values():
            assert not attr.is_complex or S.xsd(attr.attr_type) is not None


# --------------------------------------------------------------------------------------------
# Homepage


def test_homepage_links() -> None:
    page = S.homepage(BASE + "/")
    assert page["href"] == BASE
    links = [entry["link"] for entry in page["links"]]
    assert all(set(link) == {"rel", "href", "name", "method"} for link in links)
    assert all(link["href"].startswith(BASE + "/") for link in links)
    by_rel: dict[str, dict[str, dict[str, Any]]] = {}
    for link in links:
        by_rel.setdefault(link["rel"], {})[link["name"]] = link
    for rtype in S:
        collection = by_rel["collection"][rtype.resource_type]
        assert collection["href"] == f"{BASE}/{rtype.resource_type}s" and collection["method"] is None
        assert by_rel["resource-base"][rtype.resource_type]["href"] == f"{BASE}/{rtype.resource_type}"
    assert len(by_rel["collection"]) == len(by_rel["resource-base"]) == 121
    for name, (uri, method) in {**CLIENT_ACTIONS, **R2005_EXTRA_ACTIONS}.items():
        if name not in SERVED_ACTIONS:  # an action that is not served is not advertised
            assert name not in by_rel["action"], name
            continue
        action = by_rel["action"][name]
        assert (action["href"], action["method"]) == (BASE + uri, method), name
    assert set(by_rel["action"]) == SERVED_ACTIONS
    assert by_rel["root"]["config-root"]["href"] == f"{BASE}/config-root"


def test_action_methods_cover_the_client_calls() -> None:
    assert set(S.action("int-pools").methods) == {"POST", "DELETE"}
    assert set(S.action("int-pool").methods) == {"GET", "POST", "DELETE"}
    assert set(S.action("aaa-mode").methods) == {"GET", "PUT"}
    assert S.action("no-such-action") is None


@pytest.fixture
def client_classes() -> Iterator[None]:
    """``_parse_homepage`` sets class attributes of the client's classes: restore them."""
    classes = [obj_type_to_vnc_class(rt, vnc_api.__name__) for _, rt in all_resource_type_tuples]
    saved = [(cls, cls.__dict__.get("create_uri"), dict(cls.resource_uri_base)) for cls in classes]
    yield
    for cls, create_uri, bases in saved:
        cls.create_uri = create_uri
        cls.resource_uri_base.clear()
        cls.resource_uri_base.update(bases)


def parsed_client(page: dict[str, Any]) -> Any:
    """A ``VncApi`` that has parsed ``page`` with its own ``_parse_homepage``, no network."""
    api = object.__new__(VncApi)
    api._action_uri = {}
    api._srv_root_url = None
    api._parse_homepage(page)
    return api


def test_real_client_parses_the_homepage(client_classes: None) -> None:
    api = parsed_client(S.homepage(BASE))
    assert api._srv_root_url == BASE
    for _, resource_type in all_resource_type_tuples:
        cls = obj_type_to_vnc_class(resource_type, vnc_api.__name__)
        assert cls.create_uri == f"/{resource_type}s", resource_type
        assert cls.resource_uri_base[resource_type] == f"/{resource_type}"
    for name, (uri, _) in CLIENT_ACTIONS.items():
        if name in SERVED_ACTIONS:
            assert api._action_uri[name] == uri
        else:
            assert name not in api._action_uri
    assert api._action_uri["virtual-network-ip-alloc"] % "u1" == "/virtual-network/u1/ip-alloc"


def test_real_client_calls_use_the_advertised_uris(client_classes: None) -> None:
    api = parsed_client(S.homepage(BASE))
    sent: list[tuple[str, str, Any]] = []
    replies = {"/fqname-to-id": {"uuid": "u1"}, "/virtual-networks": {"virtual-network": {
        "uuid": "u2", "fq_name": ["default-domain", "p", "vn"], "parent_type": "project", "parent_uuid": "u0"}},
        "/virtual-network/u2/ip-alloc": {"ip_addr": ["10.0.0.3"]}}

    def request_server(op: Any, url: str, data: Any = None, *args: Any, **kwargs: Any) -> str:
        sent.append((op, url, data))
        return json.dumps(replies.get(url, {}))

    api._request_server = request_server
    api._obj_serializer = api._obj_serializer_diff  # set by __init__
    assert api.fq_name_to_id("virtual-network", ["default-domain", "p", "vn"]) == "u1"
    vn = vnc_api.VirtualNetwork("vn", parent_obj=vnc_api.Project("p"))
    api._object_create("virtual-network", vn)
    assert api.virtual_network_ip_alloc(vn) == ["10.0.0.3"]
    assert [url for _, url, _ in sent] == ["/fqname-to-id", "/virtual-networks", "/virtual-network/u2/ip-alloc"]
    body = json.loads(sent[1][2])["virtual-network"]
    assert validate_object("virtual-network", body) == body


# --------------------------------------------------------------------------------------------
# Validation: what the client sends passes


def test_client_serialized_virtual_network_validates() -> None:
    ipam = vnc_api.NetworkIpam("ipam1", parent_obj=vnc_api.Project("p1"))
    ipam.uuid = "1f506c9f-0000-4000-8000-000000000001"
    vn = vnc_api.VirtualNetwork("vn1", parent_obj=vnc_api.Project("p1"), display_name="VN one", is_shared=True,
                                virtual_network_properties=vnc_api.VirtualNetworkType(forwarding_mode="l2_l3"))
    vn.set_annotations(vnc_api.KeyValuePairs([vnc_api.KeyValuePair("k1", "v1")]))
    vn.add_network_ipam(ipam, vnc_api.VnSubnetsType([
        vnc_api.IpamSubnetType(subnet=vnc_api.SubnetType("10.0.0.0", 24), default_gateway="10.0.0.1"),
        vnc_api.IpamSubnetType(subnet=vnc_api.SubnetType("10.1.0.0", 16))]))
    vn.set_virtual_network_fat_flow_protocols(vnc_api.FatFlowProtocols([vnc_api.ProtocolType("tcp", 80)]))
    body = client_body(vn)
    assert body["annotations"] == {"key_value_pair": [{"key": "k1", "value": "v1"}]}
    assert body["virtual_network_properties"]["rpf"] is None  # nulls are sent
    assert body["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]["dns_server_address"] is None
    assert validate_object("virtual-network", body, "CREATE") == body
    assert validate_object("virtual_network", body, "UPDATE") == body


def test_client_serialized_objects_with_refs_and_attrs_validate() -> None:
    project = vnc_api.Project("p1")
    vmi = vnc_api.VirtualMachineInterface("vmi1", parent_obj=project)
    vmi.set_virtual_machine_interface_allowed_address_pairs(vnc_api.AllowedAddressPairs([vnc_api.AllowedAddressPair(
        ip=vnc_api.SubnetType("10.0.0.5", 32), mac="00:11:22:33:44:55", address_mode="active-standby")]))
    vmi.set_virtual_machine_interface_bindings(vnc_api.KeyValuePairs([vnc_api.KeyValuePair("host_id", "h1")]))
    vmi.add_virtual_network(vnc_api.VirtualNetwork("vn1", parent_obj=project))
    body = client_body(vmi)
    assert validate_object("virtual-machine-interface", body) == body
    policy = vnc_api.NetworkPolicy("np1", parent_obj=project)
    vn = vnc_api.VirtualNetwork("vn2", parent_obj=project)
    vn.add_network_policy(policy, vnc_api.VirtualNetworkPolicyType(
        sequence=vnc_api.SequenceType(0, 0), timer=vnc_api.TimerType(start_time="2026-01-01T00:00:00")))
    body = client_body(vn)
    assert validate_object("virtual-network", body) == body


@pytest.mark.parametrize("name", sorted(n for n in S.xsd_types if n != "SubnetType"))
def test_client_default_xsd_values_validate(name: str) -> None:
    """Every XSD class as the client builds it by default (all nulls and XSD defaults)."""
    value = xsd_dict(getattr(resource_xsd, name)())
    assert validate_xsd(value, name, name) == value


def test_default_subnet_type_is_refused_like_r2005() -> None:
    assert error_of(validate_xsd, xsd_dict(vnc_api.SubnetType()), "SubnetType", "s").path == "s.ip_prefix"


SHAPE_ERRORS = ("unknown field", "expected a list", "expected an object", "expected a string",
                "expected an integer", "expected true or false")


@pytest.mark.parametrize("name", sorted(n for n in S.xsd_types if n not in ("PortInfoType", "InterfaceMapType")))
def test_client_populated_xsd_values_have_the_right_shape(name: str) -> None:
    """``populate()`` fills every field with a dummy value of the right XSD type (not of the
    right enum or range, which R2005 would refuse too): no shape error may appear."""
    value = xsd_dict(getattr(resource_xsd, name).populate())
    try:
        validate_xsd(value, name, name)
    except FieldError as e:
        assert not e.message.startswith(SHAPE_ERRORS), str(e)
        assert "is not one of" in e.message or "is not between" in e.message or "community" in e.message


# --------------------------------------------------------------------------------------------
# Validation: what is refused, and where


def test_bad_enum() -> None:
    e = error_of(validate_prop, "virtual-network", "virtual_network_properties", {"forwarding_mode": "l9"})
    assert e.path == "virtual_network_properties.forwarding_mode"
    assert e.message == "'l9' is not one of ['l2_l3', 'l2', 'l3']"
    assert str(e) == "virtual_network_properties.forwarding_mode: 'l9' is not one of ['l2_l3', 'l2', 'l3']"
    e = error_of(validate_object, "virtual-network", {"fq_name": ["a", "b", "c"], "virtual_network_category": "x"})
    assert (e.path, e.message) == ("virtual_network_category", "'x' is not one of ['infra', 'tenant', 'internal', "
                                                               "'routed']")


def test_bad_int_range() -> None:
    e = error_of(validate_prop, "virtual-network", "id_perms", {"permissions": {"owner_access": 9}})
    assert (e.path, e.message) == ("id_perms.permissions.owner_access", "9 is not between 0 and 7")
    e = error_of(validate_object, "alarm", {"alarm_severity": 3})
    assert (e.path, e.message) == ("alarm_severity", "3 is not between 0 and 2")
    e = error_of(validate_prop, "virtual-network", "id_perms", {"uuid": {"uuid_mslong": -1}})
    assert (e.path, e.message) == ("id_perms.uuid.uuid_mslong", "-1 is not between 0 and 18446744073709551615")
    assert validate_prop("virtual-network", "id_perms", {"uuid": {"uuid_mslong": 2**64 - 1}})


def test_wrong_types() -> None:
    e = error_of(validate_prop, "virtual-network", "virtual_network_properties", {"vxlan_network_identifier": "abc"})
    assert (e.path, e.message) == ("virtual_network_properties.vxlan_network_identifier",
                                   "expected an integer, got 'abc'")
    e = error_of(validate_prop, "virtual-network", "annotations", {"key_value_pair": {"key": "k", "value": "v"}})
    assert e.path == "annotations.key_value_pair"
    assert e.message.startswith("expected a list of KeyValuePair, got {")
    e = error_of(validate_prop, "virtual-network", "annotations", [{"key": "k", "value": "v"}])
    assert (e.path, e.message) == ("annotations", "expected {'key_value_pair': [...]} (KeyValuePairs), "
                                                  "got [{'key': 'k', 'value': 'v'}]")
    e = error_of(validate_prop, "virtual-network", "virtual_network_properties", "l2")
    assert (e.path, e.message) == ("virtual_network_properties", "expected an object (VirtualNetworkType), got 'l2'")
    e = error_of(validate_prop, "virtual-network", "is_shared", "yes")
    assert (e.path, e.message) == ("is_shared", "expected true or false, got 'yes'")
    e = error_of(validate_prop, "virtual-network", "display_name", 5)
    assert (e.path, e.message) == ("display_name", "expected a string, got 5")
    e = error_of(validate_prop, "virtual-network", "annotations", {"key_value_pair": [{"key": "k"}, "kv"]})
    assert (e.path, e.message) == ("annotations.key_value_pair[1]", "expected an object (KeyValuePair), got 'kv'")


def test_integers_are_converted_like_r2005() -> None:
    out = validate_prop("virtual-network", "virtual_network_properties", {"vxlan_network_identifier": "42"})
    assert out == {"vxlan_network_identifier": 42}
    assert validate_simple(7.0, "integer", "x") == 7
    assert error_of(validate_simple, 7.5, "integer", "x").message == "expected an integer, got 7.5"


def test_unknown_sub_field() -> None:
    e = error_of(validate_prop, "virtual-network", "virtual_network_properties", {"forwarding_mode": "l2", "bogus": 1})
    assert e.path == "virtual_network_properties.bogus"
    assert e.message.startswith("unknown field of VirtualNetworkType, expected one of ['allow_transit',")
    e = error_of(validate_prop, "virtual-network", "virtual_network_properties", {"bogus": None})
    assert e.path == "virtual_network_properties.bogus"


def test_unknown_top_level_keys_are_kept() -> None:
    body = {"fq_name": ["d", "p", "vn"], "href": "http://x/virtual-network/u", "name": "vn", "parent_href": "h"}
    assert validate_object("virtual-network", body, "UPDATE") == body


def test_empty_values_pass_unchecked_like_r2005() -> None:
    props = {"forwarding_mode": "", "max_flows": 0, "mirror_destination": False, "rpf": None, "network_id": []}
    assert validate_prop("virtual-network", "virtual_network_properties", props) == props
    assert validate_prop("virtual-network", "is_shared", 0) == 0
    assert validate_prop("virtual-network", "virtual_network_category", "") == ""


def test_bad_ref_attr() -> None:
    good = {"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 24}, "default_gateway": None}
    bad = {"subnet": {"ip_prefix": "10.1.0.0", "ip_prefix_len": "abc"}}
    refs = [{"to": ["d", "p", "ipam"], "attr": {"ipam_subnets": [good, bad], "host_routes": None}}]
    e = error_of(validate_object, "virtual-network", {"network_ipam_refs": refs})
    assert (e.path, e.message) == ("network_ipam_refs[0].attr.ipam_subnets[1].subnet.ip_prefix_len",
                                   "expected an integer, got 'abc'")
    bad["subnet"]["ip_prefix_len"] = 33
    e = error_of(validate_refs, "virtual-network", "network_ipam_refs", refs)
    assert (e.path, e.message) == ("network_ipam_refs[0].attr.ipam_subnets[1].subnet.ip_prefix_len",
                                   "expected a prefix length for 10.1.0.0, got 33")
    bad["subnet"] = {"ip_prefix": "10.1.0.300", "ip_prefix_len": 16}
    e = error_of(validate_refs, "virtual-network", "network_ipam_refs", refs)
    assert e.path == "network_ipam_refs[0].attr.ipam_subnets[1].subnet.ip_prefix"
    e = error_of(validate_ref_attr, "interface-route-table", "service_instance_refs", {"interface_type": "middle"})
    assert (e.path, e.message) == ("service_instance_refs.attr.interface_type",
                                   "'middle' is not one of ['management', 'left', 'right'] or other[0-9]*")
    assert validate_ref_attr("interface-route-table", "service_instance_refs", {"interface_type": "other3"})
    e = error_of(validate_ref_attr, "virtual-network", "network_ipam_refs", {"ipam_subnets": [], "bogus": 1})
    assert e.path == "network_ipam_refs.attr.bogus"


def test_ref_shapes() -> None:
    assert validate_refs("virtual-network", "route_table_refs", [{"to": ["x"], "attr": "anything"}])
    assert validate_refs("virtual-network", "network_ipam_refs", None) is None
    assert validate_refs("virtual-network", "network_ipam_refs", [{"to": ["a"], "attr": None}])
    assert validate_refs("virtual-network", "network_ipam_refs", [{"to": ["a"]}]) == [{"to": ["a"]}]
    e = error_of(validate_refs, "virtual-network", "network_ipam_refs", {"to": ["a"]})
    assert (e.path, e.message) == ("network_ipam_refs", "expected a list of refs, got {'to': ['a']}")
    e = error_of(validate_refs, "virtual-network", "network_ipam_refs", [["a"]])
    assert e.path == "network_ipam_refs[0]"
    assert error_of(validate_refs, "virtual-network", "bogus_refs", []).path == "bogus_refs"


def test_subnets_are_normalised() -> None:
    out = validate_xsd({"subnet": {"ip_prefix": "10.0.0.5", "ip_prefix_len": "24"}}, "IpamSubnetType", "s")
    assert out["subnet"] == {"ip_prefix": "10.0.0.0", "ip_prefix_len": 24}
    out = validate_xsd({"ip_prefix": "2001:db8::1", "ip_prefix_len": 64}, "SubnetType", "s")
    assert out == {"ip_prefix": "2001:db8::", "ip_prefix_len": 64}


def test_active_standby_address_pairs_need_long_prefixes() -> None:
    pair = {"ip": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 16}, "address_mode": "active-standby"}
    wrapped = {"allowed_address_pair": [pair]}
    e = error_of(validate_prop, "virtual-machine-interface", "virtual_machine_interface_allowed_address_pairs", wrapped)
    assert (e.path, e.message) == (
        "virtual_machine_interface_allowed_address_pairs.allowed_address_pair[0].ip.ip_prefix_len",
        "IPv4 prefix length 16 is below 24 for active-standby")
    pair["address_mode"] = "active-active"
    validate_prop("virtual-machine-interface", "virtual_machine_interface_allowed_address_pairs", wrapped)


def test_communities() -> None:
    ok = {"community_attribute": ["65000:100", "no-export"]}
    assert validate_xsd(ok, "CommunityAttributes", "c") == ok
    e = error_of(validate_xsd, {"community_attribute": ["70000:1"]}, "CommunityAttributes", "c")
    assert (e.path, e.message) == ("c.community_attribute[0]", "ASN 70000 of community '70000:1' exceeds 65535")
    assert error_of(validate_xsd, {"community_attribute": ["x"]}, "CommunityAttributes", "c").path == \
        "c.community_attribute[0]"


def test_mandatory_property_on_create() -> None:
    e = error_of(validate_object, "loadbalancer-healthmonitor", {"fq_name": ["d", "p", "hm"]}, "CREATE")
    assert (e.path, e.message) == ("loadbalancer_healthmonitor_properties", "required property is missing")
    validate_object("loadbalancer-healthmonitor", {"display_name": "x"}, "UPDATE")
    validate_object("virtual-network", {"fq_name": ["d", "p", "vn"]}, "CREATE")  # 'required' not enforced


def test_perms2_update_needs_owner() -> None:
    e = error_of(validate_object, "virtual-network", {"perms2": {"owner_access": 7}}, "UPDATE")
    assert e.path == "perms2.owner"
    validate_object("virtual-network", {"perms2": {"owner": "x", "owner_access": 7}}, "UPDATE")


def test_collection_elements() -> None:
    assert validate_collection_element("virtual-network", "annotations", {"key": "k", "value": "v"})
    e = error_of(validate_collection_element, "virtual-network", "annotations", {"key": "k", "bogus": "v"})
    assert e.path == "annotations.key_value_pair.bogus"
    assert validate_collection_element("firewall-rule", "match_tags", "application") == "application"
    e = error_of(validate_collection_element, "firewall-rule", "match_tags", 5)
    assert (e.path, e.message) == ("match_tags.tag_list", "expected a string, got 5")
    e = error_of(validate_collection_element, "virtual-network", "display_name", "x")
    assert e.path == "display_name" and "neither a list nor a map" in e.message


def test_unknown_names() -> None:
    assert error_of(validate_prop, "virtual-network", "bogus", 1).path == "bogus"
    assert error_of(validate_object, "no-such-type", {}).path == "type"
    with pytest.raises(ValueError, match="CREATE or UPDATE"):
        validate_object("virtual-network", {}, "DELETE")


def test_inputs_are_not_modified() -> None:
    value = {"subnet": {"ip_prefix": "10.0.0.5", "ip_prefix_len": "24"}}
    validate_xsd(value, "IpamSubnetType", "s")
    assert value == {"subnet": {"ip_prefix": "10.0.0.5", "ip_prefix_len": "24"}}


# --------------------------------------------------------------------------------------------
# Names, parents, operations


def test_resolve_parent_type() -> None:
    assert resolve_parent_type("virtual-network", None, ["d", "p", "vn"]) == "project"
    assert resolve_parent_type("virtual-network", "project", ["d", "p", "vn"]) == "project"
    assert resolve_parent_type("access-control-list", "security_group", ["d", "p", "sg", "acl"]) == "security-group"
    assert resolve_parent_type("domain", None, ["d"]) is None
    assert resolve_parent_type("domain", "config-root", ["d"]) is None
    assert resolve_parent_type("tag", None, ["app=x"]) is None
    assert resolve_parent_type("tag", "project", ["d", "p", "app=x"]) == "project"
    e = error_of(resolve_parent_type, "address-group", None, ["d", "p", "ag"])
    assert (e.path, e.message) == ("parent_type", "missing, address-group needs one of ['policy-management', "
                                                  "'project']")
    e = error_of(resolve_parent_type, "virtual-network", "domain", ["d", "vn"])
    assert (e.path, e.message) == ("parent_type", "'domain' is not one of ['project']")
    assert error_of(resolve_parent_type, "virtual-network", None, ["vn"]).path == "fq_name"
    assert error_of(resolve_parent_type, "tag", None, ["d", "p", "app=x"]).path == "fq_name"


def test_validate_fq_name() -> None:
    assert validate_fq_name("virtual-network", ["d", "p", "vn"]) == ["d", "p", "vn"]
    assert error_of(validate_fq_name, "virtual-network", []).message == "missing"
    assert "':'" in error_of(validate_fq_name, "virtual-network", ["d", "p", "a:b"]).message
    assert validate_fq_name("route-target", ["target:64512:1"]) == ["target:64512:1"]
    assert "XML" in error_of(validate_fq_name, "virtual-network", ["d", "p", "a\x01"]).message
    assert error_of(validate_fq_name, "virtual-network", "d:p:vn").path == "fq_name"


def test_check_update_allowed() -> None:
    current = {"instance_ip_address": "10.0.0.3", "id_perms": {"enable": True}, "display_name": "a"}
    check_update_allowed("instance-ip", {"instance_ip_address": "10.0.0.3", "display_name": "b",
                                         "id_perms": {"enable": False}}, current)
    e = error_of(check_update_allowed, "instance-ip", {"instance_ip_address": "10.0.0.4"}, current)
    assert e.path == "instance_ip_address"
    assert e.message == "cannot be updated (operations CR): stored '10.0.0.3', got '10.0.0.4'"
    vn_current = {"virtual_network_network_id": 5, "provider_properties": {"segmentation_id": 10}}
    check_update_allowed("virtual-network", {"virtual_network_network_id": 5, "provider_properties": {
        "segmentation_id": 10, "physical_network": None}}, vn_current)
    assert error_of(check_update_allowed, "virtual-network", {"virtual_network_network_id": 6},
                    vn_current).path == "virtual_network_network_id"
