"""The row codec of the config DB: column names, mutations, and one object row <-> its dict.

Pure (no I/O, unit-tested); :mod:`store` does the reads and writes. The layout is the original's
wide row (see the store's docstring); what is specific to this module:

* **List and map properties are element columns** as in the original: ``propl:<name>:<position>``
  and ``propm:<name>:<key>``, each holding one element (JSON). Concurrent additions of different
  elements all survive (each writes its own column; Cassandra merges per column). Beside them
  ``prop:<name>`` holds the value's *shell* (the wrapper with an empty list, e.g.
  ``{"key_value_pair": []}``) so an empty collection still reads back as set. List elements are
  ordered by position: numeric positions by value (0, 1, 2, ..., 10; the original read them
  lexically), then other positions lexically - those generated for ``add`` sort by time.
* ``META:last_modified`` holds ``id_perms.last_modified`` (JSON string): every write sets it on
  its own, so a ref or element update never rewrites ``prop:id_perms`` from a stale snapshot
  (the original's lost ``id_perms`` updates).
* ``META:deleting`` marks a delete in progress (JSON ``{"at": <unix time>}``). A mark never
  goes stale by age: it is removed by its delete (done or given up) or by a retry of that DELETE
  (docs/integrity.md, "Fencing").
* A create's claim columns (``children:`` on the parent, ``backref:`` on ref targets) carry the
  new object's fq_name (``{"fq": [...]}``), and every column a create writes has the create's
  *fence timestamp* as its Cassandra write time: whoever judges the create dead revokes it with
  tombstones one microsecond later, which shadow its commit whenever that lands.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from contrail_ha.services.config_api.objects import Obj, fq_str

NULL = "null"  # JSON null, the value of marker columns
LAST_MODIFIED = "META:last_modified"
LATEST = "META:latest_col_ts"
DELETING = "META:deleting"
# A create acknowledges only if its commit completed within this many seconds (monotonic clock) of
# its fence timestamp; later it revokes itself and answers 503 (safe to retry).
CREATE_DEADLINE_S = 10.0
# The most two replicas' wall clocks may disagree by while a replica accepts writes (the clock guard
# refuses writes beyond it): a create's claim is judged by another replica's clock.
MAX_CLOCK_OFFSET_S = 0.5
# A link column (children:/backref:) or an fq-name lock whose object is invisible and older than this
# (by the judging replica's clock) belongs to a create that can no longer acknowledge: it may be
# revoked. Deadline + twice the offset bound + slack.
LINK_STALE_S = CREATE_DEADLINE_S + 2 * MAX_CLOCK_OFFSET_S + 4.0




def otype(name: str) -> str:
    """An object type in underscore form (``virtual-network`` -> ``virtual_network``)."""
    return name.replace("-", "_")


def col_prop(name: str) -> str:
    return f"prop:{name}"


def col_parent(parent_type: str, parent_uuid: str) -> str:
    return f"parent:{otype(parent_type)}:{parent_uuid}"


def col_child(child_type: str, child_uuid: str) -> str:
    return f"children:{otype(child_type)}:{child_uuid}"


def col_ref(ref_type: str, ref_uuid: str) -> str:
    return f"ref:{otype(ref_type)}:{ref_uuid}"


def col_backref(obj_type: str, obj_uuid: str) -> str:
    return f"backref:{otype(obj_type)}:{obj_uuid}"


def col_relax(obj_uuid: str) -> str:
    return f"relaxbackref:{obj_uuid}"


def col_fq(fq_name: Sequence[str], obj_uuid: str) -> str:
    """The ``obj_fq_name_table`` column of an object: ``<fq:name:joined>:<uuid>``."""
    return f"{fq_str(list(fq_name))}:{obj_uuid}"


def col_shared(share_type: str, share_id: str, obj_uuid: str) -> str:
    return f"{share_type}:{share_id}:{obj_uuid}"


def bounds(prefix: str) -> tuple[str, str]:
    """The column slice of everything under ``prefix:`` (``;`` sorts right after ``:``)."""
    return prefix + ":", prefix + ";"


def ref_value(attr: Any) -> str:
    return json.dumps({"attr": attr, "is_weakref": False}, separators=(",", ":"))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def ref_type_of(field_name: str) -> str | None:
    """``network_ipam_refs`` -> ``network_ipam`` (None for other names, incl. back-refs)."""
    if field_name.endswith("_refs") and not field_name.endswith("_back_refs"):
        return field_name[: -len("_refs")]
    return None


def fq_hits(fq_name: Sequence[str], columns: Iterable[str]) -> list[str]:
    """Uuids of the fq-name columns that name exactly ``fq_name`` (the prefix-slice result filtered:
    ``a:b:<uuid>`` but neither ``a:bc:…`` nor ``a:b:c:<uuid>``)."""
    start, _ = bounds(fq_str(list(fq_name)))
    out = []
    for c in columns:
        if c.startswith(start):
            rest = c[len(start):]
            if rest and ":" not in rest:
                out.append(rest)
    return out


def parse_fq_col(column: str) -> tuple[list[str], str]:
    """``a:b:<uuid>`` -> (["a", "b"], uuid)."""
    fq, _, u = column.rpartition(":")
    return fq.split(":"), u


def share_entries(perms2: dict[str, Any] | None) -> list[tuple[str, str, int]]:
    """``(share_type, share_id, rwx)`` of a perms2: each ``share`` item plus ``global`` if global_access."""
    out: list[tuple[str, str, int]] = []
    if not isinstance(perms2, dict):
        return out
    for item in perms2.get("share") or []:
        if not isinstance(item, dict) or not item.get("tenant"):
            continue
        parts = str(item["tenant"]).split(":", 1)
        share_type, share_id = (parts[0], parts[1]) if len(parts) == 2 else ("tenant", parts[0])
        out.append((share_type, share_id, int(item.get("tenant_access") or 0)))
    if perms2.get("global_access"):
        out.append(("global", "", int(perms2["global_access"])))
    return out


@dataclass
class Mutation:
    """One change: ``value`` set, column deleted (``value`` None) or whole row dropped (``column`` None)."""

    table: str
    key: str
    column: str | None
    value: str | None = None
    ts: int | None = None  # the Cassandra write time (microseconds); None: the driver's clock

    def size(self) -> int:
        return len(self.key) + len(self.column or "") + len(self.value or "") + 24



def col_list(name: str, position: str) -> str:
    return f"propl:{name}:{position}"


def col_map(name: str, key: str) -> str:
    return f"propm:{name}:{key}"


@dataclass(frozen=True)
class Collection:
    """How a list or map property is stored: one column per element."""

    kind: str  # "list" | "map"
    wrapper: str | None  # the value is {wrapper: [elements]}; None: a bare list
    key: str | None = None  # the key field of a map element

    @property
    def prefix(self) -> str:
        return "propl" if self.kind == "list" else "propm"

    def column(self, name: str, position: str) -> str:
        return f"{self.prefix}:{name}:{position}"

    def elements(self, value: Any) -> list[Any]:
        """The elements of a value in its wrapper (or bare list) form."""
        if self.wrapper is None:
            return list(value) if isinstance(value, list) else []
        items = value.get(self.wrapper) if isinstance(value, dict) else None
        return list(items) if isinstance(items, list) else []

    def shell(self, value: Any) -> Any:
        """The value without its elements (what ``prop:<name>`` holds)."""
        if self.wrapper is not None:
            base = dict(value) if isinstance(value, dict) else {}
            base[self.wrapper] = []
            return base
        return []

    def key_of(self, element: Any, index: int) -> str:
        """A map element's column key (its key field); an element without one keeps its index."""
        key = element.get(self.key) if isinstance(element, dict) and self.key else None
        return str(index) if key is None else str(key)

    def split(self, value: Any) -> tuple[Any, list[tuple[str, Any]]]:
        """``(shell, [(position or key, element)])`` of a whole value; a later duplicate key wins."""
        items = self.elements(value)
        if self.kind == "map":
            keyed = {self.key_of(e, i): e for i, e in enumerate(items)}
            return self.shell(value), list(keyed.items())
        return self.shell(value), [(str(i), e) for i, e in enumerate(items)]

    def join(self, shell: Any, elements: Iterable[tuple[str, Any]]) -> Any:
        """The whole value from its shell and ``(position, element)`` pairs (any order)."""
        ordered = [e for _, e in sorted(elements, key=lambda pe: position_order(pe[0]))] \
            if self.kind == "list" else [e for _, e in sorted(elements, key=lambda pe: pe[0])]
        if self.wrapper is not None:
            out = dict(shell) if isinstance(shell, dict) else {}
            out[self.wrapper] = ordered
            return out
        return ordered


