"""contrail-api's object writes and their HTTP routes: create, update, delete, ref-update,
prop-collection, set-tag - each fully applied or not at all.

Every route is generic over the 121 resource types of the schema. Client errors are 4xx with a
``text/plain`` message naming the field; nothing a client sends may produce a 500.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import Any

from aiohttp import web

from contrail_ha.services.config_api import objects
from contrail_ha.services.config_api.actions import Actions
from contrail_ha.services.config_api.core import (
    ApiCore,
    Hooks,
    collection_layout,
    default_id_perms,
    default_perms2,
    now,
)
from contrail_ha.services.config_api.listing import Listing
from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, Obj, OutcomeUnknown
from contrail_ha.services.config_api.rows import Links, link_is_fresh, new_position
from contrail_ha.services.config_api.schema import ResourceType, canonical
from contrail_ha.services.config_api.validation import (
    FieldError,
    resolve_parent_type,
    validate_collection_element,
    validate_fq_name,
    validate_object,
    validate_ref_attr,
)
from contrail_ha.services.config_api.wire import (
    REQUEST_ID,
    TEXT,
    _csv,
    fq_name_param,
    object_body,
    optional_uuid,
    uuid_param,
)

log = logging.getLogger(__name__)


class ConfigApi(Listing, Actions, ApiCore):
    """The whole contrail-api: CRUD and the actions over one store, coordinator and notifier."""

    async def create(self, rt: ResourceType, body: Any, base: str) -> Obj:
        """Validate, lock the fq_name in ZooKeeper, write Cassandra, notify. Returns the stored object."""
        if not isinstance(body, dict):
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        body = await self.hooks.prepare_create(rt, body)
        fq_name = validate_fq_name(rt, body.get("fq_name"))
        parent_type = resolve_parent_type(rt, body.get("parent_type"), fq_name)
        clean = validate_object(rt, body, "CREATE")
        _check_collections(rt, clean)
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
        _check_collections(rt, clean)
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
        await self.store.update(uuid, changes, refs or None, modified=id_perms["last_modified"])
        await self.changed("UPDATE", rt.object_type, uuid, old["fq_name"], old=old,
                           new={**changes, **(refs or {})})
        for field, new in refs.items():  # the other side of a ref between objects of one type
            if rt.refs[field].target == rt.resource_type:
                for r in new:
                    await self.notifier.publish("UPDATE-IMPLICIT", rt.object_type, r["uuid"], r["to"])
        return {**old, **changes}

    async def delete(self, rt: ResourceType, uuid: str, base: str) -> None:
        """Mark the row as being deleted, then decide on its links as read now (QUORUM, no cache):
        a create that claimed a link here either is seen (409) or sees the mark (and waits, then
        finds the row gone: 404). See ``ConfigStore.create``."""
        obj = await self.lookup(rt, uuid)
        await self.require_writable()
        await self.store.mark_deleting(uuid)
        done = False
        try:
            decoded = await self.store.read_row(uuid)
            if decoded is None or decoded[0].get("type") != rt.object_type:
                raise NotFound(f"{rt.resource_type} {uuid} not found")
            await self._refuse_if_linked(rt, base, *decoded)
            await self.store.delete(uuid, decoded)
            done = True
        finally:
            if not done:
                await self.store.unmark_deleting(uuid)
        await self.zk.delete_fq_lock(rt.object_type, obj["fq_name"], uuid)
        await self.hooks.post_delete(rt, obj)
        await self.changed("DELETE", rt.object_type, uuid, obj["fq_name"], obj_dict=obj, old=obj)

    async def _refuse_if_linked(self, rt: ResourceType, base: str, row: Obj, links: Links) -> None:
        """409 while the object has children or referrers that exist now (a link to an object that
        does not exist is either a create in progress - 409 too - or a dead create's leftover)."""
        relaxed = set(links.relaxed)
        children = [(t, u) for t, u, _ in links.children
                    if f"{t}s" in rt.children and f"{t}s" not in rt.derived_children]
        back = [(t, u) for t, u, _ in links.backrefs
                if f"{t}_back_refs" in rt.back_refs and f"{t}_back_refs" not in rt.derived_back_refs
                and u not in relaxed]
        for kind, found in (("children", children), ("back", back)):
            for k in range(0, len(found), 64):
                chunk = found[k:k + 64]
                seen = await self.store.visible([u for _, u in chunk])
                blocking = [(t, u) for t, u in chunk if u in seen
                            and not (kind == "children" and seen[u][0][-1].startswith("default-"))]
                if blocking:
                    hrefs = [self.href(base, t, u) for t, u in blocking]
                    if kind == "children":
                        raise Conflict(f"Delete when children still present: {hrefs}")
                    raise Conflict(f"Delete when resource still referred: {hrefs}")
                pending = [u for _, u in chunk if u not in seen and link_is_fresh(links.written.get(u))]
                if pending:
                    what = "child" if kind == "children" else "reference to it"
                    raise Conflict(f"Delete while a {what} is being created ({pending[0]}); try again")

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
        modified = (obj.get("id_perms") or {}).get("last_modified") if isinstance(obj.get("id_perms"), dict) else None
        etag = f'"{modified}"' if isinstance(modified, str) else None
        if etag is not None and _etag_matches(request.headers.get("If-None-Match"), modified):
            return web.Response(status=304, headers={"ETag": etag})
        shown = self.present(self.base(request), rt, obj, "exclude_hrefs" in q)
        if fields is None:
            for key, group in (("exclude_children", rt.children), ("exclude_back_refs", rt.back_refs)):
                if key in q:
                    for f in group:
                        shown.pop(f, None)
        shown.pop("relaxed_back_refs", None)
        return web.json_response({rt.resource_type: shown}, headers={"ETag": etag} if etag else None)

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

    async def h_ref_update(self, request: web.Request) -> web.Response:
        """Add or remove one ref: only that ref's columns are written (concurrent ref-updates of
        different refs all survive); an ADD claims its target, which must exist."""
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object")
        type_name = body.get("type")
        if not isinstance(type_name, str):
            raise FieldError("type", f"expected a resource type, got {type_name!r}"[:200])
        rt = self.rtype(type_name)
        u = uuid_param(body.get("uuid"), "uuid")
        ref_type = body.get("ref-type")
        ref_t = rt.ref_to(ref_type) if isinstance(ref_type, str) else None
        if ref_t is None:
            raise FieldError("ref-type", f"{rt.resource_type} has no reference to {ref_type!r}"[:200])
        op = body.get("operation")
        if op not in ("ADD", "DELETE"):
            raise FieldError("operation", f"must be ADD or DELETE, got {op!r}"[:200])
        obj = await self.lookup(rt, u, fields=[])
        target = self.schema[ref_t.target]
        ref_uuid = optional_uuid(body.get("ref-uuid"), "ref-uuid")
        if ref_uuid is None:
            if body.get("ref-fq-name") is None:
                raise FieldError("ref-uuid", "ref-uuid or ref-fq-name is required")
            fq = fq_name_param(body.get("ref-fq-name"), "ref-fq-name")
            ref_uuid = await self.store.fq_name_to_uuid(target.object_type, fq)
            if ref_uuid is None:
                raise NotFound(f"Name {fq} not found"[:300])
        attr = None
        if op == "ADD":
            found = await self.store.uuid_to_fq_name(ref_uuid)
            if found is None:
                raise NotFound(f"{ref_t.target} {ref_uuid} not found")
            if found[1] != target.object_type:
                raise FieldError("ref-uuid", f"refers to a {canonical(found[1])}, not a {ref_t.target}")
            attr = body.get("attr")
            if ref_t.attr_type and attr is not None:
                attr = validate_ref_attr(rt, ref_t.name, attr, path="attr")
            elif not ref_t.attr_type:
                attr = None
        if op == "ADD":  # the type's rules (e.g. a tag's tag_type_refs cannot change, a VN's subnets completed)
            item: Obj = {"uuid": ref_uuid, "attr": attr}
            await self.hooks.pre_update(rt, obj, {}, {ref_t.name: [item]})
            attr = item.get("attr")
        await self.require_writable()
        await self.store.ref_update(u, target.object_type, ref_uuid, attr, op, modified=now())
        await self.changed("UPDATE", rt.object_type, u, obj["fq_name"],
                           new={ref_t.name: [{"uuid": ref_uuid, "attr": attr, "operation": op}]})
        return web.json_response({"uuid": u})

    async def h_ref_relax(self, request: web.Request) -> web.Response:
        """Mark a ref as relaxed for delete: both objects must exist (nothing is written otherwise)."""
        body = object_body(await self.body(request), "uuid and ref-uuid")
        u = uuid_param(body.get("uuid"), "uuid")
        ref_u = uuid_param(body.get("ref-uuid"), "ref-uuid")
        for field, x in (("uuid", u), ("ref-uuid", ref_u)):
            if await self.store.uuid_to_fq_name(x) is None:
                raise NotFound(f"{field}: UUID {x} not found")
        await self.require_writable()
        await self.store.relax_ref(u, ref_u)
        return web.json_response({"uuid": u})

    async def h_prop_get(self, request: web.Request) -> web.Response:
        """``[[element, position or key], ...]`` of list and map properties, in stored order."""
        q = request.query
        rt, obj = await self._prop_target(uuid_param(q.get("uuid"), "uuid"))
        fields = _csv(q.get("fields"))
        out: Obj = {}
        for f in fields:
            p = rt.props.get(f)
            if p is None or not (p.is_list or p.is_map):
                raise FieldError("fields", f"{f} is not a list or map property of {rt.resource_type}"[:300])
            items = await self.store.read_elements(obj["uuid"], f) or []
            pairs = [[e, pos] for pos, e in items]
            if q.get("position") is not None:
                pairs = [pr for pr in pairs if pr[1] == q["position"]]
            out[f] = pairs
        return web.json_response(out)

    async def h_prop_update(self, request: web.Request) -> web.Response:
        """Element updates of list and map properties: each element is its own column, so concurrent
        updates of different elements (map keys, list positions) all survive."""
        body = object_body(await self.body(request), "uuid and updates")
        target = uuid_param(body.get("uuid"), "uuid")
        updates = body.get("updates")
        if updates is None:
            updates = []
        if not isinstance(updates, list):
            raise FieldError("updates", f"expected a list of updates, got {type(updates).__name__}")
        if len(updates) > MAX_ELEMENT_UPDATES:
            raise FieldError("updates", f"at most {MAX_ELEMENT_UPDATES} updates per request")
        rt, obj = await self._prop_target(target)
        changes: list[tuple[str, str, Any]] = []
        shells: Obj = {}
        current: dict[str, set[str]] = {}

        async def existing(f: str) -> set[str]:
            if f not in current:
                current[f] = {pos for pos, _ in await self.store.read_elements(obj["uuid"], f) or []}
            return current[f]

        for i, upd in enumerate(updates):
            if not isinstance(upd, dict):
                raise FieldError(f"updates[{i}]", "expected an object with field, operation, value, position")
            f = upd.get("field")
            p = rt.props.get(f) if isinstance(f, str) else None
            coll = collection_layout(rt.object_type, f) if p is not None and isinstance(f, str) else None
            if p is None or coll is None or not isinstance(f, str):
                raise FieldError(f"updates[{i}].field",
                                 f"{f!r} is not a list or map property of {rt.resource_type}"[:300])
            op, pos, val = upd.get("operation"), upd.get("position"), upd.get("value")
            shells.setdefault(f, coll.shell(obj.get(f)))
            if op in ("set", "add", "modify"):
                if val is None:
                    raise FieldError(f"updates[{i}].value", "missing")
                val = validate_collection_element(rt, f, val, path=f"updates[{i}].value")
            if p.is_map:
                if op == "set":
                    key = val.get(p.map_key) if isinstance(val, dict) and p.map_key else None
                    if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
                        raise FieldError(f"updates[{i}].value.{p.map_key}", "map element needs its key")
                    changes.append((f, _position(str(key), f"updates[{i}].value.{p.map_key}"), val))
                elif op == "delete":
                    key = _position(pos, f"updates[{i}].position")
                    if key not in await existing(f):
                        raise NotFound(f"{f}: no element with key {key!r}"[:300])
                    changes.append((f, key, None))
                else:
                    raise FieldError(f"updates[{i}].operation", f"map operations are set/delete, got {op!r}"[:200])
            elif op == "add":
                changes.append((f, new_position() if pos is None else _position(pos, f"updates[{i}].position"), val))
            elif op in ("modify", "delete"):
                at = _position(pos, f"updates[{i}].position")
                if at not in await existing(f):
                    raise FieldError(f"updates[{i}].position", f"no list element at {at!r}"[:200])
                changes.append((f, at, val if op == "modify" else None))
            else:
                raise FieldError(f"updates[{i}].operation",
                                 f"list operations are add/modify/delete, got {op!r}"[:200])
        if changes:
            await self.require_writable()
            await self.store.update_elements(obj["uuid"], changes, shells=shells, modified=now())
            await self.changed("UPDATE", rt.object_type, obj["uuid"], obj["fq_name"],
                               new={"updates": [{"field": f, "position": pos, "value": v} for f, pos, v in changes]})
        return web.Response(status=200, text="", content_type=TEXT)

    async def h_set_tag(self, request: web.Request) -> web.Response:
        """Set, add or remove the tags of an object by type (R2005 ``set-tag``)."""
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with obj_type, obj_uuid and tag types")
        rt = self.rtype(str(body.get("obj_type") or ""))
        if "tag_refs" not in rt.refs:
            raise FieldError("obj_type", f"{rt.resource_type} cannot be tagged")
        u = uuid_param(body.get("obj_uuid"), "obj_uuid")
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
            for name in ("add_values", "delete_values"):
                if not isinstance(spec.get(name) or [], list):
                    raise FieldError(f"{key}.{name}", f"expected a list of tag values, got {spec[name]!r}"[:200])
            for v in spec.get("add_values") or []:
                new = await tag_ref(tag_type, v, is_global)
                if all(r["uuid"] != new["uuid"] for r in refs):
                    refs.append(new)
            for v in spec.get("delete_values") or []:
                gone = await tag_ref(tag_type, v, is_global)
                refs = [r for r in refs if r["uuid"] != gone["uuid"]]
        # Only the refs this request adds or removes are written: set-tags of other tag types on
        # the same object at the same moment all survive.
        before = {r["uuid"] for r in obj.get("tag_refs") or []}
        after = {r["uuid"] for r in refs}
        await self.require_writable()
        await self.store.ref_ops(u, adds=[("tag", t, None) for t in sorted(after - before)],
                                 deletes=[("tag", t) for t in sorted(before - after)], modified=now())
        await self.changed("UPDATE", rt.object_type, u, obj["fq_name"], new={"tag_refs": refs})
        return web.json_response({})



CREATE_NAMESPACE = uuidlib.UUID("6f1c3f0e-5b3a-4f36-9a39-0b1f0c7d2a11")


MAX_ELEMENT_UPDATES = 1000
MAX_POSITION = 512  # characters of a list position or map key (a column name: far below Cassandra's 64 KiB)


MAX_ELEMENTS = 10_000  # elements of one list or map property (each is a column of the object's row)


def _check_collections(rt: ResourceType, values: Obj) -> None:
    """Bound list and map properties before anything is written: their element count and map keys
    (a key is a column name)."""
    for name, value in values.items():
        coll = collection_layout(rt.object_type, name) if value is not None else None
        if coll is None:
            continue
        elems = coll.elements(value)
        if len(elems) > MAX_ELEMENTS:
            raise FieldError(name, f"{len(elems)} elements, at most {MAX_ELEMENTS} are allowed")
        if coll.kind == "map":
            for i, e in enumerate(elems):
                key = e.get(coll.key) if isinstance(e, dict) and coll.key else None
                if key is not None:
                    _position(key, f"{name}.{coll.wrapper or ''}[{i}].{coll.key}")


def _position(value: Any, path: str) -> str:
    """A list position or map key as its column stores it."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldError(path, f"expected a string or integer, got {value!r}"[:200])
    text = str(value)
    if not text or len(text) > MAX_POSITION:
        raise FieldError(path, f"must be 1-{MAX_POSITION} characters")
    return text


def _etag_matches(header: str | None, modified: str | None) -> bool:
    """``If-None-Match`` against an object's ``last_modified`` (quotes and weak prefixes ignored,
    ``*`` matches), as the original compares them."""
    if not header or not modified:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == modified:
            return True
    return False


def create_uuid(obj_type: str, fq_name: list[str]) -> str:
    """A new object's uuid: derived from the request id when there is one, so that a create that
    HAProxy retries on another replica (after the first died mid-way) gets the same uuid - its
    fq-name lock is then already its own, and a finished first attempt is returned, not repeated."""
    rid = REQUEST_ID.get()
    if rid is None:
        return str(uuidlib.uuid4())
    return str(uuidlib.uuid5(CREATE_NAMESPACE, f"{rid}|{obj_type}|{':'.join(fq_name)}"))


__all__ = ["ConfigApi", "Hooks", "objects"]
