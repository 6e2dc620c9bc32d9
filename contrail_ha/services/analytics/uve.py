"""One UVE aggregated over the origins that report it (the original's aggtype rules, simplified).

Each origin (generator) owns its copy of each struct; the aggregated struct merges the copies
of every origin heard from in the last ``UVE_STALE_S``, oldest first: lists are a union keyed by
their elements' identity (``process_status`` by module and instance, ``process_info`` by
process name, ...), dicts merge field by field, scalars take the newest value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contrail_ha.services.analytics.protocol import UVE_STALE_S

# List elements are the same element when these fields match (the first that applies).
IDENTITY = (("module_id", "instance_id"), ("process_name",), ("type", "name"), ("name",), ("address",))


def _identity(item: Any) -> str:
    if isinstance(item, dict):
        for fields in IDENTITY:
            if all(f in item for f in fields):
                return "|".join(str(item[f]) for f in fields)
    return json.dumps(item, sort_keys=True)


def merge(a: Any, b: Any) -> Any:
    """``b`` (newer) merged over ``a``."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if k in a else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        items = {_identity(x): x for x in a}
        for x in b:
            k = _identity(x)
            items[k] = merge(items[k], x) if k in items else x
        return [items[k] for k in sorted(items)]
    return b


@dataclass
class Part:
    data: dict[str, Any]
    ts: int  # generator timestamp, microseconds


@dataclass
class UveState:
    """Every origin's structs of one UVE (``table``, ``key``)."""

    table: str
    key: str
    origins: dict[str, dict[str, Part]] = field(default_factory=dict)  # origin -> struct -> part

    def apply(self, origin: str, struct: str, data: dict[str, Any] | None, ts: int) -> bool:
        """Record one origin's struct (``None`` deletes it). False if older than what is held."""
        held = self.origins.get(origin, {}).get(struct)
        if held is not None and held.ts > ts:
            return False
        if data is None:
            self.origins.get(origin, {}).pop(struct, None)
            if origin in self.origins and not self.origins[origin]:
                del self.origins[origin]
        else:
            self.origins.setdefault(origin, {})[struct] = Part(data, ts)
        return True

    def live(self, now_us: int, stale_s: float = UVE_STALE_S) -> dict[str, dict[str, Part]]:
        limit = now_us - int(stale_s * 1_000_000)
        out: dict[str, dict[str, Part]] = {}
        for origin, structs in self.origins.items():
            fresh = {s: p for s, p in structs.items() if p.ts >= limit}
            if fresh:
                out[origin] = fresh
        return out

    def aggregate(self, now_us: int, stale_s: float = UVE_STALE_S) -> dict[str, Any]:
        """``{struct: merged data}`` over the live origins."""
        parts: list[tuple[int, str, str, dict[str, Any]]] = []
        for origin, structs in self.live(now_us, stale_s).items():
            for s, p in structs.items():
                parts.append((p.ts, origin, s, p.data))
        out: dict[str, Any] = {}
        for _ts, _origin, s, data in sorted(parts, key=lambda x: (x[0], x[1])):
            out[s] = merge(out[s], data) if s in out else data
        return out

    def newest(self) -> int:
        return max((p.ts for structs in self.origins.values() for p in structs.values()), default=0)

    def origins_json(self, now_us: int, stale_s: float = UVE_STALE_S) -> dict[str, dict[str, Any]]:
        """The live origins' raw structs, for source/module filters: ``{origin: {struct: {"ts", "data"}}}``."""
        return {o: {s: {"ts": p.ts, "data": p.data} for s, p in structs.items()}
                for o, structs in self.live(now_us, stale_s).items()}
