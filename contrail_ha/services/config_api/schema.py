"""The VNC configuration schema, read from the metadata the real ``vnc_api`` client ships.

Nothing here is hand-written per type: the 121 resource types come from
``vnc_api.gen.vnc_api_client_gen.all_resource_type_tuples`` and the class attributes of
``vnc_api.gen.resource_common``; the 215 XSD types from ``vnc_api.gen.resource_xsd``.
Everything is frozen (dataclasses with read-only mappings); ``schema()`` loads it once.

Names: a *resource type* is the hyphen form used in URLs and JSON wrappers
(``virtual-network``), an *object type* the underscore form (``virtual_network``). Every
lookup accepts both.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CONFIG_ROOT = "config-root"

# XSD simple types the generated metadata uses for integers (``attr_type``/``xsd_type``), with
# the value range XSD implies (None: unbounded). R2005 itself only knows integer/unsignedLong.
INT_TYPES: Mapping[str, tuple[int, int] | None] = MappingProxyType({
    "integer": None,
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-(2**7), 2**7 - 1),
    "unsignedLong": (0, 2**64 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedByte": (0, 2**8 - 1),
    "nonNegativeInteger": (0, 2**64 - 1),
    "positiveInteger": (1, 2**64 - 1),
})


def canonical(name: str) -> str:
    """A type name in resource-type (hyphen) form: ``virtual_network`` -> ``virtual-network``."""
    return name.replace("_", "-")


def _text(description: Any) -> str:
    """The generator stores descriptions as a list of lines."""
    if isinstance(description, list | tuple):
        return " ".join(str(line) for line in description)
    return "" if description is None else str(description)


def _restrictions(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


# --------------------------------------------------------------------------------------------
# XSD types


@dataclass(frozen=True)
class AttrType:
    """One field of an XSD complex type (``attr_field_type_vals[name]``)."""

    name: str
    attr_type: str  # XSD class name when complex, else the XSD simple type (string, integer, ...)
    is_complex: bool
    is_array: bool
    simple_type: str | None  # the named simple type (ForwardingModeType, xsd:string, ...)
    restriction_type: str | None  # 'enum' | 'range' | None
    restrictions: tuple[Any, ...] | None  # enum values or (low, high); may be empty
    required: str | None  # 'true' | 'required' | 'optional' | 'exclusive' | 'system-only' | None
    description: str


@dataclass(frozen=True, eq=False)
class XsdType:
    """An XSD complex type (a class of ``vnc_api.gen.resource_xsd``)."""

    name: str
    fields: Mapping[str, AttrType]  # in ``attr_fields`` order (the wire order of the client)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.fields)


# --------------------------------------------------------------------------------------------
# Resource types


@dataclass(frozen=True)
class PropType:
    """A property of a resource type (``prop_field_types[name]`` plus list/map facts)."""

    name: str
    xsd_type: str  # XSD class name when complex, else string/integer/boolean/unsignedLong
    is_complex: bool
    simple_type: str | None
    restriction_type: str | None
    restrictions: tuple[Any, ...] | None
    required: str  # 'optional' | 'required' | 'system-only' | 'admin-only'
    operations: str  # 'CRUD' | 'CRD' | 'CR' | 'R'
    default: Any
    description: str
    collection: str | None = None  # 'list' | 'map' | None
    has_wrapper: bool = False  # sent as {wrapper: [elements]}
    wrapper: str | None = None  # the element field name, e.g. 'key_value_pair'
    element_type: str | None = None  # XSD type (or simple type) of one element
    element_is_complex: bool = False
    map_key: str | None = None  # key field of one map element, e.g. 'key'

    @property
    def is_list(self) -> bool:
        return self.collection == "list"

    @property
    def is_map(self) -> bool:
        return self.collection == "map"

    @property
    def system_only(self) -> bool:
        return self.required == "system-only"

    @property
    def creatable(self) -> bool:
        return "C" in self.operations

    @property
    def updatable(self) -> bool:
        return "U" in self.operations


@dataclass(frozen=True)
class RefType:
    """A reference field, e.g. ``network_ipam_refs`` (``ref_field_types[name]``)."""

    name: str
    target: str  # resource type referred to
    attr_type: str | None  # XSD type of the ref's ``attr`` (None: the ref carries no attr)
    is_derived: bool
    description: str


@dataclass(frozen=True)
class BackRefType:
    """A back-reference field, e.g. ``virtual_machine_interface_back_refs``."""

    name: str
    source: str  # resource type holding the ref
    attr_type: str | None
    is_derived: bool


@dataclass(frozen=True)
class ChildType:
    """A children field, e.g. ``routing_instances``."""

    name: str
    child_type: str
    is_derived: bool  # created by the system; ignored by the delete check


@dataclass(frozen=True, eq=False)
class ResourceType:
    """One of the 121 resource types."""

    resource_type: str
    object_type: str
    class_name: str
    parent_types: tuple[str, ...]
    props: Mapping[str, PropType]
    refs: Mapping[str, RefType]
    back_refs: Mapping[str, BackRefType]
    children: Mapping[str, ChildType]

    @property
    def collection(self) -> str:
        """The collection name the client uses: ``<type>s``, naively (``network-policys``)."""
        return f"{self.resource_type}s"

    @property
    def is_top_level(self) -> bool:
        """Objects of this type may live directly under config-root (fq_name ``[name]``)."""
        return CONFIG_ROOT in self.parent_types

    @property
    def default_parent_type(self) -> str | None:
        """The parent type used when a create names none; None when one must be given.

        A single parent type is the default; with several, R2005 treats a missing
        ``parent_type`` as config-root when that is one of them, and refuses otherwise.
        """
        if len(self.parent_types) == 1:
            return self.parent_types[0]
        if CONFIG_ROOT in self.parent_types:
            return CONFIG_ROOT
        return None

    @property
    def needs_parent_type(self) -> bool:
        """A create must carry an explicit ``parent_type``."""
        return self.default_parent_type is None

    @functools.cached_property
    def list_props(self) -> Mapping[str, PropType]:
        return MappingProxyType({n: p for n, p in self.props.items() if p.is_list})

    @functools.cached_property
    def map_props(self) -> Mapping[str, PropType]:
        return MappingProxyType({n: p for n, p in self.props.items() if p.is_map})

    @functools.cached_property
    def derived_children(self) -> frozenset[str]:
        return frozenset(n for n, c in self.children.items() if c.is_derived)

    @functools.cached_property
    def derived_back_refs(self) -> frozenset[str]:
        return frozenset(n for n, b in self.back_refs.items() if b.is_derived)

    @functools.cached_property
    def field_names(self) -> frozenset[str]:
        """Every prop, ref, back-ref and children field (what ``fields=`` may name)."""
        return frozenset(self.props) | frozenset(self.refs) | frozenset(self.back_refs) | frozenset(self.children)

    def ref_to(self, target: str) -> RefType | None:
        """The ref field pointing at ``target`` (either spelling), as ``ref-update`` names it."""
        return self.refs.get(f"{target.replace('-', '_')}_refs")


# --------------------------------------------------------------------------------------------
# Homepage action links


@dataclass(frozen=True)
class ActionLink:
    """An ``rel=action`` homepage link; ``methods`` are all HTTP methods its route accepts."""

    name: str
    uri: str
    method: str  # the one advertised in the link
    methods: tuple[str, ...]


def _action(name: str, uri: str, method: str = "POST", *others: str) -> ActionLink:
    return ActionLink(name, uri, method, (method, *others))


# R2005 ``_ACTION_RESOURCES`` and the routes added in its ``__init__``, in its order, plus the
# integer-pool calls of the client that R2005 lacks. ``obj-cache`` is advertised twice by R2005
# (GET and POST); here once.
ACTIONS: tuple[ActionLink, ...] = (
    _action("prop-collection-get", "/prop-collection-get", "GET"),
    _action("prop-collection-update", "/prop-collection-update"),
    _action("ref-update", "/ref-update"),
    _action("ref-relax-for-delete", "/ref-relax-for-delete"),
    _action("name-to-id", "/fqname-to-id"),
    _action("id-to-name", "/id-to-fqname"),
    _action("useragent-keyvalue", "/useragent-kv"),
    _action("database-check", "/db-check"),
    _action("fetch-records", "/fetch-records"),
    _action("start-profile", "/start-profile"),
    _action("stop-profile", "/stop-profile"),
    _action("list-bulk-collection", "/list-bulk-collection"),
    _action("obj-perms", "/obj-perms", "GET"),
    _action("chown", "/chown"),
    _action("chmod", "/chmod"),
    _action("aaa-mode", "/aaa-mode", "PUT", "GET"),
    _action("obj-cache", "/obj-cache", "GET", "POST"),
    _action("execute-job", "/execute-job"),
    _action("abort-job", "/abort-job"),
    _action("amqp-publish", "/amqp-publish"),
    _action("amqp-request", "/amqp-request"),
    _action("hbs-get", "/hbs-get"),
    _action("watch", "/watch", "GET"),
    _action("virtual-network-ip-alloc", "/virtual-network/%s/ip-alloc"),
    _action("virtual-network-ip-free", "/virtual-network/%s/ip-free"),
    _action("virtual-network-subnet-ip-count", "/virtual-network/%s/subnet-ip-count"),
    _action("set-tag", "/set-tag"),
    _action("security-policy-draft", "/security-policy-draft"),
    _action("int-pools", "/int-pools", "POST", "DELETE"),
    _action("int-pool", "/int-pool", "POST", "GET", "DELETE"),
)


# The actions this server implements (server.py's routes), the only ones the homepage advertises:
# a client that finds an action link must be able to call it. The others of ``ACTIONS``
# (job, AMQP, draft, profiling, int-pool calls ...) are left out, so that the client raises
# its own clear KeyError instead of getting a 404 (tests/unit/test_config_inputs.py checks
# that each one has a route).
SERVED_ACTIONS = frozenset({
    "prop-collection-get", "prop-collection-update", "ref-update", "ref-relax-for-delete", "name-to-id",
    "id-to-name", "useragent-keyvalue", "list-bulk-collection", "obj-perms", "chown", "chmod", "aaa-mode",
    "virtual-network-ip-alloc", "virtual-network-ip-free", "virtual-network-subnet-ip-count", "set-tag",
})


def _link(rel: str, base: str, uri: str, name: str, method: str | None) -> dict[str, Any]:
    return {"link": {"rel": rel, "href": base + uri, "name": name, "method": method}}


# --------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True, eq=False)
class Schema:
    """All resource and XSD types; lookups accept either spelling of a type name."""

    types: Mapping[str, ResourceType]  # by resource type, sorted
    xsd_types: Mapping[str, XsdType]  # by class name
    actions: tuple[ActionLink, ...] = ACTIONS
    _collections: Mapping[str, ResourceType] = field(default_factory=dict, repr=False)

    def get(self, name: str) -> ResourceType | None:
        """The resource type named ``name`` (``virtual-network`` or ``virtual_network``)."""
        return self.types.get(canonical(name))

    def __getitem__(self, name: str) -> ResourceType:
        rtype = self.get(name)
        if rtype is None:
            raise KeyError(name)
        return rtype

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical(name) in self.types

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self.types.values())

    def __len__(self) -> int:
        return len(self.types)

    def by_collection(self, collection: str) -> ResourceType | None:
        """The resource type whose collection is ``collection`` (``virtual-networks``)."""
        return self._collections.get(canonical(collection))

    def xsd(self, name: str) -> XsdType | None:
        """The XSD complex type ``name`` (``VirtualNetworkType``); None for simple types."""
        return self.xsd_types.get(name)

    def action(self, name: str) -> ActionLink | None:
        return next((a for a in self.actions if a.name == name), None)

    def homepage(self, base_url: str) -> dict[str, Any]:
        """``GET /`` as the client requires it: every type's collection and resource-base link
        and the link of every action served (``SERVED_ACTIONS``), all under ``base_url`` (any
        trailing slash is dropped)."""
        base = base_url.rstrip("/")
        links = [_link("root", base, f"/{CONFIG_ROOT}", CONFIG_ROOT, None)]
        links += [_link("collection", base, f"/{t.collection}", t.resource_type, None) for t in self]
        links += [_link("resource-base", base, f"/{t.resource_type}", t.resource_type, None) for t in self]
        links += [_link("action", base, a.uri, a.name, a.method) for a in self.actions if a.name in SERVED_ACTIONS]
        return {"href": base, "links": links}


def _load_xsd(resource_xsd: Any) -> dict[str, XsdType]:
    out: dict[str, XsdType] = {}
    for name in sorted(vars(resource_xsd)):
        cls = getattr(resource_xsd, name)
        if not isinstance(cls, type) or not hasattr(cls, "attr_field_type_vals"):
            continue
        vals = cls.attr_field_type_vals
        order = [f for f in getattr(cls, "attr_fields", []) if f in vals]
        order += [f for f in vals if f not in order]
        fields = {}
        for f in order:
            v = vals[f]
            fields[f] = AttrType(
                name=f, attr_type=v["attr_type"], is_complex=bool(v["is_complex"]),
                is_array=bool(v.get("is_array", False)), simple_type=v.get("simple_type"),
                restriction_type=v.get("restriction_type"), restrictions=_restrictions(v.get("restrictions")),
                required=v.get("required"), description=_text(v.get("description")))
        out[name] = XsdType(name, MappingProxyType(fields))
    return out


def _prop(cls: Any, name: str, xsd: Mapping[str, XsdType]) -> PropType:
    t = cls.prop_field_types[name]
    extra: dict[str, Any] = {}
    if name in cls.prop_list_fields or name in cls.prop_map_fields:
        is_list = name in cls.prop_list_fields
        wrapper_type = xsd[t["xsd_type"]]
        element = next(iter(wrapper_type.fields.values()))
        has_wrapper = (cls.prop_list_field_has_wrappers if is_list else cls.prop_map_field_has_wrappers)[name]
        extra = {"collection": "list" if is_list else "map", "has_wrapper": bool(has_wrapper),
                 "wrapper": element.name, "element_type": element.attr_type,
                 "element_is_complex": element.is_complex,
                 "map_key": None if is_list else cls.prop_map_field_key_names[name]}
    return PropType(
        name=name, xsd_type=t["xsd_type"], is_complex=bool(t["is_complex"]), simple_type=t.get("simple_type"),
        restriction_type=t.get("restriction_type"), restrictions=_restrictions(t.get("restrictions")),
        required=t["required"], operations=t["operations"], default=t.get("default"),
        description=_text(t.get("description")), **extra)


def _resource(cls: Any, xsd: Mapping[str, XsdType]) -> ResourceType:
    props = {n: _prop(cls, n, xsd) for n in sorted(cls.prop_fields)}
    refs = {}
    for n in sorted(cls.ref_fields):
        target, attr, derived, *rest = cls.ref_field_types[n]
        refs[n] = RefType(n, target, None if attr in (None, "None") else attr, bool(derived),
                          _text(rest[0] if rest else None))
    back_refs = {}
    for n in sorted(cls.backref_fields):
        source, attr, derived = cls.backref_field_types[n][:3]
        back_refs[n] = BackRefType(n, source, None if attr in (None, "None") else attr, bool(derived))
    children = {}
    for n in sorted(cls.children_fields):
        child, derived = cls.children_field_types[n][:2]
        children[n] = ChildType(n, child, bool(derived))
    return ResourceType(
        resource_type=cls.resource_type, object_type=cls.object_type, class_name=cls.__name__,
        parent_types=tuple(cls.parent_types), props=MappingProxyType(props), refs=MappingProxyType(refs),
        back_refs=MappingProxyType(back_refs), children=MappingProxyType(children))


def load() -> Schema:
    """Read the schema from the installed ``vnc_api`` package (prefer ``schema()``)."""
    from vnc_api.gen import resource_common, resource_xsd, vnc_api_client_gen

    xsd = _load_xsd(resource_xsd)
    classes: dict[str, Any] = {}
    for c in vars(resource_common).values():
        name = getattr(c, "resource_type", None) if isinstance(c, type) else None
        if isinstance(name, str):
            classes[name] = c
    types: dict[str, ResourceType] = {}
    for object_type, resource_type in sorted(vnc_api_client_gen.all_resource_type_tuples, key=lambda t: t[1]):
        cls = classes[resource_type]
        if cls.object_type != object_type:
            raise ValueError(f"vnc_api metadata: {resource_type} has object_type {cls.object_type}, not {object_type}")
        types[resource_type] = _resource(cls, xsd)
    collections = {t.collection: t for t in types.values()}
    return Schema(MappingProxyType(types), MappingProxyType(xsd), ACTIONS, MappingProxyType(collections))


@functools.cache
def schema() -> Schema:
    """The schema, loaded once per process."""
    return load()
