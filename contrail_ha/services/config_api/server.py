"""contrail-api's HTTP layer: the VNC wire contract over the store, coordination and notifications.

Every route is generic over the 121 resource types of the schema. Client errors are 4xx with a
``text/plain`` message naming the field; nothing a client sends may produce a 500.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from contrail_ha.services.config_api import objects
from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, Obj, OutcomeUnknown, Unavailable
from contrail_ha.services.config_api.schema import CONFIG_ROOT, ResourceType, canonical, schema
from contrail_ha.services.config_api.validation import (
    FieldError,
    resolve_parent_type,
    validate_fq_name,
    validate_object,
    validate_prop,
)

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
TEXT = "text/plain"
PAGINATE_DEFAULT = 256


def now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def default_id_perms(uuid: str, description: str | None = None, enable: bool = True) -> dict[str, Any]:
    u = uuidlib.UUID(uuid)
    ts = now()
    return {
        "permissions": {"owner": "cloud-admin", "owner_access": 7, "group": "cloud-admin-group",
                        "group_access": 7, "other_access": 7},
        "uuid": {"uuid_mslong": u.int >> 64, "uuid_lslong": u.int & ((1 << 64) - 1)},
        "enable": enable, "created": ts, "last_modified": ts, "description": description,
        "user_visible": True, "creator": None,
    }


def default_perms2(owner: str = "cloud-admin") -> dict[str, Any]:
    return {"owner": owner, "owner_access": 7, "global_access": 0, "share": []}


def _bool(v: str | None) -> bool:
    return v is not None and "true" in v.lower()


def _csv(v: str | None) -> list[str]:
    return [x for x in (v or "").split(",") if x]


class Hooks:
    """Type-specific behaviour around the generic create/update/delete (ids, IPAM ...)."""

    async def pre_create(self, rt: ResourceType, obj: Obj) -> None:
        """Fill or check type-specific fields; may raise ConfigError."""

    async def undo_create(self, rt: ResourceType, obj: Obj) -> None:
        """Release what pre_create took when the create fails."""

    async def pre_update(self, rt: ResourceType, old: Obj, changes: Obj, refs: dict[str, Any]) -> None:
        """Check or complete an update (``refs``: the ref lists it replaces)."""

    async def post_delete(self, rt: ResourceType, obj: Obj) -> None:
        """Release what the object held."""


class ConfigApi:
    """The API over a store, a coordinator and a notifier (each with the documented async API)."""

    def __init__(self, store: Any, zk: Any, notifier: Any, hooks: Hooks | None = None) -> None:
        self.schema = schema()
        self.store = store
        self.zk = zk
        self.notifier = notifier
        self.hooks = hooks or Hooks()
        self.aaa_mode = "no-auth"
        self.ipam: Any = None
        # Called after every change is stored and announced: (oper, type, uuid, fq_name, old, new).
        self.audit: Callable[[str, str, str, list[str], Obj | None, Obj | None], None] | None = None

    # --- helpers -------------------------------------------------------------------------------
    def rtype(self, name: str) -> ResourceType:
        rt = self.schema.get(name)
        if rt is None or rt.resource_type == CONFIG_ROOT:
            raise NotFound(f"Unknown resource type {name}")
        return rt

    async def require_writable(self) -> None:
        """Refuse a write up front (503) when it could not be coordinated or announced. A ZooKeeper
        session that is moving to another server (a leader election) is waited for, briefly."""
        if not self.zk.connected and not await self.zk.wait_writable():
            raise Unavailable("No connection to zookeeper")
        if self.notifier is not None:
            self.notifier.check_capacity()  # too many unconfirmed notifications: refuse before writing

    @staticmethod
    async def body(request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ConfigError(f"Request body too large: {request.content_length} > {MAX_BODY} bytes", 413)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as e:
            raise ConfigError(f"Request body too large: more than {MAX_BODY} bytes", 413) from e
        if len(raw) > MAX_BODY:
            raise ConfigError(f"Request body too large: {len(raw)} > {MAX_BODY} bytes", 413)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"Malformed JSON body: {e}") from e

    @staticmethod
    def base(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def href(self, base: str, type_name: str, uuid: str) -> str:
        rt = self.schema.get(type_name)
        return f"{base}/{rt.resource_type if rt else canonical(type_name)}/{uuid}"

    def present(self, base: str, rt: ResourceType, obj: Obj, exclude_hrefs: bool = False) -> Obj:
        """An object as the wire shows it: name, hrefs on self, parent, refs, children, back-refs."""
        out: Obj = {k: v for k, v in obj.items() if k != "type"}
        out["name"] = obj["fq_name"][-1]
        if not exclude_hrefs:
            out["href"] = self.href(base, rt.resource_type, obj["uuid"])
            if obj.get("parent_type") and obj.get("parent_uuid"):
                out["parent_href"] = self.href(base, obj["parent_type"], obj["parent_uuid"])
        for field, links in list(out.items()):
            if not isinstance(links, list):
                continue
            target: str | None = None
            if field in rt.refs:
                target = rt.refs[field].target
            elif field in rt.children:
                target = rt.children[field].child_type
            elif field in rt.back_refs:
                target = rt.back_refs[field].source
            if target is None:
                continue
            shown = []
            for link in links:
                item = dict(link)
                if field in rt.refs and "attr" not in item and rt.refs[field].attr_type:
                    item["attr"] = None
                if not exclude_hrefs and item.get("uuid"):
                    item["href"] = self.href(base, target, item["uuid"])
                shown.append(item)
            out[field] = shown
        return out

    async def lookup(self, rt: ResourceType, uuid: str, fields: list[str] | None = None) -> Obj:
        obj = await self.store.read(uuid, fields=fields)
        if obj is None or obj.get("type") != rt.object_type:
            raise NotFound(f"{rt.resource_type} {uuid} not found")
        return obj

    async def resolve_refs(self, rt: ResourceType, body: Obj) -> dict[str, list[Obj]]:
        """Each ref in ``body`` with its target's uuid and fq_name; 400 on a bad or missing target."""
        out: dict[str, list[Obj]] = {}
        for field, ref_t in rt.refs.items():
            if field not in body:
                continue
            refs = body[field] or []
            if not isinstance(refs, list):
                raise FieldError(field, f"expected a list of refs, got {type(refs).__name__}")
            target = self.schema[ref_t.target]
            resolved = []
            for i, ref in enumerate(refs):
                if not isinstance(ref, dict):
                    raise FieldError(f"{field}[{i}]", "expected an object with 'to' or 'uuid'")
                to = ref.get("to")
                if isinstance(to, dict) and to.get("uuid"):  # client quirk of set_<ref>_list([obj])
                    ref = {**ref, "uuid": to["uuid"], "to": None}
                    to = None
                ref_uuid = ref.get("uuid")
                if ref_uuid:
                    found = await self.store.uuid_to_fq_name(ref_uuid)
                    if found is None:
                        raise ConfigError(f"{field}[{i}]: {ref_t.target} {ref_uuid} not found", 404)
                    fq, otype = found
                    if otype != target.object_type:
                        raise FieldError(f"{field}[{i}]",
                                         f"refers to a {canonical(otype)}, not a {ref_t.target} ({ref_uuid})")
                elif isinstance(to, list) and to and all(isinstance(x, str) for x in to):
                    ref_uuid = await self.store.fq_name_to_uuid(target.object_type, to)
                    if ref_uuid is None:
                        raise ConfigError(f"{field}[{i}]: {ref_t.target} {to} not found", 404)
                    fq = list(to)
                else:
                    raise FieldError(f"{field}[{i}].to", f"expected the fq_name of a {ref_t.target}, got {to!r}")
                item: Obj = {"to": fq, "uuid": ref_uuid}
                if ref_t.attr_type:
                    item["attr"] = ref.get("attr")
                resolved.append(item)
            out[field] = resolved
        return out

    async def changed(self, oper: str, obj_type: str, uuid: str, fq_name: list[str], *,
                      obj_dict: Obj | None = None, old: Obj | None = None, new: Obj | None = None) -> None:
        """A change is stored: notify the other replicas (RabbitMQ), then log it (analytics)."""
        await self.notifier.publish(oper, obj_type, uuid, fq_name, obj_dict=obj_dict)
        if self.audit is not None:
            self.audit(oper, obj_type, uuid, fq_name, old, new)

    # --- CRUD ------------------------------------------------------------------------------------
    async def create(self, rt: ResourceType, body: Any, base: str) -> Obj:
        """Validate, lock the fq_name in ZooKeeper, write Cassandra, notify. Returns the stored object."""
        if not isinstance(body, dict):
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        if rt.object_type == "tag" and body.get("tag_type_name") and body.get("tag_value"):
            # R2005 names a tag after its type and value: <type>=<value>, the type in lower case
            name = f"{str(body['tag_type_name']).lower()}={body['tag_value']}"
            fq = body.get("fq_name") or [name]
            body = {**body, "fq_name": [*fq[:-1], name], "tag_type_name": str(body["tag_type_name"]).lower()}
        fq_name = validate_fq_name(rt, body.get("fq_name"))
        parent_type = resolve_parent_type(rt, body.get("parent_type"), fq_name)
        clean = validate_object(rt, body, "CREATE")
        obj: Obj = {"type": rt.object_type, "fq_name": fq_name}
        if parent_type:
            parent_rt = self.schema[parent_type]
            parent_uuid = await self.store.fq_name_to_uuid(parent_rt.object_type, fq_name[:-1])
            if parent_uuid is None or (body.get("parent_uuid") and body["parent_uuid"] != parent_uuid):
                raise ConfigError(f"Parent {fq_name[:-1]} type {parent_type} does not exist")
            obj["parent_type"] = parent_type
            obj["parent_uuid"] = parent_uuid
        given = body.get("uuid")
        if given:
            try:
                obj["uuid"] = str(uuidlib.UUID(str(given)))
            except ValueError as e:
                raise FieldError("uuid", f"{given!r} is not a UUID") from e
            if await self.store.uuid_to_fq_name(obj["uuid"]) is not None:
                raise Conflict(f"uuid {obj['uuid']} already exists")
        else:
            obj["uuid"] = create_uuid(rt.object_type, fq_name)
            if REQUEST_ID.get() and (done := await self.store.read(obj["uuid"])) is not None:
                # HAProxy re-sent this very create (its first replica died): it is already done
                log.info("create %s %s already done by an earlier attempt of request %s", rt.object_type,
                         fq_name, REQUEST_ID.get())
                return done
        for name in rt.props:
            if name in clean and name not in ("id_perms", "perms2"):
                obj[name] = clean[name]
        obj.update(await self.resolve_refs(rt, clean))
        id_perms = default_id_perms(obj["uuid"])
        if isinstance(clean.get("id_perms"), dict):
            for k in ("enable", "description", "user_visible", "creator"):
                if clean["id_perms"].get(k) is not None:
                    id_perms[k] = clean["id_perms"][k]
        obj["id_perms"] = id_perms
        perms2 = default_perms2()
        if isinstance(clean.get("perms2"), dict):
            perms2.update({k: v for k, v in clean["perms2"].items() if v is not None})
        obj["perms2"] = perms2
        if not obj.get("display_name"):
            obj["display_name"] = fq_name[-1]

        await self.require_writable()
        if not await self.zk.create_fq_lock(rt.object_type, fq_name, obj["uuid"]):
            # the lock holds the winner's uuid even before its Cassandra write lands
            existing = await self.zk.read_fq_lock(rt.object_type, fq_name) or \
                await self.store.fq_name_to_uuid(rt.object_type, fq_name)
            raise Conflict(f"{fq_name} already exists with uuid: {existing}")
        try:
            await self.hooks.pre_create(rt, obj)
            try:
                await self.store.create(obj)
            except OutcomeUnknown:
                raise
            except BaseException:
                await self.hooks.undo_create(rt, obj)
                raise
        except OutcomeUnknown:
            # The object may still appear: keep its fq-name lock (stale, hence replaceable, if it does
            # not) and its allocations (a leaked id rather than one given twice).
            raise
        except BaseException:
            await self.zk.delete_fq_lock(rt.object_type, fq_name, obj["uuid"])
            raise
        await self.changed("CREATE", rt.object_type, obj["uuid"], fq_name, obj_dict=obj, new=obj)
        return obj

    async def update(self, rt: ResourceType, uuid: str, body: Any) -> Obj:
        old = await self.lookup(rt, uuid)
        if body is None:
            return old
        if not isinstance(body, dict):
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        clean = validate_object(rt, body, "UPDATE")
        changes: Obj = {}
        for name in rt.props:
            if name not in clean or name in ("id_perms", "perms2"):
                continue
            changes[name] = clean[name]
        id_perms = dict(old.get("id_perms") or default_id_perms(uuid))
        if isinstance(clean.get("id_perms"), dict):
            for k in ("enable", "description", "user_visible"):
                if k in clean["id_perms"] and clean["id_perms"][k] is not None:
                    id_perms[k] = clean["id_perms"][k]
        id_perms["last_modified"] = now()
        changes["id_perms"] = id_perms
        if isinstance(clean.get("perms2"), dict):
            changes["perms2"] = {**(old.get("perms2") or default_perms2()),
                                 **{k: v for k, v in clean["perms2"].items() if v is not None}}
        refs = await self.resolve_refs(rt, clean)
        await self.require_writable()
        await self.hooks.pre_update(rt, old, changes, refs)
        await self.store.update(uuid, changes, refs or None)
        await self.changed("UPDATE", rt.object_type, uuid, old["fq_name"], old=old,
                           new={**changes, **(refs or {})})
        for field, new in refs.items():  # the other side of a ref between objects of one type
            if rt.refs[field].target == rt.resource_type:
                for r in new:
                    await self.notifier.publish("UPDATE-IMPLICIT", rt.object_type, r["uuid"], r["to"])
        return {**old, **changes}

    async def delete(self, rt: ResourceType, uuid: str, base: str) -> None:
        obj = await self.lookup(rt, uuid)
        children = [c for f, links in obj.items() if f in rt.children and f not in rt.derived_children
                    for c in links if not c["to"][-1].startswith("default-")]
        if children:
            hrefs = [self.href(base, rt.children[f].child_type, c["uuid"])
                     for f, links in obj.items() if f in rt.children and f not in rt.derived_children
                     for c in links if not c["to"][-1].startswith("default-")]
            raise Conflict(f"Delete when children still present: {hrefs}")
        relaxed = set(obj.get("relaxed_back_refs") or [])
        back = [self.href(base, rt.back_refs[f].source, b["uuid"])
                for f, links in obj.items() if f in rt.back_refs and f not in rt.derived_back_refs
                for b in links if b["uuid"] not in relaxed]
        if back:
            raise Conflict(f"Delete when resource still referred: {back}")
        await self.require_writable()
        await self.store.delete(uuid)
        await self.zk.delete_fq_lock(rt.object_type, obj["fq_name"], uuid)
        await self.hooks.post_delete(rt, obj)
        await self.changed("DELETE", rt.object_type, uuid, obj["fq_name"], obj_dict=obj, old=obj)

    # --- list ----------------------------------------------------------------------------------
    async def list(self, rt: ResourceType, q: dict[str, Any], base: str) -> Obj:
        def ids(key: str) -> list[str] | None:
            v = q.get(key)
            if v is None:
                return None
            return [x for x in (v if isinstance(v, list) else _csv(str(v)))]

        parent_uuids = ids("parent_id")
        if q.get("parent_fq_name_str"):
            ptype = q.get("parent_type") or rt.default_parent_type
            if not ptype or ptype == CONFIG_ROOT or self.schema.get(ptype) is None:
                return {rt.collection: []}
            puuid = await self.store.fq_name_to_uuid(self.schema[ptype].object_type,
                                                     str(q["parent_fq_name_str"]).split(":"))
            if puuid is None:
                return {rt.collection: []}
            parent_uuids = [puuid]
        entries = await self.store.list(rt.object_type, parent_uuids=parent_uuids,
                                        back_ref_uuids=ids("back_ref_id"), obj_uuids=ids("obj_uuids"))
        fq_names = ids("fq_names")
        if fq_names is not None:
            wanted = {tuple(f.split(":")) for f in fq_names}
            entries = [e for e in entries if tuple(e[0]) in wanted]
        filters = self._filters(q.get("filters"))
        fields = [f for f in (ids("fields") or []) if f in rt.field_names]
        detail = q.get("detail") is True or _bool(str(q.get("detail"))) if q.get("detail") is not None else False
        count = q.get("count") is True or (isinstance(q.get("count"), str) and _bool(q["count"]))
        exclude_hrefs = "exclude_hrefs" in q and q.get("exclude_hrefs") not in (False, "False", "false")
        entries.sort(key=lambda e: (e[0], e[1]))
        marker: str | None = None
        paginate = q.get("page_limit") is not None
        if paginate:
            try:
                limit = int(q["page_limit"])
            except (TypeError, ValueError) as e:
                raise FieldError("page_limit", f"must be an integer, got {q['page_limit']!r}") from e
            if limit < 1:
                raise FieldError("page_limit", f"must be at least 1, got {limit}")
            entries.sort(key=lambda e: e[1])  # pages follow uuid order; the marker is the last uuid
            after = q.get("page_marker")
            if after:
                entries = [e for e in entries if e[1] > str(after)]
            if len(entries) > limit:
                entries = entries[:limit]
                marker = entries[-1][1]
        need_objects = bool(filters) or detail or fields
        objs: list[Obj] = []
        if need_objects:
            want = None if detail else sorted(set(fields) | {k for k, _ in filters})
            found = await self.store.read_many([u for _, u in entries], fields=want)
            for o in found:
                if o is None or o.get("type") != rt.object_type:
                    continue
                if filters and not all(any(o.get(k) == v for v in vals) for k, vals in self._group(filters)):
                    continue
                objs.append(o)
        if count:
            n = len(objs) if filters else len(entries)
            return {rt.collection: {"count": n}}
        if not detail:
            if not need_objects:
                items = [{"uuid": u, "fq_name": fq} for fq, u in entries]
            else:
                items = [{"uuid": o["uuid"], "fq_name": o["fq_name"], **{f: o[f] for f in fields if f in o}}
                         for o in objs]
            if not exclude_hrefs:
                for it in items:
                    it["href"] = self.href(base, rt.resource_type, it["uuid"])
            return {rt.collection: items, "marker": marker} if paginate else {rt.collection: items}
        out = []
        for o in objs:
            shown = self.present(base, rt, o, exclude_hrefs)
            for f in list(shown):
                if (f in rt.children or f in rt.back_refs) and f not in fields:
                    del shown[f]
            out.append({rt.resource_type: shown})
        return {rt.collection: out, "marker": marker} if paginate else {rt.collection: out}

    @staticmethod
    def _filters(raw: Any) -> list[tuple[str, Any]]:
        if not raw:
            return []
        out = []
        for part in str(raw).split(","):
            if "==" not in part:
                raise FieldError("filters", f"expected key==<json>, got {part!r}")
            k, v = part.split("==", 1)
            try:
                out.append((k, json.loads(v)))
            except ValueError:
                out.append((k, v))
        return out

    @staticmethod
    def _group(filters: list[tuple[str, Any]]) -> list[tuple[str, list[Any]]]:
        grouped: dict[str, list[Any]] = {}
        for k, v in filters:
            grouped.setdefault(k, []).append(v)
        return list(grouped.items())

    # --- routes ----------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.h_home)
        r.add_get("/hello", self.h_hello)
        r.add_post("/fqname-to-id", self.h_fqname_to_id)
        r.add_post("/id-to-fqname", self.h_id_to_fqname)
        r.add_post("/ref-update", self.h_ref_update)
        r.add_post("/ref-relax-for-delete", self.h_ref_relax)
        r.add_get("/prop-collection-get", self.h_prop_get)
        r.add_post("/prop-collection-update", self.h_prop_update)
        r.add_post("/useragent-kv", self.h_kv)
        r.add_post("/list-bulk-collection", self.h_list_bulk)
        r.add_get("/obj-perms", self.h_obj_perms)
        r.add_post("/chown", self.h_chown)
        r.add_post("/chmod", self.h_chmod)
        r.add_get("/aaa-mode", self.h_aaa_get)
        r.add_put("/aaa-mode", self.h_aaa_put)
        r.add_post("/set-tag", self.h_set_tag)
        r.add_post("/virtual-network/{uuid}/ip-alloc", self.h_ip_alloc)
        r.add_post("/virtual-network/{uuid}/ip-free", self.h_ip_free)
        r.add_post("/virtual-network/{uuid}/subnet-ip-count", self.h_subnet_ip_count)
        r.add_get("/{collection}", self.h_list)
        r.add_post("/{collection}", self.h_create)
        r.add_get("/{type}/{uuid}", self.h_read)
        r.add_put("/{type}/{uuid}", self.h_update)
        r.add_delete("/{type}/{uuid}", self.h_delete)

    async def h_hello(self, request: web.Request) -> web.Response:
        """The bare endpoint of the same HTTP stack: the benchmarks' local ceiling."""
        return web.json_response({"hello": "contrail-api"})

    async def h_home(self, request: web.Request) -> web.Response:
        return web.json_response(self.schema.homepage(self.base(request)))

    def _collection(self, request: web.Request) -> ResourceType:
        rt = self.schema.by_collection(request.match_info["collection"])
        if rt is None:
            raise NotFound(f"Unknown collection /{request.match_info['collection']}")
        return rt

    async def h_create(self, request: web.Request) -> web.Response:
        rt = self._collection(request)
        body = await self.body(request)
        if not isinstance(body, dict) or rt.resource_type not in body:
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        obj = await self.create(rt, body[rt.resource_type], self.base(request))
        base = self.base(request)
        out = {"name": obj["fq_name"][-1], "fq_name": obj["fq_name"], "uuid": obj["uuid"],
               "href": self.href(base, rt.resource_type, obj["uuid"])}
        if obj.get("parent_type"):
            out.update(parent_type=obj["parent_type"], parent_uuid=obj["parent_uuid"],
                       parent_href=self.href(base, obj["parent_type"], obj["parent_uuid"]))
        return web.json_response({rt.resource_type: out})

    async def h_read(self, request: web.Request) -> web.Response:
        rt = self.rtype(request.match_info["type"])
        q = request.query
        fields = _csv(q.get("fields")) or None
        obj = await self.lookup(rt, request.match_info["uuid"], fields=fields)
        shown = self.present(self.base(request), rt, obj, "exclude_hrefs" in q)
        if fields is None:
            for key, group in (("exclude_children", rt.children), ("exclude_back_refs", rt.back_refs)):
                if key in q:
                    for f in group:
                        shown.pop(f, None)
        shown.pop("relaxed_back_refs", None)
        return web.json_response({rt.resource_type: shown})

    async def h_update(self, request: web.Request) -> web.Response:
        rt = self.rtype(request.match_info["type"])
        body = await self.body(request)
        inner = None
        if body is not None:
            if not isinstance(body, dict):
                raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
            inner = body.get(rt.resource_type)
        uuid = request.match_info["uuid"]
        await self.update(rt, uuid, inner)
        return web.json_response({rt.resource_type: {"uuid": uuid,
                                                     "href": self.href(self.base(request), rt.resource_type, uuid)}})

    async def h_delete(self, request: web.Request) -> web.Response:
        rt = self.rtype(request.match_info["type"])
        await self.delete(rt, request.match_info["uuid"], self.base(request))
        return web.Response(status=200, text="", content_type=TEXT)

    async def h_list(self, request: web.Request) -> web.Response:
        rt = self._collection(request)
        return web.json_response(await self.list(rt, dict(request.query), self.base(request)))

    async def h_list_bulk(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict) or not body.get("type"):
            raise FieldError("type", "list-bulk-collection needs a body with 'type'")
        rt = self.rtype(body["type"])
        return web.json_response(await self.list(rt, body, self.base(request)))

    async def h_fqname_to_id(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with type and fq_name")
        rt = self.rtype(str(body.get("type") or ""))
        fq = body.get("fq_name")
        if not isinstance(fq, list) or not fq or not all(isinstance(x, str) for x in fq):
            raise FieldError("fq_name", f"expected a list of strings, got {fq!r}")
        u = await self.store.fq_name_to_uuid(rt.object_type, fq)
        if u is None:
            raise NotFound(f"Name {fq} not found")
        return web.json_response({"uuid": u})

    async def h_id_to_fqname(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        u = body.get("uuid") if isinstance(body, dict) else None
        if not isinstance(u, str):
            raise FieldError("uuid", "missing")
        found = await self.store.uuid_to_fq_name(u)
        if found is None:
            raise NotFound(f"UUID {u} not found")
        return web.json_response({"fq_name": found[0], "type": canonical(found[1])})

    async def h_ref_update(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object")
        rt = self.rtype(str(body.get("type") or ""))
        u = body.get("uuid")
        if not isinstance(u, str):
            raise FieldError("uuid", "missing")
        ref_type = str(body.get("ref-type") or "")
        ref_t = rt.ref_to(ref_type)
        if ref_t is None:
            raise FieldError("ref-type", f"{rt.resource_type} has no reference to {ref_type!r}")
        op = body.get("operation")
        if op not in ("ADD", "DELETE"):
            raise FieldError("operation", f"must be ADD or DELETE, got {op!r}")
        obj = await self.lookup(rt, u)
        ref_uuid = body.get("ref-uuid")
        if not ref_uuid:
            fq = body.get("ref-fq-name")
            if not isinstance(fq, list) or not fq:
                raise FieldError("ref-uuid", "ref-uuid or ref-fq-name is required")
            ref_uuid = await self.store.fq_name_to_uuid(self.schema[ref_t.target].object_type, fq)
            if ref_uuid is None:
                raise NotFound(f"Name {fq} not found")
        current = [dict(r) for r in obj.get(ref_t.name) or []]
        current = [r for r in current if r["uuid"] != ref_uuid]
        if op == "ADD":
            attr = body.get("attr")
            if ref_t.attr_type and attr is not None:
                from contrail_ha.services.config_api.validation import validate_ref_attr

                attr = validate_ref_attr(rt, ref_t.name, attr, path=f"{ref_t.name}.attr")
            item: Obj = {"uuid": ref_uuid}
            if ref_t.attr_type:
                item["attr"] = attr
            current.append(item)
        resolved = await self.resolve_refs(rt, {ref_t.name: current})
        await self.require_writable()
        await self.store.update(u, {"id_perms": {**obj["id_perms"], "last_modified": now()}}, resolved)
        await self.changed("UPDATE", rt.object_type, u, obj["fq_name"], new=resolved)
        return web.json_response({"uuid": u})

    async def h_ref_relax(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict) or not body.get("uuid") or not body.get("ref-uuid"):
            raise FieldError("ref-uuid", "uuid and ref-uuid are required")
        await self.require_writable()
        await self.store.relax_ref(body["uuid"], body["ref-uuid"])
        return web.json_response({"uuid": body["uuid"]})

    async def _prop_target(self, u: str) -> tuple[ResourceType, Obj]:
        found = await self.store.uuid_to_fq_name(u)
        if found is None:
            raise NotFound(f"UUID {u} not found")
        rt = self.schema[found[1]]
        return rt, await self.lookup(rt, u)

    async def h_prop_get(self, request: web.Request) -> web.Response:
        q = request.query
        u = q.get("uuid")
        if not u:
            raise FieldError("uuid", "missing")
        rt, obj = await self._prop_target(u)
        fields = _csv(q.get("fields"))
        out: Obj = {}
        for f in fields:
            p = rt.props.get(f)
            if p is None or not (p.is_list or p.is_map):
                raise FieldError("fields", f"{f} is not a list or map property of {rt.resource_type}")
            value = obj.get(f) or {}
            elems = value.get(p.wrapper, []) if p.has_wrapper and isinstance(value, dict) else (value or [])
            if p.is_list:
                pairs = [[e, str(i)] for i, e in enumerate(elems)]
            else:
                pairs = [[e, e.get(p.map_key)] for e in elems if isinstance(e, dict)]
            if q.get("position") is not None:
                pairs = [pr for pr in pairs if pr[1] == q["position"]]
            out[f] = pairs
        return web.json_response(out)

    async def h_prop_update(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("uuid"), str):
            raise FieldError("uuid", "missing")
        rt, obj = await self._prop_target(body["uuid"])
        changes: Obj = {}
        for i, upd in enumerate(body.get("updates") or []):
            f = upd.get("field") if isinstance(upd, dict) else None
            p = rt.props.get(f) if f else None
            if p is None or not (p.is_list or p.is_map):
                raise FieldError(f"updates[{i}].field", f"{f!r} is not a list or map property of {rt.resource_type}")
            cur = changes.get(f, obj.get(f)) or {}
            elems = list(cur.get(p.wrapper, []) if p.has_wrapper and isinstance(cur, dict) else (cur or []))
            op, pos, val = upd.get("operation"), upd.get("position"), upd.get("value")
            if p.is_map:
                if op == "set":
                    key = (val or {}).get(p.map_key) if isinstance(val, dict) else None
                    if key is None:
                        raise FieldError(f"updates[{i}].value.{p.map_key}", "map element needs its key")
                    elems = [e for e in elems if e.get(p.map_key) != key] + [val]
                elif op == "delete":
                    if not any(e.get(p.map_key) == pos for e in elems):
                        raise NotFound(f"{f}: no element with key {pos!r}")
                    elems = [e for e in elems if e.get(p.map_key) != pos]
                else:
                    raise FieldError(f"updates[{i}].operation", f"map operations are set/delete, got {op!r}")
            else:
                if op == "add":
                    elems.append(val)
                elif op in ("modify", "delete"):
                    try:
                        idx = int(pos)
                        elems[idx]
                    except (TypeError, ValueError, IndexError) as e:
                        raise FieldError(f"updates[{i}].position", f"no list element at {pos!r}") from e
                    if op == "modify":
                        elems[idx] = val
                    else:
                        del elems[idx]
                else:
                    raise FieldError(f"updates[{i}].operation", f"list operations are add/modify/delete, got {op!r}")
            new = {p.wrapper: elems} if p.has_wrapper else elems
            changes[f] = validate_prop(rt, f, new)
        if changes:
            await self.require_writable()
            changes["id_perms"] = {**obj["id_perms"], "last_modified": now()}
            await self.store.update(obj["uuid"], changes, None)
            await self.changed("UPDATE", rt.object_type, obj["uuid"], obj["fq_name"], new=changes)
        return web.Response(status=200, text="", content_type=TEXT)

    async def h_kv(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with operation and key")
        op, key = body.get("operation"), body.get("key")
        if op == "STORE":
            await self.require_writable()
            await self.store.kv_store(key, body.get("value"))
            return web.Response(status=200, text="", content_type=TEXT)
        if op == "RETRIEVE":
            if key is None:
                return web.json_response({"value": await self.store.kv_all()})
            value = await self.store.kv_retrieve(key)
            if value is None:
                raise NotFound(f"Unknown key {key}")
            return web.json_response({"value": value})
        if op == "DELETE":
            await self.require_writable()
            await self.store.kv_delete(key)
            return web.Response(status=200, text="", content_type=TEXT)
        raise FieldError("operation", f"must be STORE, RETRIEVE or DELETE, got {op!r}")

    async def h_obj_perms(self, request: web.Request) -> web.Response:
        return web.json_response({"token_info": None, "is_cloud_admin_role": True,
                                  "is_global_read_only_role": False, "permissions": "RWX"})

    async def _perms_update(self, request: web.Request, fn: Callable[[Obj, Obj], None]) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("uuid"), str):
            raise FieldError("uuid", "missing")
        rt, obj = await self._prop_target(body["uuid"])
        perms2 = dict(obj.get("perms2") or default_perms2())
        fn(body, perms2)
        await self.require_writable()
        await self.store.update(obj["uuid"], {"perms2": perms2}, None)
        await self.changed("UPDATE", rt.object_type, obj["uuid"], obj["fq_name"], new={"perms2": perms2})
        return web.json_response({})

    async def h_chown(self, request: web.Request) -> web.Response:
        def apply(body: Obj, perms2: Obj) -> None:
            if not body.get("owner"):
                raise FieldError("owner", "missing")
            perms2["owner"] = str(body["owner"]).replace("-", "")
        return await self._perms_update(request, apply)

    async def h_chmod(self, request: web.Request) -> web.Response:
        def apply(body: Obj, perms2: Obj) -> None:
            for k in ("owner", "owner_access", "global_access", "share"):
                if body.get(k) is not None:
                    if k.endswith("_access") and (not isinstance(body[k], int) or not 0 <= body[k] <= 7):
                        raise FieldError(k, f"must be an integer 0-7, got {body[k]!r}")
                    perms2[k] = body[k]
        return await self._perms_update(request, apply)

    async def h_aaa_get(self, request: web.Request) -> web.Response:
        return web.json_response({"aaa-mode": self.aaa_mode})

    async def h_aaa_put(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        mode = body.get("aaa-mode") if isinstance(body, dict) else None
        if mode not in ("no-auth", "cloud-admin", "rbac"):
            raise FieldError("aaa-mode", f"must be no-auth, cloud-admin or rbac, got {mode!r}")
        self.aaa_mode = mode
        return web.json_response({"aaa-mode": mode})

    async def _vn(self, request: web.Request) -> Obj:
        return await self.lookup(self.schema["virtual-network"], request.match_info["uuid"])

    async def h_ip_alloc(self, request: web.Request) -> web.Response:
        vn = await self._vn(request)
        body = await self.body(request) or {}
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with count, subnet, family")
        count = body.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= 4096:
            raise FieldError("count", f"must be an integer 1-4096, got {count!r}")
        family = body.get("family")
        if family not in (None, "v4", "v6"):
            raise FieldError("family", f"must be v4 or v6, got {family!r}")
        await self.require_writable()
        owner = f"ip-alloc:{vn['uuid']}"
        out = []
        for _ in range(count):
            addr, _s = await self.ipam.allocate(vn, owner, family=family, subnet_uuid=body.get("subnet"))
            out.append(addr)
        return web.json_response({"ip_addr": out})

    async def h_ip_free(self, request: web.Request) -> web.Response:
        vn = await self._vn(request)
        body = await self.body(request) or {}
        addrs = body.get("ip_addr") if isinstance(body, dict) else None
        if not isinstance(addrs, list):
            raise FieldError("ip_addr", "expected a list of addresses")
        await self.require_writable()
        for a in addrs:
            await self.ipam.free(vn, str(a))
        return web.Response(status=200, text="", content_type=TEXT)

    async def h_subnet_ip_count(self, request: web.Request) -> web.Response:
        vn = await self._vn(request)
        body = await self.body(request) or {}
        subnets = body.get("subnet_list") if isinstance(body, dict) else None
        if not isinstance(subnets, list):
            raise FieldError("subnet_list", "expected a list of subnets")
        return web.json_response({"ip_count_list": [await self.ipam.count(vn, str(c)) for c in subnets]})

    async def _project_fq(self, obj: Obj) -> list[str] | None:
        """The project an object lives in (its own fq_name for a project), None for global objects."""
        if obj.get("type") == "project":
            return list(obj["fq_name"])
        fq = obj["fq_name"]
        if len(fq) >= 3 and await self.store.fq_name_to_uuid("project", fq[:2]) is not None:
            return list(fq[:2])
        return None

    async def h_set_tag(self, request: web.Request) -> web.Response:
        """Set, add or remove the tags of an object by type (R2005 ``set-tag``)."""
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with obj_type, obj_uuid and tag types")
        rt = self.rtype(str(body.get("obj_type") or ""))
        if "tag_refs" not in rt.refs:
            raise FieldError("obj_type", f"{rt.resource_type} cannot be tagged")
        u = body.get("obj_uuid")
        if not isinstance(u, str):
            raise FieldError("obj_uuid", "missing")
        obj = await self.lookup(rt, u)
        refs = [dict(r) for r in obj.get("tag_refs") or []]
        project_fq = await self._project_fq(obj)

        def type_of(ref: Obj) -> str:
            return ref["to"][-1].split("=", 1)[0]

        async def tag_ref(tag_type: str, value: Any, is_global: bool) -> Obj:
            if not isinstance(value, str) or not value:
                raise FieldError(f"{tag_type}.value", f"expected a tag value, got {value!r}")
            name = f"{tag_type}={value}"
            fq = [name] if is_global or project_fq is None else [*project_fq, name]
            tu = await self.store.fq_name_to_uuid("tag", fq)
            if tu is None:
                raise NotFound(f"Tag {fq} not found")
            return {"to": fq, "uuid": tu}

        for key, spec in body.items():
            if key in ("obj_type", "obj_uuid"):
                continue
            tag_type = key.lower()
            if spec is None:
                refs = [r for r in refs if type_of(r) != tag_type]
                continue
            if not isinstance(spec, dict):
                raise FieldError(key, f"expected an object with value or add_values/delete_values, got {spec!r}")
            is_global = bool(spec.get("is_global"))
            if "value" in spec:
                new = await tag_ref(tag_type, spec["value"], is_global)
                refs = [r for r in refs if type_of(r) != tag_type] + [new]
                continue
            if tag_type != "label" and ("add_values" in spec or "delete_values" in spec):
                raise FieldError(key, "only label tags take add_values/delete_values")
            for v in spec.get("add_values") or []:
                new = await tag_ref(tag_type, v, is_global)
                if all(r["uuid"] != new["uuid"] for r in refs):
                    refs.append(new)
            for v in spec.get("delete_values") or []:
                gone = await tag_ref(tag_type, v, is_global)
                refs = [r for r in refs if r["uuid"] != gone["uuid"]]
        await self.require_writable()
        await self.store.update(u, {"id_perms": {**obj["id_perms"], "last_modified": now()}}, {"tag_refs": refs})
        await self.changed("UPDATE", rt.object_type, u, obj["fq_name"], new={"tag_refs": refs})
        return web.json_response({})


# The id HAProxy gives each request (retries of a request keep it); None when not behind HAProxy.
REQUEST_ID_HEADER = "X-Contrail-HA-Request"
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CREATE_NAMESPACE = uuidlib.UUID("6f1c3f0e-5b3a-4f36-9a39-0b1f0c7d2a11")


def create_uuid(obj_type: str, fq_name: list[str]) -> str:
    """A new object's uuid: derived from the request id when there is one, so that a create that
    HAProxy retries on another replica (after the first died mid-way) gets the same uuid - its
    fq-name lock is then already its own, and a finished first attempt is returned, not repeated."""
    rid = REQUEST_ID.get()
    if rid is None:
        return str(uuidlib.uuid4())
    return str(uuidlib.uuid5(CREATE_NAMESPACE, f"{rid}|{obj_type}|{':'.join(fq_name)}"))


# Who made the request being served: the config log's "who" (user, user agent, client address).
REQUESTER: ContextVar[dict[str, str] | None] = ContextVar("requester", default=None)


def requester(request: web.Request) -> dict[str, str]:
    h = request.headers
    remote = h.get("X-Forwarded-For", "").split(",")[0].strip() or request.remote or ""
    return {"user": h.get("X-User-Name") or h.get("X-Auth-User") or "anonymous",
            "useragent": h.get("X-Contrail-Useragent") or h.get("User-Agent", ""), "remote": remote}


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """ConfigError -> its status, FieldError -> 400 naming the field; never a 500 for client input."""
    REQUESTER.set(requester(request))
    REQUEST_ID.set(request.headers.get(REQUEST_ID_HEADER) or None)
    try:
        return await handler(request)
    except FieldError as e:
        return web.Response(status=400, text=str(e), content_type=TEXT)
    except ConfigError as e:
        return web.Response(status=e.status, text=str(e), content_type=TEXT)
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413, text=f"Request body too large: more than {MAX_BODY} bytes",
                            content_type=TEXT)
    except web.HTTPException as e:
        return web.Response(status=e.status, text=e.text or e.reason, content_type=TEXT)


__all__ = ["ConfigApi", "Hooks", "errors", "objects"]