# (object type in underscore form, property name) -> its layout, None for a whole-value property
Layout = Callable[[str, str], Collection | None]


def whole_values(obj_type: str, prop: str) -> Collection | None:
    """The layout without collections (every property one column)."""
    return None


def position_order(position: str) -> tuple[int, int, str]:
    """List order: numeric positions by value first (0, 1, ..., 10), then the rest lexically."""
    if position.isdigit() and len(position) < 19:
        return (0, int(position), position)
    return (1, 0, position)


def new_position() -> str:
    """The position of an element ``add`` appends: after every numeric position and every earlier
    append (hex nanoseconds, fixed width), unique across replicas (random suffix)."""
    return f"t{time.time_ns():016x}{uuidlib.uuid4().hex[:8]}"


def deleting_mark() -> str:
    return json.dumps({"at": time.time()})


def link_is_fresh(writetime_us: int | None, now: float | None = None, stale: float = LINK_STALE_S) -> bool:
    """Whether a link column (or an fq-name lock) was written recently enough to belong to a
    create that may still acknowledge (see :data:`LINK_STALE_S`)."""
    if not writetime_us:
        return False
    return (now if now is not None else time.time()) - writetime_us / 1e6 < stale


@dataclass(frozen=True)
class Fence:
    """A create's fence: ``ts``, the Cassandra write time (microseconds) of every column it writes,
    and ``started``, the monotonic instant it was taken (the deadline counts from it, immune to
    wall-clock steps)."""

    ts: int
    started: float

    @classmethod
    def start(cls) -> Fence:
        return cls(time.time_ns() // 1000, time.monotonic())

    @property
    def revoke_ts(self) -> int:
        """The write time of the tombstones that revoke the create (shadow every column it wrote)."""
        return self.ts + 1

    def expired(self, deadline: float = CREATE_DEADLINE_S, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) - self.started > deadline


def claim_value(fq_name: Sequence[str], attr_value: str | None = None) -> str:
    """The value of a create's claim column: a ref's ``{"attr", "is_weakref"}`` (backref) or
    nothing (child), plus the new object's fq_name so a revoke can shadow its fq-name column."""
    data = json.loads(attr_value) if attr_value else {}
    data["fq"] = list(fq_name)
    return dumps(data)


def claimed_fq(value: str | None) -> list[str] | None:
    """The fq_name a create's claim column carries (None for other link columns)."""
    try:
        data = json.loads(value) if value else None
    except ValueError:
        return None
    fq = data.get("fq") if isinstance(data, dict) else None
    return [str(x) for x in fq] if isinstance(fq, list) else None


@dataclass
class Links:
    """The link columns of one object row."""

    refs: list[tuple[str, str, Any]] = field(default_factory=list)  # (ref type, uuid, attr)
    children: list[tuple[str, str, int]] = field(default_factory=list)  # (child type, uuid, writetime)
    backrefs: list[tuple[str, str, Any]] = field(default_factory=list)  # (source type, uuid, attr)
    relaxed: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)  # link uuid -> WRITETIME (children, backrefs, refs)
    deleting: str | None = None  # the META:deleting value
    claimed: dict[str, list[str]] = field(default_factory=dict)  # source uuid -> fq_name its claim carries
    newest: int = 0  # the row's latest write time (a delete's tombstone must be later)


