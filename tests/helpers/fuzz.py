"""A property-based fuzzer of contrail-api (hypothesis): request strategies generated from the
schema, a sender that measures each request, and the invariants every answer must keep.

Used by tests/e2e/test_config_fuzz.py (a bounded, seeded run through the VIP) and
scripts/fuzz_config_api.py (the long run). The invariants: no status >= 500, no connection
reset, no request over ``SLOW_S``; afterwards every replica is healthy and the fuzzer's objects
are gone (its project has no children).

The fuzzer only ever addresses objects it created (under its own project ``fuzz-<hex>`` or with a
``fuzz-`` name at the top level) and useragent-kv keys starting with ``fuzz-``: it can run against a
shared cluster. ``Fuzzer.cleanup`` deletes what it created, children before parents.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from contrail_ha.services.config_api.schema import CONFIG_ROOT, ResourceType, Schema, schema

SLOW_S = 10.0
TIMEOUT_S = 15.0
VN_SUBNET = ("10.77.0.0", 24)

# --------------------------------------------------------------------------------------------
# Requests and results


@dataclass
class Request:
    """One HTTP request; ``raw`` requests are sent over a socket as given (odd framing)."""

    method: str
    path: str
    params: dict[str, str] | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    kind: str = ""
    template: Any = None  # the JSON body with placeholders, serialised by ``concrete``
    path_ph: Any = None

    def concrete(self, world: World) -> Request:
        """The request with its placeholders resolved against ``world``."""
        body = self.body if self.template is None else _json(resolve(self.template, world))
        path = self.path if self.path_ph is None else resolve(self.path_ph, world)
        params = None if self.params is None else {k: str(resolve(v, world))[:4000] for k, v in self.params.items()}
        return Request(self.method, path, params, body, dict(self.headers), self.raw, self.kind)

    def url(self, base: str) -> str:
        return base + self.path + (("?" + urlencode(self.params, errors="surrogatepass")) if self.params else "")

    def repro(self, base: str) -> str:
        """A shell command that sends the request again (from the client namespace)."""
        hdrs = " ".join(f"-H {json.dumps(f'{k}: {v}')}" for k, v in self.headers.items())
        body = ""
        if self.body is not None:
            shown = self.body[:2000].decode("utf-8", "backslashreplace")
            body = f" --data-binary {json.dumps(shown)}" + (" (truncated)" if len(self.body) > 2000 else "")
        return f"curl -s -X {self.method} {json.dumps(self.url(base))} {hdrs}{body}".replace("  ", " ")


@dataclass
class Result:
    request: Request
    status: int  # 0: no answer (reset, timeout)
    seconds: float
    text: str = ""
    error: str = ""

    @property
    def failed(self) -> str | None:
        """Why this result breaks an invariant, or None."""
        if self.status == -1:
            return self.error
        if self.status == 0:
            return f"no answer: {self.error}"
        if self.status >= 500:
            return f"status {self.status}"
        if self.seconds > SLOW_S:
            return f"took {self.seconds:.1f}s"
        return None


def _json(value: Any) -> bytes:
    """JSON as a client would send it (ASCII, so lone surrogates travel as \\ud800 escapes; a float
    infinity becomes the non-standard ``Infinity``)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


# --------------------------------------------------------------------------------------------
# Values


HOSTILE_TEXT = ["", " ", "\t", "a\tb", "\r\n", "x\ny", "\x7f", "\x85", "\x9f", "\ue000", "\uf8ff", "\ufff0",
                "\U0001f600", "a/b", "%", "%2F", "a:b", ":", ".", "..", "zookeeper", "ü", "\u200b", "\x00",
                "\x01", "\ufffe", "'\"<>&", "a" * 256, "b" * 1100, "c" * 70_000]
LONE_SURROGATES = ["\ud800", "x\udfffy", "\udbff"]
BAD_IDS: list[Any] = [5, 0, -1, 1.5, True, None, "", "x", "None", [None], [5], {}, {"uuid": 1},
                      "c626c10d-1f50-4c9f-9a39-0b1f0c7d2a1", "C626C10D-1F50-4C9F-9A39-0B1F0C7D2A11",
                      "c626c10d1f504c9f9a390b1f0c7d2a11", "{c626c10d-1f50-4c9f-9a39-0b1f0c7d2a11}",
                      "u" * 70_000, "\ud800", "\t", "a/b", "../..", str(uuidlib.UUID(int=0))]

texts = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_TEXT), st.sampled_from(LONE_SURROGATES))
ints = st.one_of(st.integers(-10, 10), st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1, 10**30]),
                 st.integers())
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True, allow_infinity=True), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(texts, inner, max_size=4)),
                           max_leaves=12)


