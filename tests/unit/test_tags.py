"""Tags and tag-types as R2005 (resources/tag.py, tag_type.py): naming, ids, update rules, and the
tag-type located once under concurrent creates (an in-memory API with the fq-name lock semantics)."""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from typing import Any

import pytest

from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, Obj
from contrail_ha.services.config_api.schema import schema
from contrail_ha.services.config_api.tags import (
    PREDEFINED_TAG_TYPES,
    TAG_TYPE_MAX_ID,
    TAG_TYPE_RESERVED,
    TagAllocators,
    TagHooks,
    check_tag_type_update,
    check_tag_update,
    complete_tag_body,
    complete_tag_type_body,
    compose_tag_id,
    format_type_id,
    split_tag_id,
    tag_name,
)


# --- pure logic -----------------------------------------------------------------------------------
def test_name_is_type_equals_value_type_lower_cased() -> None:
    assert tag_name("Application", "Prod") == "application=Prod"
    body = complete_tag_body({"tag_type_name": "Tier", "tag_value": "web", "fq_name": ["default-tag"],
                              "display_name": "mine"})
    assert body["fq_name"] == ["tier=web"] and body["name"] == "tier=web" and body["display_name"] == "tier=web"
    assert body["tag_type_name"] == "tier"


def test_name_keeps_the_project_scope() -> None:
    body = complete_tag_body({"tag_type_name": "label", "tag_value": "blue", "parent_type": "project",
                              "fq_name": ["default-domain", "p1", "x"]})
    assert body["fq_name"] == ["default-domain", "p1", "label=blue"]
    assert complete_tag_body({"tag_type_name": "a", "tag_value": "b"})["fq_name"] == ["a=b"]


@pytest.mark.parametrize("body, field", [
    ({"tag_value": "v"}, "tag_type_name"),
    ({"tag_type_name": "t"}, "tag_value"),
    ({"tag_type_name": None, "tag_value": "v"}, "tag_type_name"),
    ({"tag_type_name": "t", "tag_value": ""}, "tag_value"),
])
def test_type_and_value_are_mandatory(body: Obj, field: str) -> None:
    with pytest.raises(ConfigError, match=f"Tag must be created with a type and a value: {field} is missing") as e:
        complete_tag_body(body)
    assert e.value.status == 400


def test_ids_and_type_ref_cannot_be_set() -> None:
    with pytest.raises(ConfigError, match="tag_id: Tag ID is not setable"):
        complete_tag_body({"tag_type_name": "t", "tag_value": "v", "tag_id": "0xdeadbeef"})
    with pytest.raises(ConfigError, match="Tag Type reference is not setable"):
        complete_tag_body({"tag_type_name": "t", "tag_value": "v", "tag_type_refs": [{"to": ["t"]}]})
    with pytest.raises(ConfigError, match="Tag Type ID is not setable"):
        complete_tag_type_body({"fq_name": ["t"], "tag_type_id": "0xbeef"})
    assert complete_tag_type_body({"fq_name": ["t"], "display_name": "x"})["display_name"] == "t"


def test_id_formats() -> None:
    assert format_type_id(0) == "0x0000" and format_type_id(255) == "0x00ff"
    assert compose_tag_id("0x00ff", 0) == "0x00ff0000"
    assert compose_tag_id(1, 0x2a) == "0x0001002a"
    assert compose_tag_id("0xffff", 0xfffe) == "0xfffffffe"
    assert split_tag_id("0x0102abcd") == (0x0102, 0xabcd)
    with pytest.raises(ValueError):
        format_type_id(0x10000)
    with pytest.raises(ValueError):
        compose_tag_id(1, 0x10000)


def test_predefined_types_have_the_original_ids() -> None:
    assert PREDEFINED_TAG_TYPES == {"label": 0, "application": 1, "tier": 2, "deployment": 3, "site": 4,
                                    "neutron_fwaas": 5}
    assert max(PREDEFINED_TAG_TYPES.values()) < TAG_TYPE_RESERVED


