"""The graph's checker: the whole history of :mod:`.drill_graph`, then what every reader (the VIP
and each contrail-api replica directly) returns once the fault is healed.

From the history alone:

- ``5xx``: an answer >= 500 other than 503 / 504 (both mean "not done" / "unknown, safe to retry");
- ``acked-orphan`` / ``acked-dangling``: a create answered 200 whose project (network, for an
  instance-ip) had its delete answered 200 too, while no delete of the created object may have
  applied: one of the two acknowledgements is false;
- ``duplicate-ip`` / ``duplicate-tag-id``: two creates answered 200 that got the same address in
  one network, or the same tag id, neither deleted since.

From every reader:

- ``lost``: an object whose create was answered 200, that no delete may have removed, reads 404;
- ``lost-delete``: an object whose delete was answered 200 still reads;
- ``phantom``: an object listed that reads 404;
- ``orphan`` / ``dangling``: an object that reads, whose parent or ref target reads 404;
- ``duplicate-ip`` / ``duplicate-tag-id``: among the objects that read.

Each violation names the requests behind it (:meth:`Op.brief`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from contrail_ha.operations.drill_graph import Graph, Obj, Op

CREATES = ("create-virtual-network", "create-instance-ip", "create-tag")


@dataclass
class GraphResult:
    ops: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # "<kind> <status>" -> count
    violations: list[str] = field(default_factory=list)


def _gone(history: list[Op]) -> set[str]:
    """Objects a delete may have removed (answered 200 or 404, or with no definite answer)."""
    return {op.uuid for op in history if op.kind.startswith("delete-") and op.may_have_applied}


def _acked(history: list[Op], prefix: str) -> dict[str, Op]:
    """uuid -> the request of that kind (``create-`` / ``delete-``) answered 200."""
    return {op.uuid: op for op in history if op.kind.startswith(prefix) and op.ok}


def history_check(history: list[Op]) -> list[str]:
    out: list[str] = []
    gone = _gone(history)
    acked_delete = _acked(history, "delete-")
    for op in history:
        if op.status is not None and op.status >= 500 and op.status not in (503, 504):
            out.append(f"5xx: {op.brief()}")
    by_value: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in history:
        if op.kind not in CREATES or not op.ok or op.uuid in gone:
            continue
        if op.on in acked_delete:
            what = "acked-dangling" if op.kind == "create-instance-ip" else "acked-orphan"
            out.append(f"{what}: {op.brief()} / yet {acked_delete[op.on].brief()}")
        if not op.value:
            continue  # not read back: nothing to compare
        if op.kind == "create-instance-ip":
            by_value[("duplicate-ip", op.on + " " + op.value)].append(op)
        elif op.kind == "create-tag":
            by_value[("duplicate-tag-id", op.value)].append(op)
    for (what, _), ops in by_value.items():
        if len(ops) > 1:
            out.append(f"{what}: " + " / ".join(o.brief() for o in ops))
    return out


class Reader:
    """One reader's view, each path read once (retried while the reader answers 5xx)."""

    def __init__(self, s: aiohttp.ClientSession, label: str, base: str) -> None:
        self.s, self.label, self.base = s, label, base
        self.cache: dict[str, Obj | None] = {}

    async def get(self, path: str) -> Obj | None:
        if path not in self.cache:
            self.cache[path] = await self._get(path)
        return self.cache[path]

    async def _get(self, path: str) -> Obj | None:
        last = ""
        for attempt in range(10):
            try:
                async with self.s.get(self.base + path) as r:
                    if r.status == 404:
                        return None
                    if r.status == 200:
                        return dict(await r.json(content_type=None))
                    last = f"HTTP {r.status}"
            except (TimeoutError, aiohttp.ClientError) as e:
                last = type(e).__name__
            await asyncio.sleep(min(3.0, 0.3 * (attempt + 1)))
        raise RuntimeError(f"graph check: {self.label} cannot read {path}: {last}")

    async def listed(self, rtype: str, prefix: str) -> set[str]:
        got = await self.get(f"/{rtype}s") or {}
        return {o["uuid"] for o in got.get(f"{rtype}s", []) if ":".join(o.get("fq_name", [])).find(prefix) >= 0}


async def read_check(graph: Graph, reader: Reader) -> list[str]:
    out: list[str] = []
    hist = graph.history
    gone, acked, deleted = _gone(hist), _acked(hist, "create-"), _acked(hist, "delete-")
    where = f"({reader.label})"

    async def read(rtype: str, u: str) -> Any:
        got = await reader.get(f"/{rtype}/{u}")
        return None if got is None else got.get(rtype)

    for u, op in deleted.items():
        if await read(op.kind.removeprefix("delete-"), u) is not None:
            out.append(f"lost-delete: {op.brief()} yet it reads {where}")
    for u, op in acked.items():
        if u not in gone and await read(op.kind.removeprefix("create-"), u) is None:
            out.append(f"lost: {op.brief()} yet it reads 404 {where}")
    addresses: dict[tuple[str, str], list[str]] = defaultdict(list)
    tag_ids: dict[str, list[str]] = defaultdict(list)
    for rtype, parent, refs in (("virtual-network", "project", ("network_ipam_refs",)),
                                ("instance-ip", None, ("virtual_network_refs",)),
                                ("tag", "project", ())):
        listed = await reader.listed(rtype, graph.tag)
        mine = listed | {u for u, op in acked.items() if op.kind == f"create-{rtype}"}
        for u in sorted(mine):
            obj = await read(rtype, u)
            if obj is None:
                if u in listed:
                    out.append(f"phantom: {rtype} {u} listed, reads 404 {where}")
                continue
            if parent and await read(parent, obj.get("parent_uuid", "")) is None:
                out.append(f"orphan: {rtype} {u} {obj.get('fq_name')} without its {parent} {where}")
            for f in refs:
                for ref in obj.get(f) or []:
                    target = f.removesuffix("_refs").replace("_", "-")
                    if await read(target, ref["uuid"]) is None:
                        out.append(f"dangling: {rtype} {u} refers to {target} {ref['uuid']} {where}")
                    elif rtype == "instance-ip":
                        addresses[(ref["uuid"], str(obj.get("instance_ip_address")))].append(u)
            if rtype == "tag":
                tag_ids[str(obj.get("tag_id"))].append(u)
    out += [f"duplicate-ip: {a} in network {vn}: {us} {where}" for (vn, a), us in addresses.items() if len(us) > 1]
    out += [f"duplicate-tag-id: {t}: {us} {where}" for t, us in tag_ids.items() if len(us) > 1]
    return out


async def check(graph: Graph) -> GraphResult:
    """The history check, then every reader's."""
    res = GraphResult(len(graph.history), dict(Counter(f"{op.kind} {op.status}" for op in graph.history)))
    res.violations = history_check(graph.history)
    async with graph.client.session() as s:
        for label, base in graph.readers:
            res.violations += await read_check(graph, Reader(s, label, base))
    return res