def simple_value(xsd_type: str, restrictions: Any, restriction_type: str | None) -> st.SearchStrategy[Any]:
    """A mostly valid value of an XSD simple type."""
    if restrictions and restriction_type == "enum":
        return st.sampled_from(list(restrictions))
    if xsd_type in ("integer", "int", "long", "short", "unsignedLong", "unsignedInt", "unsignedShort",
                    "unsignedByte", "byte", "nonNegativeInteger", "positiveInteger"):
        if restrictions and len(restrictions) == 2:
            lo, hi = int(restrictions[0]), int(restrictions[1])
            return st.integers(lo, hi)
        return st.integers(0, 65535)
    if xsd_type == "boolean":
        return st.booleans()
    if restrictions:
        return st.sampled_from(list(restrictions))
    return st.text(max_size=20)


def xsd_value(s: Schema, type_name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    """A mostly valid value of an XSD complex type: a subset of its fields, recursively (bounded)."""
    xsd = s.xsd(type_name)
    if xsd is None:
        return simple_value(type_name, None, None)
    if depth > 3:
        return st.just({})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, attr in xsd.fields.items():
        one = xsd_value(s, attr.attr_type, depth + 1) if attr.is_complex else \
            simple_value(attr.attr_type, attr.restrictions, attr.restriction_type)
        fields[name] = st.lists(one, max_size=2) if attr.is_array else one
    return st.fixed_dictionaries({}, optional=fields)


def near(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values, and values with one part swapped for something hostile."""
    def mutate(value: Any, data: Any) -> Any:
        if isinstance(value, dict) and value:
            k = data.draw(st.sampled_from(sorted(value)))
            return {**value, k: data.draw(json_values)}
        return data.draw(json_values)
    return st.one_of(valid, valid, st.tuples(valid, st.data()).map(lambda t: mutate(*t)))


# --------------------------------------------------------------------------------------------
# The fuzzer's world


@dataclass
class World:
    """What the fuzzer created (by uuid: resource type and fq_name) and can address."""

    prefix: str
    project_fq: list[str]
    project_uuid: str = ""
    vn_uuid: str = ""
    ipam_uuid: str = ""
    objects: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # uuid -> (type, fq_name)
    order: list[str] = field(default_factory=list)  # creation order
    kv_keys: set[str] = field(default_factory=set)

    def add(self, rtype: str, fq: list[str], u: str) -> None:
        if u not in self.objects:
            self.objects[u] = (rtype, fq)
            self.order.append(u)

    def uuids(self) -> list[str]:
        return list(self.objects) or [str(uuidlib.UUID(int=1))]

    def of_type(self, rtype: str) -> list[tuple[str, list[str]]]:
        return [(u, fq) for u, (t, fq) in self.objects.items() if t == rtype]


class Ph:
    """A placeholder drawn by a strategy and resolved against the world when the request is sent:
    the draws never depend on what the fuzzer created so far (hypothesis requires that)."""

    def value(self, world: World) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class OwnObj(Ph):
    """The ``i``-th object the fuzzer owns (of ``rtype`` if given): its uuid, fq_name or type."""

    i: int
    rtype: str | None = None
    part: str = "uuid"  # uuid | fq | type | type_
    fallback: Any = None

    def value(self, world: World) -> Any:
        rows = [(u, t, fq) for u, (t, fq) in world.objects.items() if self.rtype is None or t == self.rtype]
        if not rows:
            return resolve(self.fallback, world)
        u, t, fq = rows[self.i % len(rows)]
        return {"uuid": u, "fq": fq, "type": t, "type_": t.replace("-", "_")}[self.part]


@dataclass(frozen=True)
class Join(Ph):
    items: tuple[Any, ...]

    def value(self, world: World) -> Any:
        return ",".join(str(resolve(x, world)) for x in self.items)


@dataclass(frozen=True)
class Path(Ph):
    """``/<type>/<uuid>`` of an object: ``OwnObj`` parts or a fixed type and id."""

    rtype: Any
    uuid: Any

    def value(self, world: World) -> Any:
        u = resolve(self.uuid, world)
        u = u if isinstance(u, str) else json.dumps(u)
        return f"/{resolve(self.rtype, world)}/{quote(u[:3000], safe='', errors='surrogatepass')}"


@dataclass(frozen=True)
class CreateAt(Ph):
    """A create's fq_name (``part`` fq) or parent_type (``part`` ptype) among the parents available."""

    rtype: str
    i: int
    name: str
    part: str

    def value(self, world: World) -> Any:
        s = schema()
        rt = s[self.rtype]
        options: list[tuple[list[str], str | None]] = []
        for p in rt.parent_types:
            if p == CONFIG_ROOT:
                options.append(([], None))
            elif p == "project":
                options.append((world.project_fq, p))
            elif p in DEFAULT_PARENTS and rt.resource_type != "project":
                options.append((DEFAULT_PARENTS[p], p))
            for _, fq in world.of_type(p)[-3:]:
                options.append((fq, p))
        if rt.resource_type == "project":
            options = [(["default-domain"], "domain")]
        if not options:
            options = [(world.project_fq, rt.parent_types[0] if rt.parent_types else None)]
        parent, ptype = options[self.i % len(options)]
        return [*parent, self.name] if self.part == "fq" else ptype


def resolve(value: Any, world: World) -> Any:
    """A drawn value with every placeholder replaced."""
    if isinstance(value, Ph):
        return value.value(world)
    if isinstance(value, dict):
        return {k: resolve(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, world) for v in value]
    return value


own_index = st.integers(0, 10**6)


DEFAULT_PARENTS = {"domain": ["default-domain"], "global-system-config": ["default-global-system-config"],
                   "policy-management": ["default-policy-management"]}


def ids_for(world: World) -> st.SearchStrategy[Any]:
    """A uuid the fuzzer owns, a random (unknown) uuid, or a bad id."""
    own = own_index.map(lambda i: OwnObj(i))
    return st.one_of(own, own, st.uuids().map(str), st.sampled_from(BAD_IDS))


def id_lists(world: World) -> st.SearchStrategy[Any]:
    one = st.one_of(own_index.map(lambda i: OwnObj(i)), st.uuids().map(str))
    return st.one_of(st.lists(one, max_size=5).map(lambda x: Join(tuple(x))), st.lists(one, max_size=5),
                     st.lists(st.sampled_from(BAD_IDS), min_size=1, max_size=3),
                     st.sampled_from([[None], 5, "x,y", "," * 10]),
                     st.integers(1001, 3000).map(lambda n: ",".join(str(uuidlib.UUID(int=i)) for i in range(n))))


def names(world: World) -> st.SearchStrategy[str]:
    return st.one_of(st.text(min_size=1, max_size=12).map(lambda t: f"{world.prefix}-{t}"),
                     st.sampled_from(HOSTILE_TEXT).map(lambda t: f"{world.prefix}-{t}"),
                     st.sampled_from(HOSTILE_TEXT + LONE_SURROGATES))


def fq_for(world: World, rt: ResourceType, data: Any) -> tuple[Any, Any]:
    """A plausible fq_name and parent_type for a create of ``rt`` (placeholders)."""
    name = data.draw(names(world))
    i = data.draw(own_index)
    return CreateAt(rt.resource_type, i, name, "fq"), CreateAt(rt.resource_type, i, name, "ptype")


# --------------------------------------------------------------------------------------------
# Request strategies, one per endpoint family


def _post(path: str, body: Any, kind: str) -> Request:
    return Request("POST", path, template=body, headers={"Content-Type": "application/json"}, kind=kind)


def create_request(world: World, s: Schema, data: Any) -> Request:
    rt = data.draw(st.sampled_from([t for t in s if t.resource_type != CONFIG_ROOT]))
    fq, ptype = fq_for(world, rt, data)
    body: dict[str, Any] = {"fq_name": fq, "uuid": None, "parent_type": ptype}
    props = sorted(n for n, p in rt.props.items() if n not in ("id_perms",))
    for name in data.draw(st.lists(st.sampled_from(props), max_size=3, unique=True)) if props else []:
        p = rt.props[name]
        valid = xsd_value(s, p.xsd_type) if p.is_complex else simple_value(p.xsd_type, p.restrictions,
                                                                          p.restriction_type)
        body[name] = data.draw(near(valid))
    refs = sorted(rt.refs)
    for name in data.draw(st.lists(st.sampled_from(refs), max_size=2, unique=True)) if refs else []:
        target = rt.refs[name].target
        ref: dict[str, Any] = {"attr": None}
        choice = data.draw(st.integers(0, 3))
        if choice < 2:
            i = data.draw(own_index)
            tfq = OwnObj(i, target, "fq", fallback=["default-domain", "nope"])
            ref.update({"to": tfq, "uuid": OwnObj(i, target, "uuid")} if choice == 0 else {"to": tfq})
        elif choice == 2:
            ref["uuid"] = data.draw(st.sampled_from(BAD_IDS))
        else:
            ref["to"] = data.draw(json_values)
        body[name] = [ref] if data.draw(st.booleans()) else data.draw(st.one_of(st.just([ref]), json_values))
    if data.draw(st.integers(0, 9)) == 0:
        body["uuid"] = data.draw(st.sampled_from(BAD_IDS))
    if data.draw(st.integers(0, 9)) == 0:
        body["fq_name"] = data.draw(json_values)
    if data.draw(st.integers(0, 14)) == 0:
        body["perms2"] = data.draw(near(xsd_value(s, "PermType2")))
    wrapper = {rt.resource_type: body} if data.draw(st.integers(0, 9)) else data.draw(json_values)
    return _post(f"/{rt.collection}", wrapper, "create")


def object_request(world: World, s: Schema, data: Any) -> Request:
    """GET/PUT/DELETE of an object (own, unknown or bad id)."""
    common = ["project", "network-ipam", "virtual-network", "floating-ip-pool", "tag", "security-group"]
    rtype = data.draw(st.one_of(st.sampled_from(common), st.sampled_from([t.resource_type for t in s])))
    if data.draw(st.integers(0, 3)):
        u: Any = OwnObj(data.draw(own_index), rtype, "uuid", fallback=OwnObj(data.draw(own_index)))
    else:
        u = data.draw(st.one_of(st.sampled_from(BAD_IDS), st.uuids().map(str)))
    path = Path(rtype, u)
    method = data.draw(st.sampled_from(["GET", "GET", "PUT", "PUT", "DELETE"]))
    if method == "GET":
        params = data.draw(st.one_of(st.just({}), st.fixed_dictionaries({}, optional={
            "fields": st.one_of(st.sampled_from(sorted(s[rtype].field_names) or ["x"]), texts),
            "exclude_back_refs": st.just("True"), "exclude_children": texts, "exclude_hrefs": texts})))
        return Request("GET", "", params=params or None, kind="read", path_ph=path)
    if method == "DELETE":
        return Request("DELETE", "", kind="delete", path_ph=path)
    rt = s[rtype]
    props = sorted(n for n in rt.props if n not in ("id_perms",))
    body: dict[str, Any] = {}
    for name in data.draw(st.lists(st.sampled_from(props), max_size=2, unique=True)) if props else []:
        p = rt.props[name]
        valid = xsd_value(s, p.xsd_type) if p.is_complex else simple_value(p.xsd_type, p.restrictions,
                                                                          p.restriction_type)
        body[name] = data.draw(near(valid))
    if rt.refs and data.draw(st.booleans()):
        body[data.draw(st.sampled_from(sorted(rt.refs)))] = data.draw(
            st.one_of(st.just([]), st.lists(st.fixed_dictionaries({"uuid": ids_for(world)}), max_size=2),
                      json_values))
    if data.draw(st.integers(0, 9)) == 0:
        body["perms2"] = data.draw(near(xsd_value(s, "PermType2")))
    wrapper = {rtype: body} if data.draw(st.integers(0, 5)) else data.draw(json_values)
    return Request("PUT", "", template=wrapper, headers={"Content-Type": "application/json"}, kind="update",
                   path_ph=path)


def list_request(world: World, s: Schema, data: Any) -> Request:
    rtype = data.draw(st.sampled_from([t.resource_type for t in s if t.resource_type != CONFIG_ROOT]))
    rt = s[rtype]
    q = data.draw(st.fixed_dictionaries({}, optional={
        "parent_id": id_lists(world), "back_ref_id": id_lists(world), "obj_uuids": id_lists(world),
        "fq_names": st.one_of(st.just(":".join(world.project_fq)), texts, st.lists(texts, max_size=3)),
        "parent_fq_name_str": st.one_of(st.just(":".join(world.project_fq)), texts),
        "parent_type": st.one_of(st.sampled_from(list(rt.parent_types) or ["project"]), json_values),
        "fields": st.one_of(st.sampled_from(sorted(rt.field_names) or ["x"]), texts, st.lists(json_values, max_size=2)),
        "filters": st.one_of(st.just('display_name=="x"'), texts, st.just("a==" + "[" * 2000)),
        "detail": st.one_of(st.sampled_from(["True", "False"]), json_values),
        "count": st.one_of(st.sampled_from(["True", "False"]), json_values),
        "exclude_hrefs": st.one_of(st.just("True"), json_values),
        "page_limit": st.one_of(st.integers(-2, 5), st.sampled_from(["x", "Infinity", "1e3", "0"]), json_values,
                                st.just(float("inf"))),
        "page_marker": st.one_of(st.sampled_from(["None", "none", "", "x", "a:b"]), own_index.map(lambda i: OwnObj(i)),
                                 json_values)}))
    if data.draw(st.booleans()):
        body: Any = {**q, "type": data.draw(st.one_of(st.just(rtype), st.just(rtype.replace("-", "_")),
                                                       st.just([rtype]), json_values))}
        if data.draw(st.integers(0, 9)) == 0:
            body = data.draw(json_values)
        return _post("/list-bulk-collection", body, "list-bulk")
    params = {k: (v if isinstance(v, (str, Ph)) else json.dumps(v, ensure_ascii=True, allow_nan=True, default=str))
              for k, v in q.items()}
    return Request("GET", f"/{rt.collection}", params=params or None, kind="list")


def action_request(world: World, s: Schema, data: Any) -> Request:
    """One of the action endpoints with a near-valid or hostile body."""
    ids = ids_for(world)
    own_type = own_index.map(lambda i: OwnObj(i, None, "type"))
    fq = st.one_of(own_index.map(lambda i: OwnObj(i, None, "fq")), st.lists(texts, max_size=4), json_values)
    kv_keys = st.one_of(names(world).map(lambda n: f"fuzz-{n}"), st.sampled_from(
        ["", "__contrail_ha__:aaa-mode", "fuzz-" + "k" * 70_000, 5, None, ["k"]]))
    op = st.sampled_from(["ADD", "DELETE", "add", None, 5])
    kind = data.draw(st.sampled_from([
        "fqname-to-id", "id-to-fqname", "ref-update", "ref-relax", "prop-get", "prop-update", "kv", "obj-perms",
        "chown", "chmod", "aaa-get", "aaa-put", "set-tag", "ip-alloc", "ip-free", "subnet-ip-count", "unknown"]))
    d = data.draw
    if kind == "fqname-to-id":
        return _post("/fqname-to-id", d(near(st.fixed_dictionaries({"type": own_type, "fq_name": fq}))), kind)
    if kind == "id-to-fqname":
        return _post("/id-to-fqname", d(near(st.fixed_dictionaries({"uuid": ids}))), kind)
    if kind == "ref-update":
        body = st.fixed_dictionaries({"type": own_type, "uuid": ids, "operation": op}, optional={
            "ref-type": st.one_of(own_type, texts), "ref-uuid": ids, "ref-fq-name": fq,
            "attr": json_values, "relax_ref_for_delete": st.booleans()})
        return _post("/ref-update", d(near(body)), kind)
    if kind == "ref-relax":
        return _post("/ref-relax-for-delete", d(near(st.fixed_dictionaries({"uuid": ids, "ref-uuid": ids}))), kind)
    if kind == "prop-get":
        params = d(st.fixed_dictionaries({"uuid": ids.map(lambda v: v if isinstance(v, (str, Ph)) else json.dumps(v))},
                                         optional={"fields": st.sampled_from(["annotations", "x", ""]),
                                                   "position": texts}))
        return Request("GET", "/prop-collection-get", params=params, kind=kind)
    if kind == "prop-update":
        upd = st.fixed_dictionaries({"field": st.one_of(st.just("annotations"), texts),
                                     "operation": st.sampled_from(["set", "delete", "add", "modify", None]),
                                     "value": st.one_of(st.just({"key": "k", "value": "v"}), json_values),
                                     "position": st.one_of(st.just("k"), json_values)})
        return _post("/prop-collection-update", d(near(st.fixed_dictionaries({
            "uuid": ids, "updates": st.one_of(st.lists(upd, max_size=3), json_values)}))), kind)
    if kind == "kv":
        body = d(near(st.fixed_dictionaries({"operation": st.sampled_from(["STORE", "RETRIEVE", "DELETE", "x"]),
                                             "key": kv_keys, "value": json_values})))
        if isinstance(body, dict) and isinstance(body.get("key"), str) and body["key"].startswith("fuzz-"):
            world.kv_keys.add(body["key"])
        elif isinstance(body, dict) and body.get("operation") == "STORE":
            body["operation"] = "RETRIEVE"  # never store under a key that is not the fuzzer's
        return _post("/useragent-kv", body, kind)
    if kind == "obj-perms":
        uid = d(ids)
        return Request("GET", "/obj-perms", params={"uuid": uid if isinstance(uid, (str, Ph)) else json.dumps(uid)},
                       kind=kind)
    if kind == "chown":
        return _post("/chown", d(near(st.fixed_dictionaries({"uuid": ids, "owner": st.one_of(
            st.uuids().map(str), texts, json_values)}))), kind)
    if kind == "chmod":
        share = st.fixed_dictionaries({"tenant": st.one_of(st.uuids().map(lambda u: f"tenant:{u}"), texts),
                                       "tenant_access": st.one_of(st.integers(0, 7), json_values)})
        return _post("/chmod", d(near(st.fixed_dictionaries({"uuid": ids}, optional={
            "owner": st.one_of(st.uuids().map(str), texts), "owner_access": st.one_of(st.integers(0, 8), json_values),
            "global_access": st.one_of(st.integers(0, 8), json_values),
            "share": st.one_of(st.lists(share, max_size=2), json_values)}))), kind)
    if kind == "aaa-get":
        return Request("GET", "/aaa-mode", kind=kind)
    if kind == "aaa-put":  # valid modes are left out: the setting is cluster-wide
        body = d(st.one_of(st.fixed_dictionaries({"aaa-mode": st.one_of(texts, json_values)}), json_values))
        if isinstance(body, dict) and body.get("aaa-mode") in ("no-auth", "cloud-admin", "rbac"):
            body = {"aaa-mode": "nope"}
        return Request("PUT", "/aaa-mode", template=body, kind=kind)
    if kind == "set-tag":
        tag = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "is_global": st.booleans(), "value": texts, "add_values": st.one_of(st.lists(texts, max_size=2), ints),
            "delete_values": st.one_of(st.lists(texts, max_size=2), json_values)}), json_values)
        obj_type = own_index.map(lambda i: OwnObj(i, None, "type_"))
        return _post("/set-tag", d(near(st.fixed_dictionaries({"obj_type": obj_type, "obj_uuid": ids}, optional={
            "label": tag, "application": tag, "tier": tag, "LABEL": tag}))), kind)
    if kind in ("ip-alloc", "ip-free", "subnet-ip-count"):
        vn = d(st.one_of(st.just(world.vn_uuid or "x"), st.just(world.vn_uuid or "x"),
                         st.sampled_from(["x", "0", "%20", str(uuidlib.UUID(int=7))])))
        if kind == "ip-alloc":
            body = d(near(st.fixed_dictionaries({}, optional={
                "count": st.one_of(st.integers(-1, 5), st.integers(1000, 1001), json_values),
                "family": st.sampled_from(["v4", "v6", None, "v5"]), "subnet": st.one_of(st.none(), texts)})))
        elif kind == "ip-free":
            body = d(near(st.fixed_dictionaries({"ip_addr": st.one_of(
                st.lists(st.sampled_from(["10.77.0.9", "10.77.0.300", "::1", "x"]), max_size=3), json_values)})))
        else:
            body = d(near(st.fixed_dictionaries({"subnet_list": st.one_of(st.lists(st.sampled_from(
                ["10.77.0.0/24", "10.77.0.0/33", "x", "10.1.0.0/16", "::/0"]), max_size=3), json_values)})))
        return _post(f"/virtual-network/{vn}/{kind}", body, kind)
    path = d(st.sampled_from(["/execute-job", "/fetch-records", "/nope", "/virtual-networks/x/y", "/%ff",
                              "/amqp-publish", "/security-policy-draft"]))
    return Request(d(st.sampled_from(["GET", "POST", "PATCH", "OPTIONS"])), path, body=b"{}", kind="unknown")


