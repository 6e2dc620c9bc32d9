"""Validation of request bodies against the XSD metadata, as R2005's contrail-api does it.

R2005 (``api_server.py`` ``_validate_props_in_request``, ``_validate_refs_in_request``,
``_validate_complex_type``, ``_validate_simple_type``) is followed, including its leniency, so
that every body the real server accepts is accepted here:

- **Empty values are not checked.** A property, or a field of a complex value, that is
  ``None``, ``0``, ``''``, ``False``, ``[]`` or ``{}`` passes unchecked and is kept as sent
  (the client sends every attribute of an XSD value, nulls and XSD defaults such as
  ``max_flows: 0`` included). Elements of arrays are checked, except ``None``.
- **Unknown fields of a complex value are refused**, even with a null value (R2005 refuses
  them too, and the client never sends any). Unknown *top-level* keys are ignored: they are
  not properties (``href``, ``name``, ``parent_href`` sent back by contrail-api-cli).
- **Integers**: an integral string (``"24"``) is converted, as R2005 does; a float is taken
  only when integral (R2005 would truncate 3.5). Ranges come from ``restrictions``; types
  other than ``integer`` also get their XSD range (``unsignedLong`` >= 0), which R2005 omits.
- **Strings**: everything that is not an integer or boolean type is a string (``dateTime``,
  ``time``, ``IpAddressType`` ...), without format checks; an enum with an empty restriction
  list accepts any string. ``CommunityAttribute``, ``ServiceInterfaceType``, ``SubnetType``
  and active-standby ``AllowedAddressPair`` get R2005's special checks; subnets are
  normalised (``10.0.0.5/24`` -> ``10.0.0.0``, prefix length as int).
- **Required**: sub-field ``required`` markers are not enforced (R2005 does not, and e.g.
  ``IdPermsType.uuid`` is "required" but never sent by clients). Of the properties marked
  ``required`` only ``loadbalancer_healthmonitor_properties`` is checked, on create (R2005's
  ``_MANDATORY_PROPS``).
- **system-only / operations** are not enforced by ``validate_object`` (R2005 does not
  either; contrail-api-cli sends the whole read object back on update, and R2005 updates
  the 'CRD' ``network-ipam.ipam_subnets``). ``check_update_allowed`` is the opt-in check.

Every function returns a normalised copy and never modifies its input. Errors raise
``FieldError`` naming the field by its full path, e.g.
``network_ipam_refs[0].attr.ipam_subnets[1].subnet.ip_prefix_len``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from contrail_ha.services.config_api.schema import (
    CONFIG_ROOT,
    INT_TYPES,
    PropType,
    ResourceType,
    canonical,
    schema,
)

# R2005 ``_MANDATORY_PROPS``: the only 'required' properties it refuses to miss (on create).
MANDATORY_PROPS = frozenset({"loadbalancer_healthmonitor_properties"})

# Properties whose update R2005 merges specially (only some sub-fields change); never refused
# by ``check_update_allowed`` although their metadata says 'R'.
MERGED_PROPS = frozenset({"id_perms", "perms2"})

_COMMUNITY_NAMES = ("no-export", "accept-own", "no-advertise", "no-export-subconfed", "no-reoriginate")
_SERVICE_INTERFACES = ("management", "left", "right")
# cfgm_common.illegal_xml_chars_RE
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_UUID_FORM = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Name limits (docs/api-limits.md). The tightest consumer is the config log: its object id
# ``<obj_type>:<fq:name>`` may hold 1024 characters, and the longest object type has 36, so the
# joined fq_name stays at or below 900. The Cassandra fq-name column ``<fq:name>:<uuid>`` is then
# at most 3.6 KiB of UTF-8 (limit 64 KiB) and the escaped ZooKeeper lock path ~11 KiB.
MAX_NAME_CHARS = 255  # one fq_name element
MAX_FQ_NAME_CHARS = 900  # the fq_name joined with ':'
MAX_FQ_NAME_ELEMENTS = 8  # the deepest parent chain has 5 (floating-ip)
MAX_REFS = 1000  # refs of one ref field in one create/update
# perms2.share: ``[tenant:|domain:]<id>``
MAX_SHARE_ID_CHARS = 255
MAX_SHARES = 1000
SHARE_TYPES = ("tenant", "domain")
_INT_STRING = re.compile(r"\s*[+-]?\d+\s*")


class FieldError(ValueError):
    """A value refused; ``path`` names the field fully, ``message`` says expected vs got."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def show(value: Any, limit: int = 80) -> str:
    """A value for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _resource(rtype: ResourceType | str) -> ResourceType:
    if isinstance(rtype, ResourceType):
        return rtype
    found = schema().get(rtype)
    if found is None:
        raise FieldError("type", f"unknown resource type {rtype!r}")
    return found


# --------------------------------------------------------------------------------------------
# Simple values


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, int):  # bool included, kept as sent (R2005)
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_STRING.fullmatch(value):
        return int(value)
    raise FieldError(path, f"expected an integer, got {show(value)}")


def _check_community(value: str, path: str) -> None:
    if value in _COMMUNITY_NAMES:
        return
    if re.match("[0-9]+:[0-9]+", value) is None:
        raise FieldError(path, f"{value!r} is not a community: number:number or one of {list(_COMMUNITY_NAMES)}")
    asn = int(value.split(":")[0])
    if asn > 65535:
        raise FieldError(path, f"ASN {asn} of community {value!r} exceeds 65535")


def _check_service_interface(value: str, path: str) -> None:
    if value not in _SERVICE_INTERFACES and re.match("other[0-9]*", value) is None:
        raise FieldError(path, f"{value!r} is not one of {list(_SERVICE_INTERFACES)} or other[0-9]*")


def validate_simple(value: Any, xsd_type: str, path: str, *, simple_type: str | None = None,
                    restriction_type: str | None = None, restrictions: Sequence[Any] | None = None) -> Any:
    """A value of an XSD simple type (``string``, ``integer``, ``boolean``, ``unsignedLong`` ...).

    None is accepted. Returns the value, integers converted from integral strings.
    """
    if value is None:
        return None
    if xsd_type in INT_TYPES:
        number = _to_int(value, path)
        if restrictions and restriction_type == "enum":
            if number not in restrictions:
                raise FieldError(path, f"{number} is not one of {list(restrictions)}")
            return number
        bounds = (int(restrictions[0]), int(restrictions[1])) if restrictions else INT_TYPES[xsd_type]
        if bounds is not None and not bounds[0] <= number <= bounds[1]:
            raise FieldError(path, f"{number} is not between {bounds[0]} and {bounds[1]}")
        return number
    if xsd_type == "boolean":
        if not isinstance(value, bool):
            raise FieldError(path, f"expected true or false, got {show(value)}")
        return value
    if not isinstance(value, str):
        raise FieldError(path, f"expected a string, got {show(value)}")
    if simple_type == "CommunityAttribute":
        _check_community(value, path)
    elif simple_type == "ServiceInterfaceType":
        _check_service_interface(value, path)
    elif restrictions and value not in restrictions:
        raise FieldError(path, f"{value!r} is not one of {list(restrictions)}")
    return value


# --------------------------------------------------------------------------------------------
# Complex values


def _normalise_subnet(value: dict[str, Any], path: str) -> dict[str, Any]:
    """R2005 ``_validate_subnet_type``: ip_prefix/ip_prefix_len must form a network; the
    prefix becomes the network address and the length an int."""
    prefix, length = value.get("ip_prefix"), value.get("ip_prefix_len")
    try:
        if not isinstance(prefix, (str, int)) or isinstance(prefix, bool):
            raise ValueError(prefix)
        ipaddress.ip_address(prefix)
    except ValueError:
        raise FieldError(_join(path, "ip_prefix"), f"expected an IP address, got {show(prefix)}") from None
    try:
        network = ipaddress.ip_network(f"{prefix}/{length}", strict=False)
    except ValueError:
        raise FieldError(_join(path, "ip_prefix_len"),
                         f"expected a prefix length for {prefix}, got {show(length)}") from None
    return {**value, "ip_prefix": str(network.network_address), "ip_prefix_len": network.prefixlen}


def _check_allowed_address_pair(value: dict[str, Any], path: str) -> None:
    """R2005: an active-standby pair needs a /24 (IPv4) or /120 (IPv6) or longer prefix."""
    if value.get("address_mode") != "active-standby":
        return
    ip = value.get("ip")
    if not isinstance(ip, dict):
        raise FieldError(_join(path, "ip"), f"an active-standby pair needs an ip, got {show(ip)}")
    prefix = ip.get("ip_prefix")
    try:
        if not isinstance(prefix, (str, int)) or isinstance(prefix, bool):
            raise ValueError(prefix)
        version = ipaddress.ip_address(prefix).version
    except ValueError:
        raise FieldError(_join(path, "ip.ip_prefix"), f"expected an IP address, got {show(prefix)}") from None
    length = _to_int(ip.get("ip_prefix_len"), _join(path, "ip.ip_prefix_len"))
    minimum = 120 if version == 6 else 24
    if length < minimum:
        raise FieldError(_join(path, "ip.ip_prefix_len"),
                         f"IPv{version} prefix length {length} is below {minimum} for active-standby")


def validate_xsd(value: Any, type_name: str, path: str) -> Any:
    """A value of the XSD type ``type_name``, recursively; None is accepted.

    A complex value must be an object holding only fields of its type.
    """
    if value is None:
        return None
    xsd = schema().xsd(type_name)
    if xsd is None:  # a simple element type (e.g. the strings of FirewallRuleMatchTagsType)
        return validate_simple(value, type_name, path)
    if not isinstance(value, dict):
        raise FieldError(path, f"expected an object ({type_name}), got {show(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        attr = xsd.fields.get(key)
        if attr is None:
            raise FieldError(_join(path, str(key)), f"unknown field of {type_name}, expected one of {list(xsd.fields)}")
        here = _join(path, key)
        if not item:  # R2005: empty values are not checked
            out[key] = item
        elif attr.is_array:
            if not isinstance(item, list):
                raise FieldError(here, f"expected a list of {attr.attr_type}, got {show(item)}")
            out[key] = [_validate_item(attr.attr_type, attr.is_complex, attr.simple_type, attr.restriction_type,
                                       attr.restrictions, element, f"{here}[{i}]")
                        for i, element in enumerate(item)]
        else:
            out[key] = _validate_item(attr.attr_type, attr.is_complex, attr.simple_type, attr.restriction_type,
                                      attr.restrictions, item, here)
    # R2005's two type-specific checks, after the fields (so a bad field is named precisely)
    if out and type_name == "SubnetType":
        out = _normalise_subnet(out, path)
    if out and type_name == "AllowedAddressPair":
        _check_allowed_address_pair(out, path)
    if type_name == "ShareType" and out.get("tenant") is not None:
        check_share_tenant(out["tenant"], _join(path, "tenant"))
    if type_name == "PermType2" and isinstance(out.get("share"), list) and len(out["share"]) > MAX_SHARES:
        raise FieldError(_join(path, "share"), f"{len(out['share'])} entries, at most {MAX_SHARES} are allowed")
    return out


def check_share_tenant(value: Any, path: str) -> tuple[str, str]:
    """A perms2 share's ``tenant``: ``[tenant:|domain:]<id>`` (R2005 ``shareinfo_from_perms2_tenant``),
    the id a non-empty printable string of at most ``MAX_SHARE_ID_CHARS``; returns (share_type, id).
    It becomes part of an ``obj_shared_table`` column name, hence the bound."""
    if not isinstance(value, str) or not value:
        raise FieldError(path, f"expected [tenant:|domain:]<project or domain id>, got {show(value)}")
    share_type, sep, share_id = value.partition(":")
    if not sep:
        share_type, share_id = "tenant", value
    if share_type not in SHARE_TYPES:
        raise FieldError(path, f"share type {share_type!r} is not one of {list(SHARE_TYPES)}")
    if not share_id or len(share_id) > MAX_SHARE_ID_CHARS or not share_id.isprintable() or ":" in share_id:
        raise FieldError(path, f"expected a {share_type} id of 1-{MAX_SHARE_ID_CHARS} printable characters "
                               f"without ':', got {show(share_id)}")
    return share_type, share_id


def _validate_item(attr_type: str, is_complex: bool, simple_type: str | None, restriction_type: str | None,
                   restrictions: Sequence[Any] | None, value: Any, path: str) -> Any:
    if is_complex:
        return validate_xsd(value, attr_type, path)
    return validate_simple(value, attr_type, path, simple_type=simple_type, restriction_type=restriction_type,
                           restrictions=restrictions)


# --------------------------------------------------------------------------------------------
# Properties and refs of a resource


def _prop(rtype: ResourceType, name: str) -> PropType:
    prop = rtype.props.get(name)
    if prop is None:
        raise FieldError(name, f"not a property of {rtype.resource_type}")
    return prop


def validate_prop(rtype: ResourceType | str, name: str, value: Any, *, path: str | None = None) -> Any:
    """The value of property ``name``; list/map properties in their wrapper form
    (``{"key_value_pair": [...]}``). Empty values pass unchecked, as in R2005."""
    rt = _resource(rtype)
    prop = _prop(rt, name)
    path = path or name
    if not value:
        return value
    if not prop.is_complex:
        return validate_simple(value, prop.xsd_type, path, simple_type=prop.simple_type,
                               restriction_type=prop.restriction_type, restrictions=prop.restrictions)
    if not isinstance(value, dict):
        shape = f"{{{prop.wrapper!r}: [...]}}" if prop.collection else "an object"
        raise FieldError(path, f"expected {shape} ({prop.xsd_type}), got {show(value)}")
    return validate_xsd(value, prop.xsd_type, path)


def validate_collection_element(rtype: ResourceType | str, name: str, value: Any, *, path: str | None = None) -> Any:
    """One element of list/map property ``name``, as ``prop-collection-update`` carries it."""
    rt = _resource(rtype)
    prop = _prop(rt, name)
    if prop.collection is None or prop.element_type is None:
        raise FieldError(name, f"neither a list nor a map property of {rt.resource_type}")
    return validate_xsd(value, prop.element_type, path or _join(name, prop.wrapper or ""))


def validate_ref_attr(rtype: ResourceType | str, ref_field: str, attr: Any, *, path: str | None = None) -> Any:
    """The ``attr`` of one ref in ``ref_field``; ignored (returned as is) when the ref type
    carries no attr, as in R2005."""
    rt = _resource(rtype)
    ref = rt.refs.get(ref_field)
    if ref is None:
        raise FieldError(ref_field, f"not a reference field of {rt.resource_type}")
    if ref.attr_type is None:
        return attr
    return validate_xsd(attr, ref.attr_type, path or f"{ref_field}.attr")


def validate_refs(rtype: ResourceType | str, ref_field: str, refs: Any, *, path: str | None = None) -> Any:
    """A ref list ``[{"to", "uuid"?, "attr"?}, ...]``: its shape and each ``attr``.

    ``to``/``uuid`` are left to the caller (they need the store). A missing ``attr`` is
    taken as null (R2005 would refuse it; clients always send it).
    """
    rt = _resource(rtype)
    if ref_field not in rt.refs:
        raise FieldError(ref_field, f"not a reference field of {rt.resource_type}")
    path = path or ref_field
    if refs is None:
        return None
    if not isinstance(refs, list):
        raise FieldError(path, f"expected a list of refs, got {show(refs)}")
    if len(refs) > MAX_REFS:
        raise FieldError(path, f"{len(refs)} refs, at most {MAX_REFS} are allowed per request")
    out = []
    for i, ref in enumerate(refs):
        here = f"{path}[{i}]"
        if not isinstance(ref, dict):
            raise FieldError(here, f"expected a ref {{'to', 'uuid', 'attr'}}, got {show(ref)}")
        ref = dict(ref)
        to = ref.get("to")
        if isinstance(to, dict):  # client quirk of set_<ref>_list([obj]): {"to": {"uuid": ...}}
            check_uuid(to.get("uuid"), f"{here}.to.uuid", optional=True)
        elif to is not None:
            if not isinstance(to, list) or not to or not all(isinstance(x, str) for x in to):
                raise FieldError(f"{here}.to", f"expected an fq_name (a list of strings), got {show(to)}")
            check_fq_name_limits(to, f"{here}.to")
        check_uuid(ref.get("uuid"), f"{here}.uuid", optional=True)
        if "attr" in ref:
            ref["attr"] = validate_ref_attr(rt, ref_field, ref["attr"], path=f"{here}.attr")
        out.append(ref)
    return out


def validate_object(rtype: ResourceType | str, obj: Mapping[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    """A create (``CREATE``) or update (``UPDATE``) body, without its type wrapper.

    Checks every property and ref present; other keys are kept untouched. Returns a copy
    with normalised values.
    """
    rt = _resource(rtype)
    op = operation.upper()
    if op not in ("CREATE", "UPDATE"):
        raise ValueError(f"operation must be CREATE or UPDATE, not {operation!r}")
    if not isinstance(obj, Mapping):
        raise FieldError(rt.resource_type, f"expected an object, got {show(obj)}")
    if op == "CREATE":
        for name in sorted(MANDATORY_PROPS & rt.props.keys()):
            if not obj.get(name):
                raise FieldError(name, "required property is missing")
    perms2 = obj.get("perms2")
    if op == "UPDATE" and isinstance(perms2, dict) and "owner" not in perms2:
        raise FieldError("perms2.owner", "owner in perms2 must be present")
    out = dict(obj)
    for name in rt.props:
        if name in obj:
            out[name] = validate_prop(rt, name, obj[name])
    for name in rt.refs:
        if name in obj:
            out[name] = validate_refs(rt, name, obj[name])
    return out


# --------------------------------------------------------------------------------------------
# Names, parents, operations


def is_uuid(value: object) -> bool:
    """A uuid as every stored object has one (canonical 8-4-4-4-12 hex)."""
    return isinstance(value, str) and _UUID_FORM.fullmatch(value) is not None


def check_uuid(value: Any, path: str, *, optional: bool = False) -> str | None:
    """A uuid field: a string in UUID form (None or '' when ``optional``)."""
    if optional and (value is None or value == ""):
        return None
    if not isinstance(value, str):
        raise FieldError(path, f"expected a uuid string, got {show(value)}")
    if not is_uuid(value):
        raise FieldError(path, f"{show(value)} is not a UUID")
    return value


def check_fq_name_limits(fq_name: Sequence[str], path: str = "fq_name") -> None:
    """The length limits of any fq_name (created or looked up): at most ``MAX_FQ_NAME_ELEMENTS``
    non-empty elements of at most ``MAX_NAME_CHARS``, joined at most ``MAX_FQ_NAME_CHARS``, and
    no lone surrogate (not encodable). Checked before anything is written or looked up."""
    if len(fq_name) > MAX_FQ_NAME_ELEMENTS:
        raise FieldError(path, f"{len(fq_name)} elements, at most {MAX_FQ_NAME_ELEMENTS} are allowed")
    for i, part in enumerate(fq_name):
        if not part:
            raise FieldError(f"{path}[{i}]", "a name must not be empty")
        if len(part) > MAX_NAME_CHARS:
            raise FieldError(f"{path}[{i}]", f"name of {len(part)} characters, at most {MAX_NAME_CHARS} are allowed")
        if _SURROGATES.search(part):
            raise FieldError(f"{path}[{i}]", f"name {show(part)} holds a lone surrogate")
    total = sum(len(p) for p in fq_name) + len(fq_name) - 1
    if total > MAX_FQ_NAME_CHARS:
        raise FieldError(path, f"fq_name of {total} characters (joined with ':'), "
                               f"at most {MAX_FQ_NAME_CHARS} are allowed")


def validate_fq_name(rtype: ResourceType | str, fq_name: Any) -> list[str]:
    """A create's ``fq_name`` (R2005 ``_post_validate``): a non-empty list of strings whose
    last element has no ':' (route-target excepted) and no illegal XML characters, within
    the name limits (``check_fq_name_limits``)."""
    rt = _resource(rtype)
    if not fq_name:
        raise FieldError("fq_name", "missing")
    if not isinstance(fq_name, list) or not all(isinstance(part, str) for part in fq_name):
        raise FieldError("fq_name", f"expected a list of strings, got {show(fq_name)}")
    check_fq_name_limits(fq_name)
    name = fq_name[-1]
    if _ILLEGAL_XML.search(name):
        raise FieldError("fq_name", f"name {name!r} has illegal XML characters")
    if ":" in name and rt.resource_type != "route-target":
        raise FieldError("fq_name", f"name {name!r} contains ':'")
    return list(fq_name)


def resolve_parent_type(rtype: ResourceType | str, parent_type: str | None, fq_name: Sequence[str]) -> str | None:
    """The parent type of a create (R2005 ``validate_parent_type``); None for a top-level object.

    ``parent_type`` may use either spelling; missing, it defaults to the single parent type,
    or to config-root when that is one of several, and is refused otherwise.
    """
    rt = _resource(rtype)
    allowed = list(rt.parent_types)
    if parent_type:
        if not isinstance(parent_type, str) or canonical(parent_type) not in rt.parent_types:
            raise FieldError("parent_type", f"{show(parent_type)} is not one of {allowed}")
        resolved = canonical(parent_type)
    elif rt.default_parent_type is None:
        raise FieldError("parent_type", f"missing, {rt.resource_type} needs one of {allowed}")
    else:
        resolved = rt.default_parent_type
    if resolved == CONFIG_ROOT:
        if len(fq_name) != 1:
            raise FieldError("fq_name", f"{list(fq_name)} must have one element for an object with no parent")
        return None
    if len(fq_name) < 2:
        raise FieldError("fq_name", f"{list(fq_name)} must have at least two elements under a {resolved}")
    return resolved


def _essence(value: Any) -> Any:
    """A value with null fields dropped, an empty object as null (for change detection)."""
    if isinstance(value, dict):
        kept = {k: e for k, v in value.items() if (e := _essence(v)) is not None}
        return kept or None
    if isinstance(value, list):
        return [_essence(v) for v in value]
    return value


def check_update_allowed(rtype: ResourceType | str, update: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Opt-in, stricter than R2005: refuse changing a property whose ``operations`` lack 'U'.

    Sending back the stored value is allowed (contrail-api-cli sends the whole object);
    ``id_perms`` and ``perms2`` are merged by the server and never refused here.
    """
    rt = _resource(rtype)
    for name, value in update.items():
        prop = rt.props.get(name)
        if prop is None or prop.updatable or name in MERGED_PROPS:
            continue
        stored = current.get(name)
        if _essence(value) != _essence(stored):
            raise FieldError(name, f"cannot be updated (operations {prop.operations}): "
                                   f"stored {show(stored)}, got {show(value)}")
