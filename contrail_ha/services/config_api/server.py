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
from contrail_ha.services.config_api.core import ApiCore, Hooks, default_id_perms, default_perms2, now
from contrail_ha.services.config_api.listing import Listing
from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, Obj, OutcomeUnknown
from contrail_ha.services.config_api.schema import ResourceType
from contrail_ha.services.config_api.validation import (
    FieldError,
    resolve_parent_type,
    validate_fq_name,
    validate_object,
    validate_prop,
)
from contrail_ha.services.config_api.wire import REQUEST_ID, TEXT, _csv

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



CREATE_NAMESPACE = uuidlib.UUID("6f1c3f0e-5b3a-4f36-9a39-0b1f0c7d2a11")


def create_uuid(obj_type: str, fq_name: list[str]) -> str:
    """A new object's uuid: derived from the request id when there is one, so that a create that
    HAProxy retries on another replica (after the first died mid-way) gets the same uuid - its
    fq-name lock is then already its own, and a finished first attempt is returned, not repeated."""
    rid = REQUEST_ID.get()
    if rid is None:
        return str(uuidlib.uuid4())
    return str(uuidlib.uuid5(CREATE_NAMESPACE, f"{rid}|{obj_type}|{':'.join(fq_name)}"))


__all__ = ["ConfigApi", "Hooks", "objects"]
