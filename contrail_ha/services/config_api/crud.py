"""contrail-api's object writes and reads by uuid: create, read, update, delete - each write fully
applied or not at all.

Every operation is generic over the 121 resource types of the schema. Client errors raise the
``objects.ConfigError`` tree (4xx with a message naming the field); nothing a client sends may
produce a 500. No HTTP here: ``routes`` parses the request and builds the response.
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from collections.abc import Mapping
from typing import Any

from contrail_ha.services.config_api.core import ApiCore, default_id_perms, default_perms2, now
from contrail_ha.services.config_api.inputs import REQUEST_ID, csv_list
from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, Obj, OutcomeUnknown, Unavailable
from contrail_ha.services.config_api.props import check_collections
from contrail_ha.services.config_api.rows import Fence, Links
from contrail_ha.services.config_api.schema import ResourceType
from contrail_ha.services.config_api.validation import (
    FieldError,
    resolve_parent_type,
    validate_fq_name,
    validate_object,
)

log = logging.getLogger(__name__)

CREATE_NAMESPACE = uuidlib.UUID("6f1c3f0e-5b3a-4f36-9a39-0b1f0c7d2a11")


class Crud(ApiCore):
    """Create, read, update and delete of one object, with the claim/mark integrity protocol of
    ``ConfigStore`` (docs/integrity.md)."""

    async def create(self, rt: ResourceType, body: Any, base: str) -> Obj:
        """Validate, lock the fq_name in ZooKeeper, write Cassandra, notify. Returns the stored object."""
        if not isinstance(body, dict):
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        body = await self.hooks.prepare_create(rt, body)
        fq_name = validate_fq_name(rt, body.get("fq_name"))
        parent_type = resolve_parent_type(rt, body.get("parent_type"), fq_name)
        clean = validate_object(rt, body, "CREATE")
        check_collections(rt, clean)
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
                await self._earlier_attempt_final(rt, obj["uuid"])
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
        fence = Fence.start()  # every column this create writes carries its time (docs/integrity.md)
        if not await self.zk.create_fq_lock(rt.object_type, fq_name, obj["uuid"], fence_ts=fence.ts):
            # the lock holds the winner's uuid even before its Cassandra write lands
            existing = await self.zk.read_fq_lock(rt.object_type, fq_name) or \
                await self.store.fq_name_to_uuid(rt.object_type, fq_name)
            raise Conflict(f"{fq_name} already exists with uuid: {existing}")
        try:
            await self.hooks.pre_create(rt, obj)
            try:
                await self.store.create(obj, fence)
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

    async def _earlier_attempt_final(self, rt: ResourceType, uuid: str) -> None:
        """An earlier attempt's object may be acknowledged only while no delete can have judged that
        attempt dead and be about to revoke it: within the create deadline of its fence (the write
        time of its ``type`` column). Later the outcome is unknown to this replica: 503."""
        at = await self.store.commit_time(uuid)
        if at is None or time.time() - at / 1e6 > self.store.create_deadline:
            raise Unavailable(f"An earlier attempt of this request created {rt.resource_type} {uuid} too long "
                              "ago to confirm it; read the object")

    async def update(self, rt: ResourceType, uuid: str, body: Any) -> Obj:
        old = await self.lookup(rt, uuid)
        if body is None:
            return old
        if not isinstance(body, dict):
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        clean = validate_object(rt, body, "UPDATE")
        check_collections(rt, clean)
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
        finds the row gone: 404), or is judged dead and revoked first. See ``ConfigStore.create``."""
        obj = await self.lookup(rt, uuid)
        await self.require_writable()
        mark = await self.store.mark_deleting(uuid)
        done = False
        try:
            decoded = await self.store.read_row(uuid)
            if decoded is None or decoded[0].get("type") != rt.object_type:
                raise NotFound(f"{rt.resource_type} {uuid} not found")
            for src_type, src, claim_ts in await self._refuse_if_linked(rt, base, *decoded):
                if not await self.store.revoke(src_type, src, decoded[1].claimed.get(src), claim_ts):
                    # it landed since the links were read: a child or referrer that exists now
                    raise still_linked(f"{src_type}s" in rt.children, [self.href(base, src_type, src)])
            await self.store.delete(uuid, decoded)
            done = True
        finally:
            if not done:
                await self.store.unmark_deleting(uuid, mark)
        await self.zk.delete_fq_lock(rt.object_type, obj["fq_name"], uuid)
        await self.hooks.post_delete(rt, obj)
        await self.changed("DELETE", rt.object_type, uuid, obj["fq_name"], obj_dict=obj, old=obj)

    async def _refuse_if_linked(self, rt: ResourceType, base: str, row: Obj,
                                links: Links) -> list[tuple[str, str, int]]:
        """409 while the object has children or referrers that exist now, or a create claiming a
        link here may still acknowledge; returns ``(type, uuid, claim time)`` of the creates whose
        claim is older (judged dead: to be revoked before the row goes)."""
        relaxed = set(links.relaxed)
        children = [(t, u) for t, u, _ in links.children
                    if f"{t}s" in rt.children and f"{t}s" not in rt.derived_children]
        back = [(t, u) for t, u, _ in links.backrefs
                if f"{t}_back_refs" in rt.back_refs and f"{t}_back_refs" not in rt.derived_back_refs
                and u not in relaxed]
        dead: dict[str, tuple[str, str, int]] = {}
        for kind, found in (("children", children), ("back", back)):
            for k in range(0, len(found), 64):
                chunk = found[k:k + 64]
                seen = await self.store.visible([u for _, u in chunk])
                blocking = [(t, u) for t, u in chunk if u in seen
                            and not (kind == "children" and seen[u][0][-1].startswith("default-"))]
                if blocking:
                    raise still_linked(kind == "children", [self.href(base, t, u) for t, u in blocking])
                pending = [u for _, u in chunk if u not in seen and self.store.claim_is_live(links.written.get(u))]
                if pending:
                    what = "child" if kind == "children" else "reference to it"
                    raise Conflict(f"Delete while a {what} is being created ({pending[0]}); try again")
                for t, u in chunk:
                    if u not in seen and links.written.get(u):
                        dead[u] = (t, u, links.written[u])
        return list(dead.values())

    # --- the object endpoints (``POST /<type>s``, ``GET``/``PUT``/``DELETE /<type>/<uuid>``) -----
    async def create_from_body(self, rt: ResourceType, body: Any, base: str) -> Obj:
        """``POST /<type>s``: ``body`` is ``{<type>: {...}}``; the answer names the new object."""
        if not isinstance(body, dict) or rt.resource_type not in body:
            raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
        obj = await self.create(rt, body[rt.resource_type], base)
        out = {"name": obj["fq_name"][-1], "fq_name": obj["fq_name"], "uuid": obj["uuid"],
               "href": self.href(base, rt.resource_type, obj["uuid"])}
        if obj.get("parent_type"):
            out.update(parent_type=obj["parent_type"], parent_uuid=obj["parent_uuid"],
                       parent_href=self.href(base, obj["parent_type"], obj["parent_uuid"]))
        return {rt.resource_type: out}

    async def read(self, rt: ResourceType, uuid: str, q: Mapping[str, str], base: str,
                   if_none_match: str | None = None) -> tuple[Obj | None, str | None]:
        """``GET /<type>/<uuid>``: (the answer, the object's ETag); the answer is None when
        ``if_none_match`` matches the ETag (304). ``q``: ``fields``, ``exclude_hrefs``,
        ``exclude_children``, ``exclude_back_refs``."""
        fields = csv_list(q.get("fields")) or None
        obj = await self.lookup(rt, uuid, fields=fields)
        modified = (obj.get("id_perms") or {}).get("last_modified") if isinstance(obj.get("id_perms"), dict) else None
        etag = f'"{modified}"' if isinstance(modified, str) else None
        if etag is not None and etag_matches(if_none_match, modified):
            return None, etag
        shown = self.present(base, rt, obj, "exclude_hrefs" in q)
        if fields is None:
            for key, group in (("exclude_children", rt.children), ("exclude_back_refs", rt.back_refs)):
                if key in q:
                    for f in group:
                        shown.pop(f, None)
        shown.pop("relaxed_back_refs", None)
        return {rt.resource_type: shown}, etag

    async def update_from_body(self, rt: ResourceType, uuid: str, body: Any, base: str) -> Obj:
        """``PUT /<type>/<uuid>``: ``body`` is ``{<type>: {...}}`` or None (nothing to change)."""
        inner = None
        if body is not None:
            if not isinstance(body, dict):
                raise ConfigError(f"Body must be an object with key {rt.resource_type!r}")
            inner = body.get(rt.resource_type)
        await self.update(rt, uuid, inner)
        return {rt.resource_type: {"uuid": uuid, "href": self.href(base, rt.resource_type, uuid)}}


def still_linked(children: bool, hrefs: list[str]) -> Conflict:
    """The original's 409 for a delete of an object that has children or referrers now."""
    if children:
        return Conflict(f"Delete when children still present: {hrefs}")
    return Conflict(f"Delete when resource still referred: {hrefs}")


def etag_matches(header: str | None, modified: str | None) -> bool:
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
