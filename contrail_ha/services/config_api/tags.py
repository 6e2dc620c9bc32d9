"""Tags and tag-types as R2005's contrail-api (``resources/tag.py``, ``resources/tag_type.py``).

* A tag is created with ``tag_type_name`` and ``tag_value`` (400 otherwise). Its name,
  ``fq_name[-1]`` and ``display_name`` become ``<type>=<value>`` (type lower-cased) whatever the
  client sent - the original rewrites them rather than refusing (vnc_api's ``Tag()`` is named
  ``default-tag`` unless told otherwise). It is global (parent config-root, fq_name ``[name]``)
  or under a project (``[domain, project, name]``).
* Its ``tag-type`` (fq_name ``[type]``, hidden: ``user_visible`` false) is created by the tag's
  create when missing, through the API's own create path: the fq-name lock makes concurrent
  creates on several replicas end with one tag-type; a 409 means another one made (or is
  making) it, which is then read.
* ``tag_type_id`` is ``"0x%04x"``: the well-known types have the original's fixed ids
  (``TagTypeNameToId``: label 0 ... neutron_fwaas 5), the others an index of the ZooKeeper
  allocator ``/id/tags/types/`` (255 .. 0xFFFF). ``tag_id`` is ``"0x%04x%04x"``: the type id,
  then an index of ``/id/tags/values/<type>/`` (0 .. 0xFFFE) holding the tag's fq_name string.
* ``tag_id``, ``tag_type_id`` and ``tag_type_refs`` cannot be set; a tag's type, value, id,
  display name and tag-type ref, and a tag-type's id and display name, cannot be changed (400).
* Deleting a tag frees its value id, then deletes its tag-type unless it is well-known or
  still used (409 from the delete is ignored), as the original; deleting a tag-type frees its id.

The pure functions are unit-tested; :class:`TagHooks` needs the ConfigApi (create/delete of the
tag-type) and :class:`TagAllocators` (ZooKeeper).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from kazoo.exceptions import NotEmptyError

from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, Obj, Unavailable
from contrail_ha.services.config_api.schema import ResourceType
from contrail_ha.services.config_api.zk import Coordinator, Exhausted, IdAllocator, IndexAllocator, escape

log = logging.getLogger(__name__)

# sandesh_common/vns.sandesh ``TagTypeNameToId``: created at start with these ids, never freed.
PREDEFINED_TAG_TYPES: dict[str, int] = {
    "label": 0, "application": 1, "tier": 2, "deployment": 3, "site": 4, "neutron_fwaas": 5,
}
# vnc_db.py VncZkClient: _TAG_TYPE_ID_ALLOC_PATH, _TAG_VALUE_ID_ALLOC_PATH, _TAG_TYPE_RESERVED_SIZE
TAG_TYPE_ID_PATH = "/id/tags/types/"
TAG_VALUE_ID_PATH = "/id/tags/values/%s/"
TAG_TYPE_RESERVED = 255  # ids below are the well-known types'
TAG_TYPE_MAX_ID = 0xFFFF  # 16 bits (the original's size would overflow them from 255 on; capped)
TAG_VALUE_SIZE = 0xFFFF  # _TAG_VALUE_MAX_ID: indexes 0 .. 0xFFFE

TAG = "tag"
TAG_TYPE = "tag_type"
TYPE_WAIT_S = 15.0  # how long a tag create waits for another replica's tag-type to become readable


# --- pure logic ---------------------------------------------------------------------------------
def tag_name(type_name: str, value: str) -> str:
    """R2005's tag name: ``<type>=<value>``, the type in lower case."""
    return f"{type_name.lower()}={value}"


def complete_tag_body(body: Obj) -> Obj:
    """A tag create body with R2005's naming applied (``pre_dbe_alloc``); refuses what it refuses
    before anything is locked: a missing type or value, a given ``tag_id`` or ``tag_type_refs``."""
    for field in ("tag_type_name", "tag_value"):
        value = body.get(field)
        if value is None or value == "":
            raise ConfigError(f"Tag must be created with a type and a value: {field} is missing")
        if not isinstance(value, str):
            raise ConfigError(f"{field}: expected a string, got {type(value).__name__}")
    if body.get("tag_id") is not None:
        raise ConfigError("tag_id: Tag ID is not setable")
    if body.get("tag_type_refs"):
        raise ConfigError("tag_type_refs: Tag Type reference is not setable")
    type_name = body["tag_type_name"].lower()
    name = tag_name(type_name, body["tag_value"])
    fq = body.get("fq_name")
    fq = [*fq[:-1], name] if isinstance(fq, list) and fq else [name]
    out = {k: v for k, v in body.items() if k != "tag_type_refs"}
    out.update(fq_name=fq, name=name, display_name=name, tag_type_name=type_name)
    return out


def complete_tag_type_body(body: Obj) -> Obj:
    """A tag-type create body: its id is never the client's (R2005: "Tag Type ID is not setable");
    the display name is the name."""
    if body.get("tag_type_id") is not None:
        raise ConfigError("tag_type_id: Tag Type ID is not setable")
    fq = body.get("fq_name")
    if isinstance(fq, list) and fq and isinstance(fq[-1], str):
        return {**body, "display_name": fq[-1]}
    return body


