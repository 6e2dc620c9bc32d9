"""contrail-api's list and map properties element by element: prop-collection-get and
prop-collection-update, and the bounds every write of such a property obeys.

Each element is its own column of the object's row (``rows.Collection``): a list element keyed by
its position, a map element by its key. Hence the bounds: a position or key is a column name
(``MAX_POSITION`` characters), a property holds at most ``MAX_ELEMENTS`` elements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contrail_ha.services.config_api.core import ApiCore, collection_layout, now
from contrail_ha.services.config_api.inputs import csv_list, object_body, uuid_param
from contrail_ha.services.config_api.objects import NotFound, Obj
from contrail_ha.services.config_api.rows import new_position
from contrail_ha.services.config_api.schema import ResourceType
from contrail_ha.services.config_api.validation import FieldError, validate_collection_element

MAX_ELEMENT_UPDATES = 1000
MAX_POSITION = 512  # characters of a list position or map key (a column name: far below Cassandra's 64 KiB)


MAX_ELEMENTS = 10_000  # elements of one list or map property (each is a column of the object's row)


def check_collections(rt: ResourceType, values: Obj) -> None:
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
                    position(key, f"{name}.{coll.wrapper or ''}[{i}].{coll.key}")


def position(value: Any, path: str) -> str:
    """A list position or map key as its column stores it."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldError(path, f"expected a string or integer, got {value!r}"[:200])
    text = str(value)
    if not text or len(text) > MAX_POSITION:
        raise FieldError(path, f"must be 1-{MAX_POSITION} characters")
    return text


class Props(ApiCore):
    """prop-collection-get and prop-collection-update."""

    async def prop_get(self, q: Mapping[str, str]) -> Obj:
        """``[[element, position or key], ...]`` of list and map properties, in stored order
        (``q``: the query's ``uuid``, ``fields``, ``position``)."""
        rt, obj = await self.lookup_any(uuid_param(q.get("uuid"), "uuid"))
        fields = csv_list(q.get("fields"))
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
        return out

    async def prop_update(self, body: Any) -> None:
        """Element updates of list and map properties: each element is its own column, so concurrent
        updates of different elements (map keys, list positions) all survive."""
        body = object_body(body, "uuid and updates")
        target = uuid_param(body.get("uuid"), "uuid")
        updates = body.get("updates")
        if updates is None:
            updates = []
        if not isinstance(updates, list):
            raise FieldError("updates", f"expected a list of updates, got {type(updates).__name__}")
        if len(updates) > MAX_ELEMENT_UPDATES:
            raise FieldError("updates", f"at most {MAX_ELEMENT_UPDATES} updates per request")
        rt, obj = await self.lookup_any(target)
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
                    changes.append((f, position(str(key), f"updates[{i}].value.{p.map_key}"), val))
                elif op == "delete":
                    key = position(pos, f"updates[{i}].position")
                    if key not in await existing(f):
                        raise NotFound(f"{f}: no element with key {key!r}"[:300])
                    changes.append((f, key, None))
                else:
                    raise FieldError(f"updates[{i}].operation", f"map operations are set/delete, got {op!r}"[:200])
            elif op == "add":
                changes.append((f, new_position() if pos is None else position(pos, f"updates[{i}].position"), val))
            elif op in ("modify", "delete"):
                at = position(pos, f"updates[{i}].position")
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