def odd_request(world: World, s: Schema, data: Any) -> Request:
    """Bodies and headers a parser must survive: deep nesting, bad encodings, framing."""
    d = data.draw
    path = d(st.sampled_from(["/virtual-networks", "/fqname-to-id", "/list-bulk-collection", "/useragent-kv",
                              "/ref-update", "/chmod", f"/project/{world.project_uuid or 'x'}"]))
    method = "PUT" if path.startswith("/project/") else "POST"
    depth = d(st.sampled_from([63, 65, 1000, 100_000]))
    kinds = ["deep", "deep-obj", "surrogate", "gzip", "deflate", "br", "bad-utf8", "not-json", "nan", "big-int",
             "huge", "ctype", "cl-short", "cl-zero", "chunked-bad", "empty"]
    kind = d(st.sampled_from(kinds))
    headers = {"Content-Type": "application/json"}
    body: bytes = b"{}"
    raw = False
    if kind == "deep":
        body = b"[" * depth + b"]" * depth
    elif kind == "deep-obj":
        body = b'{"virtual-network": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    elif kind == "surrogate":
        body = b'{"type": "virtual-network", "fq_name": ["default-domain", "\\ud800"], "uuid": "\\udc00"}'
    elif kind in ("gzip", "deflate", "br"):
        headers["Content-Encoding"] = kind
        body = b'{"type": "project", "fq_name": ["default-domain"]}'
    elif kind == "bad-utf8":
        body = b'{"key": "\xff\xfe", "operation": "RETRIEVE"}'
    elif kind == "not-json":
        body = d(st.sampled_from([b"{", b"nul", b"'x'", b"{\"a\":1}}", b"\x00" * 10, b"[1,]"]))
    elif kind == "nan":
        body = d(st.sampled_from([b'{"page_limit": NaN, "type": "project"}', b'{"count": Infinity}', b"-Infinity",
                                  b'{"page_limit": 1e999, "type": "project"}']))
    elif kind == "big-int":
        body = b'{"count": ' + b"9" * 5000 + b"}"
    elif kind == "huge":
        body = b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    elif kind == "ctype":
        headers["Content-Type"] = d(st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "", "a/b;;"]))
    elif kind == "cl-short":
        raw, body = True, b'{"type": "project", "fq_name": ["default-domain", "x"]}'
        headers["Content-Length"] = "5"
    elif kind == "cl-zero":
        raw, body = True, b'{"type": "project"}'
        headers["Content-Length"] = "0"
    elif kind == "chunked-bad":
        raw, body = True, b"5\r\n{\"a\":\r\nzz\r\n"
        headers["Transfer-Encoding"] = "chunked"
    elif kind == "empty":
        body = b""
    return Request(method, path, body=body, headers=headers, raw=raw, kind=f"odd-{kind}")


