"""contrail-api's ref writes: ref-update, ref-relax-for-delete, set-tag.

Each writes only the refs it adds or removes (a ref is its own column pair: ``ref:`` on the
object, ``backref:`` on the target), so that concurrent writes of different refs of one object
all survive (docs/integrity.md).
"""

from __future__ import annotations

from typing import Any

from contrail_ha.services.config_api.core import ApiCore, now
from contrail_ha.services.config_api.inputs import fq_name_param, object_body, optional_uuid, uuid_param
from contrail_ha.services.config_api.objects import ConfigError, NotFound, Obj
from contrail_ha.services.config_api.schema import canonical
from contrail_ha.services.config_api.validation import FieldError, validate_ref_attr


class Refs(ApiCore):
    """ref-update, ref-relax-for-delete and set-tag over parsed bodies."""

    async def ref_update(self, body: Any) -> Obj:
        """Add or remove one ref: only that ref's columns are written (concurrent ref-updates of
        different refs all survive); an ADD claims its target, which must exist."""
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
        return {"uuid": u}

    async def ref_relax(self, body: Any) -> Obj:
        """Mark a ref as relaxed for delete: both objects must exist (nothing is written otherwise)."""
        body = object_body(body, "uuid and ref-uuid")
        u = uuid_param(body.get("uuid"), "uuid")
        ref_u = uuid_param(body.get("ref-uuid"), "ref-uuid")
        for field, x in (("uuid", u), ("ref-uuid", ref_u)):
            if await self.store.uuid_to_fq_name(x) is None:
                raise NotFound(f"{field}: UUID {x} not found")
        await self.require_writable()
        await self.store.relax_ref(u, ref_u)
        return {"uuid": u}

    async def set_tag(self, body: Any) -> Obj:
        """Set, add or remove the tags of an object by type (R2005 ``set-tag``)."""
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with obj_type, obj_uuid and tag types")
        rt = self.rtype(str(body.get("obj_type") or ""))
        if "tag_refs" not in rt.refs:
            raise FieldError("obj_type", f"{rt.resource_type} cannot be tagged")
        u = uuid_param(body.get("obj_uuid"), "obj_uuid")
        obj = await self.lookup(rt, u)
        refs = [dict(r) for r in obj.get("tag_refs") or []]
        project_fq = await self.project_fq(obj)

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
        return {}

    async def project_fq(self, obj: Obj) -> list[str] | None:
        """The project an object lives in (its own fq_name for a project), None for global objects."""
        if obj.get("type") == "project":
            return list(obj["fq_name"])
        fq = obj["fq_name"]
        if len(fq) >= 3 and await self.store.fq_name_to_uuid("project", fq[:2]) is not None:
            return list(fq[:2])
        return None