def parse_id(value: Any) -> int:
    """An id as stored (``"0x00ff"``, also decimal strings or ints) -> int; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not an id: {value!r}")
    if isinstance(value, int):
        return value
    return int(str(value), 0)


def format_type_id(type_id: int) -> str:
    """``tag_type_id`` as R2005 writes it: ``"0x%04x"``."""
    if not 0 <= type_id <= TAG_TYPE_MAX_ID:
        raise ValueError(f"tag type id {type_id} outside 0..0xFFFF")
    return f"0x{type_id:04x}"


def compose_tag_id(type_id: int | str, value_id: int) -> str:
    """``tag_id``: the type id in the high 16 bits, the value id in the low 16 (``"0x%08x"``)."""
    t = parse_id(type_id)
    if not 0 <= t <= TAG_TYPE_MAX_ID or not 0 <= value_id <= 0xFFFF:
        raise ValueError(f"tag ids out of range: type {t}, value {value_id}")
    return f"0x{t:04x}{value_id:04x}"


def split_tag_id(tag_id: str | int) -> tuple[int, int]:
    """``(type id, value id)`` of a ``tag_id``."""
    n = parse_id(tag_id)
    return n >> 16, n & 0xFFFF


def predefined_type_id(type_name: str) -> int | None:
    return PREDEFINED_TAG_TYPES.get(type_name)


def _differs(changes: Mapping[str, Any], old: Mapping[str, Any], field: str) -> bool:
    """Whether an update sets ``field`` to something else than stored (sending the stored value
    back is not a change: contrail-api-cli sends the whole object)."""
    return field in changes and changes[field] is not None and changes[field] != old.get(field)


def check_tag_update(old: Obj, changes: Obj, refs: Mapping[str, Any]) -> None:
    """R2005 ``TagServer.pre_dbe_update``: name, type, value and id are fixed, and so is the
    tag-type ref."""
    for field in ("tag_type_name", "tag_value", "tag_id", "display_name"):
        if _differs(changes, old, field):
            raise ConfigError(f"{field}: Tag name, type, value or ID cannot be updated")
    if "tag_type_refs" in refs:
        new = sorted(r.get("uuid") for r in refs["tag_type_refs"] or [])
        if new != sorted(r.get("uuid") for r in old.get("tag_type_refs") or []):
            raise ConfigError("tag_type_refs: Tag-type reference cannot be updated")


def check_tag_type_update(old: Obj, changes: Obj) -> None:
    """R2005 ``TagTypeServer.pre_dbe_update``: its id and display name are fixed."""
    for field in ("tag_type_id", "display_name"):
        if _differs(changes, old, field):
            raise ConfigError(f"{field}: Tag Type value or ID cannot be updated")


# --- ZooKeeper ------------------------------------------------------------------------------------
class TagAllocators:
    """The original's tag allocators: one for type ids, one per type for value ids (made lazily:
    an IndexAllocator reads ZooKeeper at first use only)."""

    def __init__(self, zk: Coordinator) -> None:
        self.zk = zk
        self.types = IdAllocator(zk, TAG_TYPE_ID_PATH, TAG_TYPE_MAX_ID - TAG_TYPE_RESERVED + 1, offset=0,
                                 start=TAG_TYPE_RESERVED)
        self._values: dict[str, IndexAllocator] = {}

    @staticmethod
    def value_path(type_name: str) -> str:
        """``/id/tags/values/<type>/`` (without the cluster prefix; ``/`` and ``%`` escaped)."""
        return TAG_VALUE_ID_PATH % escape(type_name)

    def values(self, type_name: str) -> IndexAllocator:
        alloc = self._values.get(type_name)
        if alloc is None:
            alloc = self._values.setdefault(type_name, IndexAllocator(self.zk, self.value_path(type_name),
                                                                      TAG_VALUE_SIZE))
        return alloc

    def alloc_type_id(self, type_name: str) -> int:
        """A new user-defined type's id (blocking)."""
        return self.types.alloc_id(type_name)

    def free_type_id(self, type_id: int, type_name: str) -> None:
        """Release a type's id if it still holds that type, and its (empty) value directory (blocking)."""
        if type_id < TAG_TYPE_RESERVED:
            return
        self.types.free_id(type_id, type_name)
        self._values.pop(type_name, None)
        top = self.zk.path(self.value_path(type_name)).rstrip("/")
        try:
            self.zk.delete(top)
        except NotEmptyError:  # the original deletes it recursively; a racing create may have an id there
            pass

    def alloc_value_id(self, type_name: str, fq_name_str: str) -> int:
        return self.values(type_name).alloc(fq_name_str)

    def free_value_id(self, type_name: str, value_id: int, fq_name_str: str) -> None:
        """Release a tag's value id, only if it holds that tag (the original keeps it otherwise)."""
        if 0 <= value_id < TAG_VALUE_SIZE:
            self.values(type_name).free(value_id, fq_name_str)

    def refresh(self) -> None:
        """Reload every bitmap (notifications may have been missed)."""
        self.types.refresh()
        for alloc in list(self._values.values()):
            alloc.refresh()