def test_update_rules() -> None:
    old = {"tag_type_name": "t", "tag_value": "v", "tag_id": "0x00ff0000", "display_name": "t=v",
           "tag_type_refs": [{"to": ["t"], "uuid": "u1"}]}
    check_tag_update(old, {"tag_value": "v", "annotations": {}}, {})  # the stored value sent back is no change
    check_tag_update(old, {}, {"tag_type_refs": [{"to": ["t"], "uuid": "u1"}]})
    for field, value in (("tag_type_name", "x"), ("tag_value", "w"), ("tag_id", "0x1"), ("display_name", "n")):
        with pytest.raises(ConfigError, match=f"{field}: Tag name, type, value or ID cannot be updated"):
            check_tag_update(old, {field: value}, {})
    for refs in ([], [{"to": ["x"], "uuid": "u2"}], [{"uuid": "u1"}, {"uuid": "u2"}]):
        with pytest.raises(ConfigError, match="Tag-type reference cannot be updated"):
            check_tag_update(old, {}, {"tag_type_refs": refs})
    tt = {"tag_type_id": "0x00ff", "display_name": "t"}
    check_tag_type_update(tt, {"tag_type_id": "0x00ff", "annotations": None})
    with pytest.raises(ConfigError, match="Tag Type value or ID cannot be updated"):
        check_tag_type_update(tt, {"tag_type_id": "0xbeef"})


class _Zk:
    prefix = "/c"

    def path(self, p: str) -> str:
        return self.prefix + p


def test_allocator_paths_and_ranges() -> None:
    a = TagAllocators(_Zk())  # type: ignore[arg-type]
    assert a.types.path == "/c/id/tags/types/" and a.types.start == TAG_TYPE_RESERVED
    assert a.types.last == TAG_TYPE_MAX_ID
    v = a.values("app/x")
    assert v.path == "/c/id/tags/values/app%2Fx/" and v.start == 0 and v.last == 0xFFFE
    assert a.values("app/x") is v


# --- hooks over an in-memory API with the fq-name lock ---------------------------------------------
class FakeAllocs:
    """Allocators as dicts (index -> value), like the ZooKeeper ones."""

    def __init__(self) -> None:
        self.types: dict[int, str] = {}
        self.values: dict[str, dict[int, str]] = {}

    def alloc_type_id(self, name: str) -> int:
        i = next(i for i in range(TAG_TYPE_RESERVED, TAG_TYPE_MAX_ID + 1) if i not in self.types)
        self.types[i] = name
        return i

    def free_type_id(self, type_id: int, name: str) -> None:
        if self.types.get(type_id) == name:
            del self.types[type_id]

    def alloc_value_id(self, type_name: str, fq: str) -> int:
        held = self.values.setdefault(type_name, {})
        i = next(i for i in range(0xFFFF) if i not in held)
        held[i] = fq
        return i

    def free_value_id(self, type_name: str, value_id: int, fq: str) -> None:
        if self.values.get(type_name, {}).get(value_id) == fq:
            del self.values[type_name][value_id]


class FakeApi:
    """create/delete with ConfigApi's order: prepare, fq-name lock (409 when held), pre_create,
    a slow write, and delete refused (409) while referred."""

    def __init__(self) -> None:
        self.schema = schema()
        self.objs: dict[str, Obj] = {}
        self.locks: dict[tuple[str, tuple[str, ...]], str] = {}
        self.hooks: TagHooks | None = None
        self.creates: list[str] = []
        self.store, self.zk = self, self

    async def fq_name_to_uuid(self, obj_type: str, fq: list[str]) -> str | None:
        return next((u for u, o in self.objs.items() if o["type"] == obj_type and o["fq_name"] == fq), None)

    async def read(self, uuid: str) -> Obj | None:
        o = self.objs.get(uuid)
        if o is None:
            return None
        back = [{"uuid": u, "to": t["fq_name"]} for u, t in self.objs.items()
                if any(r["uuid"] == uuid for r in t.get("tag_type_refs") or [])]
        return {**o, "tag_back_refs": back} if back else dict(o)

    async def read_fq_lock(self, obj_type: str, fq: list[str]) -> str | None:
        return self.locks.get((obj_type, tuple(fq)))

    async def create(self, rt: Any, body: Obj, base: str) -> Obj:
        assert self.hooks is not None
        body = await self.hooks.prepare_create(rt, body)
        obj = {"type": rt.object_type, "fq_name": body["fq_name"], "uuid": str(uuidlib.uuid4()),
               **{k: v for k, v in body.items() if k in rt.props}}
        key = (rt.object_type, tuple(obj["fq_name"]))
        if key in self.locks:
            raise Conflict(f"{obj['fq_name']} already exists with uuid: {self.locks[key]}")
        self.locks[key] = obj["uuid"]
        await self.hooks.pre_create(rt, obj)
        await asyncio.sleep(0.02)  # the Cassandra write: others see the lock, not yet the object
        self.objs[obj["uuid"]] = obj
        self.creates.append(rt.object_type)
        return obj

    async def delete(self, rt: Any, uuid: str, base: str) -> None:
        assert self.hooks is not None
        obj = await self.read(uuid)
        if obj is None or obj["type"] != rt.object_type:
            raise NotFound(f"{uuid} not found")
        if obj.get("tag_back_refs"):
            raise Conflict("Delete when resource still referred")
        del self.objs[uuid]
        del self.locks[(obj["type"], tuple(obj["fq_name"]))]
        await self.hooks.post_delete(rt, obj)