def requests(world: World, s: Schema) -> st.SearchStrategy[Request]:
    """Any request of the fuzzer, weighted towards creates (they grow the world) and actions."""
    families: list[Callable[[World, Schema, Any], Request]] = [
        create_request, create_request, create_request, object_request, object_request, list_request,
        list_request, action_request, action_request, action_request, odd_request]
    return st.tuples(st.sampled_from(families), st.data()).map(lambda t: t[0](world, s, t[1]))


# --------------------------------------------------------------------------------------------
# Sending


def send_raw(host: str, port: int, req: Request, timeout: float = TIMEOUT_S, tls: bool = False) -> tuple[int, str]:
    """Send ``req`` as bytes over a fresh connection (its headers as given; over TLS verified with
    the default trust, e.g. SSL_CERT_FILE, when ``tls``); status and body text."""
    head = [f"{req.method} {req.url('')} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + (req.body or b"")
    raw = socket.create_connection((host, port), timeout=timeout)
    with ssl.create_default_context().wrap_socket(raw, server_hostname=host) if tls else raw as sock:
        sock.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        if not out:
            raise ConnectionResetError("closed without an answer")
        status = int(out.split(b" ", 2)[1])
        return status, out.split(b"\r\n\r\n", 1)[-1][:2000].decode("utf-8", "replace")


class Fuzzer:
    """Sends requests through one base URL, keeps the world up to date, collects results."""

    def __init__(self, base: str, prefix: str | None = None) -> None:
        self.base = base.rstrip("/")
        host_port = self.base.split("//", 1)[1]
        self.host, port = host_port.split(":") if ":" in host_port else (host_port, "80")
        self.port = int(port)
        self.http = httpx.Client(timeout=TIMEOUT_S)
        self.schema = schema()
        prefix = prefix or f"fuzz-{uuidlib.uuid4().hex[:8]}"
        self.world = World(prefix, ["default-domain", prefix])
        self.results: list[Result] = []
        self.transient: list[Result] = []
        self.aaa_mode: str | None = None

    # --- setup and teardown ----------------------------------------------------------------------
    def _must(self, r: httpx.Response) -> Any:
        assert r.status_code == 200, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
        return r.json() if r.content else None

    def setup(self) -> None:
        """The fuzzer's project, an IPAM and a VN with a subnet (targets of the IP actions)."""
        w = self.world
        self.aaa_mode = self._must(self.http.get(f"{self.base}/aaa-mode"))["aaa-mode"]
        p = self._must(self.http.post(f"{self.base}/projects", json={"project": {
            "fq_name": w.project_fq, "parent_type": "domain"}}))["project"]
        w.project_uuid = p["uuid"]
        w.add("project", w.project_fq, p["uuid"])
        ipam_fq = [*w.project_fq, "ipam"]
        ipam = self._must(self.http.post(f"{self.base}/network-ipams", json={"network-ipam": {
            "fq_name": ipam_fq, "parent_type": "project"}}))["network-ipam"]
        w.ipam_uuid = ipam["uuid"]
        w.add("network-ipam", ipam_fq, ipam["uuid"])
        vn_fq = [*w.project_fq, "vn"]
        vn = self._must(self.http.post(f"{self.base}/virtual-networks", json={"virtual-network": {
            "fq_name": vn_fq, "parent_type": "project", "network_ipam_refs": [{"to": ipam_fq, "attr": {
                "ipam_subnets": [{"subnet": {"ip_prefix": VN_SUBNET[0], "ip_prefix_len": VN_SUBNET[1]}}]}}]}}))
        w.vn_uuid = vn["virtual-network"]["uuid"]
        w.add("virtual-network", vn_fq, w.vn_uuid)

    def cleanup(self, passes: int = 8) -> list[str]:
        """Delete every object created, newest first, several passes (refs and children); the kv keys.
        Returns what could not be deleted (``type uuid status text``)."""
        left = list(self.world.order)
        failures: dict[str, str] = {}
        for _ in range(passes):
            if not left:
                break
            still = []
            for u in reversed(left):
                rtype, _fq = self.world.objects[u]
                try:
                    r = self.http.delete(f"{self.base}/{rtype}/{u}")
                except httpx.HTTPError as e:
                    still.append(u)
                    failures[u] = f"{rtype} {u} {e!r}"
                    continue
                if r.status_code in (200, 404):
                    continue
                still.append(u)
                failures[u] = f"{rtype} {u} {r.status_code} {r.text[:200]}"
            left = list(reversed(still))
            if left:
                time.sleep(0.5)
        for key in sorted(self.world.kv_keys):
            try:
                self.http.post(f"{self.base}/useragent-kv", content=_json({"operation": "DELETE", "key": key}))
            except httpx.HTTPError:
                pass
        if self.aaa_mode:
            self.http.put(f"{self.base}/aaa-mode", json={"aaa-mode": self.aaa_mode})
        return [failures[u] for u in left]

    def leftovers(self) -> dict[str, list[Any]]:
        """Children of the fuzzer's project still there (empty when the cleanup worked), and any
        object named with the fuzzer's prefix still found by name."""
        out: dict[str, list[Any]] = {}
        r = self.http.get(f"{self.base}/project/{self.world.project_uuid}")
        if r.status_code == 200:
            proj = r.json()["project"]
            for f, rows in proj.items():
                if isinstance(rows, list) and f in self.schema["project"].children and rows:
                    out[f] = rows
        for u, (rtype, _) in self.world.objects.items():
            g = self.http.get(f"{self.base}/{rtype}/{u}")
            if g.status_code == 200:
                out.setdefault("objects", []).append(f"{rtype} {u}")
        return out

    # --- one request ---------------------------------------------------------------------------------
    def _send_once(self, req: Request) -> Result:
        t0 = time.monotonic()
        try:
            if req.raw:
                status, text = send_raw(self.host, self.port, req, tls=self.base.startswith("https"))
            else:
                r = self.http.request(req.method, req.url(self.base), content=req.body, headers=req.headers)
                status, text = r.status_code, r.text[:2000]
        except (httpx.HTTPError, OSError, ValueError, IndexError) as e:
            return Result(req, 0, time.monotonic() - t0, error=f"{type(e).__name__}: {e}"[:300])
        return Result(req, status, time.monotonic() - t0, text)

    def send(self, req: Request) -> Result:
        """Resolve and send; a 5xx or reset is sent again once after a pause: if it does not repeat and looks like
        a replica restart (503 starting, 502/503 from HAProxy, reset), it is counted as transient."""
        try:
            req = req.concrete(self.world)
        except (ValueError, TypeError, UnicodeError) as e:  # a fuzzer bug: keep going, report it
            res = Result(req, -1, 0.0, error=f"fuzzer could not build the request: {e!r}"[:300])
            self.results.append(res)
            return res
        res = self._send_once(req)
        if res.failed and (res.status == 0 or res.status >= 500):
            time.sleep(1.0)
            again = self._send_once(req)
            restart = res.status in (0, 502, 503, 504) and ("starting" in res.text or res.status == 0
                                                            or "<html>" in res.text or res.status == 502)
            if not (again.status == 0 or again.status >= 500) and restart:
                self.transient.append(res)
                res = again
        self.results.append(res)
        self._learn(req, res)
        return res

    def _learn(self, req: Request, res: Result) -> None:
        """Remember objects created (so later requests address them); forget deleted ones."""
        if res.status != 200:
            return
        if req.kind == "create":
            try:
                body = json.loads(res.text)
                (rtype, obj), = body.items()
                self.world.add(rtype, obj["fq_name"], obj["uuid"])
            except (ValueError, KeyError, TypeError, AttributeError):
                pass

    def run(self, n: int, seed_value: int = 0, progress: Callable[[int], None] | None = None) -> None:
        """``n`` requests drawn by hypothesis (seeded: the same seed gives the same run)."""
        count = [0]
        world, s = self.world, self.schema

        @seed(seed_value)
        @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), derandomize=False)
        @given(st.data())
        def one(data: st.DataObject) -> None:
            req = data.draw(requests(world, s))
            self.send(req)
            count[0] += 1
            if progress is not None:
                progress(count[0])

        random.seed(seed_value)
        one()
        extra = 0
        while count[0] < n and extra < 20:  # hypothesis drops draws that overrun its buffer: top up
            extra += 1
            more = n - count[0]
            seed(seed_value + extra)(settings(max_examples=more, deadline=None, database=None,
                                              phases=[Phase.generate], suppress_health_check=list(HealthCheck))(
                given(st.data())(one.hypothesis.inner_test)))()

    # --- reporting -----------------------------------------------------------------------------------
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.failed]

    def summary(self) -> str:
        by_status = Counter(r.status for r in self.results)
        times = sorted(r.seconds for r in self.results) or [0.0]

        def pct(p: float) -> float:
            return times[min(len(times) - 1, int(p * len(times)))]

        lines = [f"requests: {len(self.results)}",
                 "by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())),
                 "by kind: " + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(r.request.kind for r in
                                                                             self.results).items())),
                 f"seconds per request: p50 {pct(0.5):.3f} p90 {pct(0.9):.3f} p99 {pct(0.99):.3f} "
                 f"max {times[-1]:.3f}",
                 f"objects created: {len(self.world.objects)}",
                 f"transient (a replica restarting, not repeated): {len(self.transient)}"]
        for r in self.transient[:10]:
            lines.append(f"  transient {r.status} {r.request.kind}: {r.text[:120]!r} {r.error}")
        fails = self.failures()
        lines.append(f"failures: {len(fails)}")
        for r in fails[:50]:
            lines.append(f"  [{r.failed}] {r.request.kind}: {r.text[:300]!r} {r.error}")
            lines.append(f"    repro: {r.request.repro(self.base)[:1500]}")
        return "\n".join(lines)
