"""What every part of contrail-api's service layer shares: the schema, the parts (store,
coordinator, notifier, hooks), lookups, ref resolution, change announcement and the object's wire
presentation. No HTTP here: the handlers (``routes``) call the service with plain values."""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from contrail_ha.services.config_api.interfaces import ConfigStoreAPI, CoordinatorAPI, NotifierAPI
from contrail_ha.services.config_api.objects import NotFound, Obj, Unavailable
from contrail_ha.services.config_api.rows import Collection
from contrail_ha.services.config_api.schema import CONFIG_ROOT, ResourceType, canonical, schema
from contrail_ha.services.config_api.validation import FieldError, is_uuid

log = logging.getLogger(__name__)


MAX_REFS = 1000  # refs per request: each costs a lookup and a claim on its target's row
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


def collection_layout(obj_type: str, prop: str) -> Collection | None:
    """The store's layout of a property from the schema: list and map properties element-wise."""
    rt = schema().get(obj_type)
    p = rt.props.get(prop) if rt is not None else None
    if p is None or not (p.is_list or p.is_map):
        return None
    return Collection("list" if p.is_list else "map", p.wrapper if p.has_wrapper else None, p.map_key)


def default_perms2(owner: str = "cloud-admin") -> dict[str, Any]:
    return {"owner": owner, "owner_access": 7, "global_access": 0, "share": []}


class Hooks:
    """Type-specific behaviour around the generic create/update/delete (ids, IPAM ...)."""

    async def prepare_create(self, rt: ResourceType, body: Obj) -> Obj:
        """The create body completed before anything is validated or locked (e.g. a tag's name from
        its type and value); may raise ConfigError. Must not write anything."""
        return body

    async def pre_create(self, rt: ResourceType, obj: Obj) -> None:
        """Fill or check type-specific fields; may raise ConfigError."""

    async def undo_create(self, rt: ResourceType, obj: Obj) -> None:
        """Release what pre_create took when the create fails."""

    async def pre_update(self, rt: ResourceType, old: Obj, changes: Obj, refs: dict[str, Any]) -> None:
        """Check or complete an update (``refs``: the ref lists it replaces)."""

    async def post_delete(self, rt: ResourceType, obj: Obj) -> None:
        """Release what the object held."""