@pytest.fixture
def api() -> FakeApi:
    a = FakeApi()
    a.hooks = TagHooks(a, FakeAllocs())  # type: ignore[arg-type]
    return a


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_tags_of_a_new_type_share_one_tag_type(api: FakeApi) -> None:
    tag = api.schema["tag"]

    async def go() -> list[Obj]:
        return await asyncio.gather(*(api.create(tag, {"tag_type_name": "Color", "tag_value": f"v{i}"}, "")
                                      for i in range(8)))

    tags = run(go())
    types = [o for o in api.objs.values() if o["type"] == "tag_type"]
    assert len(types) == 1 and types[0]["fq_name"] == ["color"] and types[0]["tag_type_id"] == "0x00ff"
    assert types[0]["id_perms"] == {"user_visible": False}
    assert {t["tag_type_refs"][0]["uuid"] for t in tags} == {types[0]["uuid"]}
    ids = [t["tag_id"] for t in tags]
    assert len(set(ids)) == 8 and all(i.startswith("0x00ff") and len(i) == 10 for i in ids)


def test_predefined_type_gets_its_fixed_id_and_survives(api: FakeApi) -> None:
    tag = api.schema["tag"]
    t = run(api.create(tag, {"tag_type_name": "tier", "tag_value": "web"}, ""))
    assert t["tag_id"] == "0x00020000"
    run(api.delete(tag, t["uuid"], ""))
    assert [o["fq_name"] for o in api.objs.values()] == [["tier"]]  # well-known types are never deleted
    assert api.hooks.allocs.values["tier"] == {}  # type: ignore[union-attr]


def test_last_tag_deleted_takes_its_type_and_ids_along(api: FakeApi) -> None:
    tag, tt = api.schema["tag"], api.schema["tag-type"]
    a = run(api.create(tag, {"tag_type_name": "env", "tag_value": "a"}, ""))
    b = run(api.create(tag, {"tag_type_name": "env", "tag_value": "b", "parent_type": "project",
                             "fq_name": ["default-domain", "p", "x"]}, ""))
    assert (a["tag_id"], b["tag_id"]) == ("0x00ff0000", "0x00ff0001")
    type_uuid = a["tag_type_refs"][0]["uuid"]
    with pytest.raises(Conflict):
        run(api.delete(tt, type_uuid, ""))
    run(api.delete(tag, a["uuid"], ""))
    assert type_uuid in api.objs  # still used by b
    allocs: FakeAllocs = api.hooks.allocs  # type: ignore[union-attr,assignment]
    assert allocs.values["env"] == {1: "default-domain:p:env=b"}
    run(api.delete(tag, b["uuid"], ""))
    assert api.objs == {} and allocs.types == {} and allocs.values["env"] == {}


def test_explicit_tag_type_create_allocates_and_refuses_an_id(api: FakeApi) -> None:
    tt = api.schema["tag-type"]
    made = run(api.create(tt, {"fq_name": ["mine"], "display_name": "other"}, ""))
    assert made["tag_type_id"] == "0x00ff" and made["display_name"] == "mine"
    with pytest.raises(ConfigError, match="not setable"):
        run(api.create(tt, {"fq_name": ["yours"], "tag_type_id": "0x0100"}, ""))
    assert run(api.create(tt, {"fq_name": ["site"]}, ""))["tag_type_id"] == "0x0004"