# --- hooks ----------------------------------------------------------------------------------------
class TagHooks:
    """The tag and tag-type parts of the type hooks; ``api`` is the replica's ConfigApi (its
    ``create``/``delete``, ``store`` and ``zk``)."""

    handles = frozenset({TAG, TAG_TYPE})

    def __init__(self, api: Any, allocators: TagAllocators) -> None:
        self.api = api
        self.allocs = allocators

    async def prepare_create(self, rt: ResourceType, body: Obj) -> Obj:
        if rt.object_type == TAG:
            return complete_tag_body(body)
        if rt.object_type == TAG_TYPE:
            return complete_tag_type_body(body)
        return body

    async def pre_create(self, rt: ResourceType, obj: Obj) -> None:
        if rt.object_type == TAG_TYPE:
            type_name = obj["fq_name"][-1]
            obj["display_name"] = type_name
            fixed = predefined_type_id(type_name)
            type_id = fixed if fixed is not None else await asyncio.to_thread(self.allocs.alloc_type_id, type_name)
            obj["tag_type_id"] = format_type_id(type_id)
        elif rt.object_type == TAG:
            type_name = obj["tag_type_name"]
            tag_type = await self.locate_type(type_name)
            obj["tag_type_refs"] = [{"to": list(tag_type["fq_name"]), "uuid": tag_type["uuid"]}]
            try:
                value_id = await asyncio.to_thread(self.allocs.alloc_value_id, type_name, ":".join(obj["fq_name"]))
            except BaseException:
                await self._drop_type(obj)
                raise
            obj["tag_id"] = compose_tag_id(tag_type["tag_type_id"], value_id)

    async def pre_update(self, rt: ResourceType, old: Obj, changes: Obj, refs: dict[str, Any]) -> None:
        if rt.object_type == TAG:
            check_tag_update(old, changes, refs)
        elif rt.object_type == TAG_TYPE:
            check_tag_type_update(old, changes)

    async def undo_create(self, rt: ResourceType, obj: Obj) -> None:
        await self.post_delete(rt, obj)

    async def post_delete(self, rt: ResourceType, obj: Obj) -> None:
        if rt.object_type == TAG_TYPE:
            try:
                type_id = parse_id(obj.get("tag_type_id"))
            except (TypeError, ValueError):
                return
            await asyncio.to_thread(self.allocs.free_type_id, type_id, obj["fq_name"][-1])
        elif rt.object_type == TAG:
            if obj.get("tag_id") and obj.get("tag_type_name"):
                try:
                    _, value_id = split_tag_id(obj["tag_id"])
                except (TypeError, ValueError):
                    value_id = -1
                if value_id >= 0:
                    await asyncio.to_thread(self.allocs.free_value_id, obj["tag_type_name"], value_id,
                                            ":".join(obj["fq_name"]))
            await self._drop_type(obj)

    async def _drop_type(self, tag: Obj) -> None:
        """Delete a tag's tag-type unless well-known or still referred (R2005 ``post_dbe_delete``)."""
        if tag.get("tag_type_name") in PREDEFINED_TAG_TYPES:
            return
        for ref in tag.get("tag_type_refs") or []:
            try:
                await self.api.delete(self.api.schema["tag-type"], ref["uuid"], "")
            except (Conflict, NotFound):
                pass  # still used by another tag, or already gone
            except ConfigError as e:
                log.warning("tag-type %s of tag %s not deleted: %s", ref.get("to"), tag.get("fq_name"), e)

    async def locate_type(self, type_name: str, timeout: float = TYPE_WAIT_S) -> Obj:
        """The tag-type ``[type_name]``, created when missing (through ``ConfigApi.create``, hence its
        fq-name lock). A 409 means another request holds the lock: its object is waited for."""
        rt = self.api.schema["tag-type"]
        fq = [type_name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = False
        while True:
            u = await self.api.store.fq_name_to_uuid(TAG_TYPE, fq)
            if u is None:
                try:
                    return dict(await self.api.create(rt, {"fq_name": fq, "id_perms": {"user_visible": False}}, ""))
                except Exhausted:
                    raise
                except Conflict:
                    u = await self.api.zk.read_fq_lock(TAG_TYPE, fq)
                    if not waiting:
                        log.info("tag-type %s is being created by another request (%s): waiting for it", fq, u)
                        waiting = True
            if u is not None:
                found = await self.api.store.read(u)
                if found is not None and found.get("type") == TAG_TYPE and found.get("tag_type_id"):
                    return found
            if loop.time() > deadline:
                raise Unavailable(f"tag-type {fq} is being created elsewhere and did not appear in {timeout:g}s")
            await asyncio.sleep(0.05)

    async def ensure_predefined(self) -> None:
        """The well-known tag-types, as the original creates them at start (any replica may)."""
        for name in PREDEFINED_TAG_TYPES:
            await self.locate_type(name, timeout=60.0)