class ApiCore:
    """The API over a store, a coordinator and a notifier (each with the documented async API)."""

    def __init__(self, store: ConfigStoreAPI | None, zk: CoordinatorAPI | None, notifier: NotifierAPI | None,
                 hooks: Hooks | None = None) -> None:
        self.schema = schema()
        # None only until the replica's start-up has connected them (app.py), while it serves nothing.
        self.store: ConfigStoreAPI = store  # type: ignore[assignment]
        self.zk: CoordinatorAPI = zk  # type: ignore[assignment]
        self.notifier: NotifierAPI = notifier  # type: ignore[assignment]
        self.hooks = hooks or Hooks()
        self.aaa_mode = "no-auth"
        self.ipam: Any = None
        # Called after every change is stored and announced: (oper, type, uuid, fq_name, old, new).
        self.audit: Callable[[str, str, str, list[str], Obj | None, Obj | None], None] | None = None
        # Why writes are refused now (this replica's clock cannot be vouched for), or None: clock.ClockGuard.
        self.clock_refusal: Callable[[], str | None] | None = None

    # --- helpers -------------------------------------------------------------------------------
    def rtype(self, name: str) -> ResourceType:
        rt = self.schema.get(name)
        if rt is None or rt.resource_type == CONFIG_ROOT:
            raise NotFound(f"Unknown resource type {name}")
        return rt

    async def require_writable(self) -> None:
        """Refuse a write up front (503) when it could not be coordinated or announced. A ZooKeeper
        session that is moving to another server (a leader election) is waited for, briefly."""
        if self.clock_refusal is not None and (why := self.clock_refusal()) is not None:
            raise Unavailable(f"Writes refused: {why}")
        if not self.zk.connected and not await self.zk.wait_writable():
            raise Unavailable("No connection to zookeeper")
        if self.notifier is not None:
            self.notifier.check_capacity()  # too many unconfirmed notifications: refuse before writing

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
        if not is_uuid(uuid):  # every stored object has a canonical uuid: nothing else names one
            raise NotFound(f"{rt.resource_type} {str(uuid)[:100]!r} not found")
        obj = await self.store.read(uuid, fields=fields)
        if obj is None or obj.get("type") != rt.object_type:
            raise NotFound(f"{rt.resource_type} {uuid} not found")
        return obj

    async def resolve_refs(self, rt: ResourceType, body: Obj) -> dict[str, list[Obj]]:
        """Each ref in ``body`` with its target's uuid and fq_name; 400 on a bad ref, 404 on a missing
        target. The form is checked for every ref before any lookup; lookups run concurrently."""
        out: dict[str, list[Obj]] = {}
        wanted: list[tuple[str, int, str, str | None, list[str] | None, Any]] = []
        total = 0
        for field, ref_t in rt.refs.items():
            if field not in body:
                continue
            refs = body[field] or []
            if not isinstance(refs, list):
                raise FieldError(field, f"expected a list of refs, got {type(refs).__name__}")
            total += len(refs)
            if total > MAX_REFS:
                raise FieldError(field, f"at most {MAX_REFS} refs per request")
            out[field] = []
            for i, ref in enumerate(refs):
                if not isinstance(ref, dict):
                    raise FieldError(f"{field}[{i}]", "expected an object with 'to' or 'uuid'")
                to = ref.get("to")
                if isinstance(to, dict) and to.get("uuid"):  # client quirk of set_<ref>_list([obj])
                    ref = {**ref, "uuid": to["uuid"], "to": None}
                    to = None
                ref_uuid = ref.get("uuid")
                if ref_uuid is not None and ref_uuid != "":
                    if not isinstance(ref_uuid, str) or not is_uuid(ref_uuid):
                        raise FieldError(f"{field}[{i}].uuid", f"expected a UUID string, got {ref_uuid!r}"[:200])
                    wanted.append((field, i, ref_t.target, ref_uuid, None, ref.get("attr")))
                elif isinstance(to, list) and to and all(isinstance(x, str) for x in to):
                    wanted.append((field, i, ref_t.target, None, list(to), ref.get("attr")))
                else:
                    raise FieldError(f"{field}[{i}].to", f"expected the fq_name of a {ref_t.target}, got {to!r}"[:300])

        async def one(w: tuple[str, int, str, str | None, list[str] | None, Any]) -> Obj:
            field, i, target_name, ref_uuid, to, attr = w
            target = self.schema[target_name]
            if ref_uuid is not None:
                found = await self.store.uuid_to_fq_name(ref_uuid)
                if found is None:
                    raise NotFound(f"{field}[{i}]: {target_name} {ref_uuid} not found")
                fq, otype = found
                if otype != target.object_type:
                    raise FieldError(f"{field}[{i}]",
                                     f"refers to a {canonical(otype)}, not a {target_name} ({ref_uuid})")
            else:
                assert to is not None
                ref_uuid = await self.store.fq_name_to_uuid(target.object_type, to)
                if ref_uuid is None:
                    raise NotFound(f"{field}[{i}]: {target_name} {to} not found"[:300])
                fq = to
            item: Obj = {"to": fq, "uuid": ref_uuid}
            if rt.refs[field].attr_type:
                item["attr"] = attr
            return item

        for k in range(0, len(wanted), 64):
            chunk = wanted[k:k + 64]
            for w, item in zip(chunk, await asyncio.gather(*(one(w) for w in chunk)), strict=True):
                out[w[0]].append(item)
        return out

    async def changed(self, oper: str, obj_type: str, uuid: str, fq_name: list[str], *,
                      obj_dict: Obj | None = None, old: Obj | None = None, new: Obj | None = None) -> None:
        """A change is stored: notify the other replicas (RabbitMQ), then log it (analytics)."""
        await self.notifier.publish(oper, obj_type, uuid, fq_name, obj_dict=obj_dict)
        if self.audit is not None:
            try:  # the change is done and announced: its log record must never undo that answer
                self.audit(oper, obj_type, uuid, fq_name, old, new)
            except Exception:
                log.exception("config log record of %s %s %s not sent", oper, obj_type, uuid)

    def collection(self, name: str) -> ResourceType:
        """The type of the collection ``/<name>`` (404 when there is none)."""
        rt = self.schema.by_collection(name)
        if rt is None:
            raise NotFound(f"Unknown collection /{name}")
        return rt

    async def lookup_any(self, u: str) -> tuple[ResourceType, Obj]:
        """The object with uuid ``u`` whatever its type (404 when there is none)."""
        if not is_uuid(u):
            raise NotFound(f"UUID {str(u)[:100]!r} not found")
        found = await self.store.uuid_to_fq_name(u)
        if found is None:
            raise NotFound(f"UUID {u} not found")
        rt = self.schema[found[1]]
        return rt, await self.lookup(rt, u)