def decode_row(uuid: str, cols: Iterable[tuple[str, str, int | None]],
               layout: Layout = whole_values) -> tuple[Obj, Links] | None:
    """An object's own fields and its link columns from its row (None without a ``type`` column)."""
    obj: Obj = {"uuid": uuid}
    links = Links()
    elements: dict[str, list[tuple[str, Any]]] = {}
    last_modified: str | None = None
    for name, value, ts in cols:
        links.newest = max(links.newest, ts or 0)
        kind, _, rest = name.partition(":")
        if kind == "prop":
            obj[rest] = json.loads(value)
        elif kind in ("propl", "propm"):
            prop, _, pos = rest.partition(":")
            elements.setdefault(prop, []).append((pos, json.loads(value)))
        elif kind == "ref":
            t, _, u = rest.partition(":")
            links.refs.append((t, u, _attr(value)))
            links.written[u] = ts or 0
        elif kind == "children":
            t, _, u = rest.partition(":")
            links.children.append((t, u, ts or 0))
            links.written[u] = ts or 0
            if (fq := claimed_fq(value)) is not None:
                links.claimed[u] = fq
        elif kind == "backref":
            t, _, u = rest.partition(":")
            links.backrefs.append((t, u, _attr(value)))
            links.written[u] = ts or 0
            if (fq := claimed_fq(value)) is not None:
                links.claimed[u] = fq
        elif kind == "relaxbackref":
            links.relaxed.append(rest)
        elif kind == "parent":
            t, _, u = rest.partition(":")
            obj["parent_type"] = t.replace("_", "-")
            obj["parent_uuid"] = u
        elif name == LAST_MODIFIED:
            last_modified = json.loads(value)
        elif name == DELETING:
            links.deleting = value
        elif name == "fq_name":
            obj["fq_name"] = json.loads(value)
        elif name == "type":
            obj["type"] = json.loads(value)
        elif name == "parent_type" and "parent_type" not in obj:
            pt = json.loads(value)
            if pt:
                obj["parent_type"] = str(pt).replace("_", "-")
    if "type" not in obj or "fq_name" not in obj:
        return None
    for prop, items in elements.items():
        coll = layout(obj["type"], prop) or _guess(obj.get(prop), name=prop)
        obj[prop] = coll.join(obj.get(prop), items)
    if isinstance(last_modified, str) and isinstance(obj.get("id_perms"), dict):
        obj["id_perms"] = {**obj["id_perms"], "last_modified": last_modified}
    return obj, links


def _guess(shell: Any, name: str) -> Collection:
    """A collection's layout from its stored shell (when the layout does not know the property)."""
    if isinstance(shell, dict):
        wrapper = next((k for k, v in shell.items() if isinstance(v, list)), None)
        return Collection("list", wrapper)
    return Collection("list", None)


def _attr(value: str | None) -> Any:
    try:
        data = json.loads(value) if value else None
    except ValueError:
        return None
    return data.get("attr") if isinstance(data, dict) else None


def _share_rwx(value: str) -> int:
    try:
        return int(json.loads(value))
    except (TypeError, ValueError):
        return 0


