"""The UVE routes' filters (``kfilt``, ``sfilt``, ``mfilt``, ``cfilt``) and their type names, without I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from contrail_ha.services.analytics.protocol import UVE_TYPES
from contrail_ha.services.analytics.query_lang import BadRequest, NotFound
from contrail_ha.services.analytics.uve import merge


def uve_table(type_name: str) -> str:
    """The table of a UVE type (``config-node`` -> ``ObjectConfigNode``)."""
    if type_name not in UVE_TYPES:
        raise NotFound(f"unknown UVE type {type_name!r} (known: {', '.join(UVE_TYPES)})")
    return UVE_TYPES[type_name]


def uve_list_type(plural: str) -> str:
    """``config-nodes`` -> ``config-node``."""
    if plural.endswith("s") and plural[:-1] in UVE_TYPES:
        return plural[:-1]
    raise NotFound(f"unknown UVE list {plural!r} (known: {', '.join(t + 's' for t in UVE_TYPES)}; "
                   f"one UVE is /analytics/uves/<type>/<key>)")


def key_pattern(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """``kfilt``: key patterns with ``*`` wildcards as one regex; None when there is none."""
    parts = [".*".join(re.escape(p) for p in pat.split("*")) for pat in patterns if pat]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def split_values(values: Iterable[str]) -> list[str]:
    """Query-string values, each possibly comma-separated."""
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def parse_cfilt(items: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """``Struct`` (all of it) or ``Struct:field`` -> ``{struct: fields or None}``."""
    out: dict[str, frozenset[str] | None] = {}
    for item in items:
        struct, colon, fld = item.partition(":")
        if not struct or (colon and not fld):
            raise BadRequest(f"cfilt: bad entry {item!r}: use Struct or Struct:field")
        if not fld:
            out[struct] = None
        elif struct not in out or out[struct] is not None:
            out[struct] = (out.get(struct) or frozenset()) | {fld}
    return out


def _origin_parts(origin: str) -> list[str]:
    """``source:node_type:module:instance_id`` (the instance id may hold colons)."""
    parts = origin.split(":", 3)
    return parts + [""] * (4 - len(parts))


@dataclass(frozen=True)
class UveFilter:
    """``kfilt``, ``sfilt``, ``mfilt`` and ``cfilt`` of the UVE routes."""

    kfilt: tuple[str, ...] = ()
    sfilt: str | None = None
    mfilt: str | None = None  # module or module:instance_id
    cfilt: dict[str, frozenset[str] | None] = field(default_factory=dict)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> UveFilter:
        """From a query string (a multidict's ``getall`` is used when it has one)."""
        def every(name: str) -> list[str]:
            getall = getattr(query, "getall", None)
            return list(getall(name, [])) if getall else ([query[name]] if name in query else [])
        def last(name: str) -> str | None:
            values = [v.strip() for v in every(name) if v.strip()]
            return values[-1] if values else None

        return cls(tuple(split_values(every("kfilt"))), last("sfilt"), last("mfilt"),
                   parse_cfilt(split_values(every("cfilt"))))

    @classmethod
    def from_body(cls, body: Any) -> UveFilter:
        """``POST /analytics/uves/<type>s``: ``{"kfilt": [...], "cfilt": [...], "sfilt": s, "mfilt": m}``."""
        if not isinstance(body, dict):
            raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
        valid = ("kfilt", "cfilt", "sfilt", "mfilt")
        extra = sorted(set(body) - set(valid))
        if extra:
            raise BadRequest(f"unknown key(s) {', '.join(map(repr, extra))} (valid: {', '.join(valid)})")
        lists: dict[str, list[str]] = {}
        for k in ("kfilt", "cfilt"):
            v = body.get(k) or []
            if isinstance(v, str):
                v = split_values([v])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise BadRequest(f"{k}: expected a list of strings, not {v!r:.80}")
            lists[k] = v
        single: dict[str, str | None] = {}
        for k in ("sfilt", "mfilt"):
            v = body.get(k)
            if v is not None and not isinstance(v, str):
                raise BadRequest(f"{k}: expected a string, not {v!r:.80}")
            single[k] = v or None
        return cls(tuple(lists["kfilt"]), single["sfilt"], single["mfilt"], parse_cfilt(lists["cfilt"]))

    @cached_property
    def _key_re(self) -> re.Pattern[str] | None:
        return key_pattern(self.kfilt)

    def key_ok(self, key: str) -> bool:
        return self._key_re is None or self._key_re.fullmatch(key) is not None

    def origin_ok(self, origin: str) -> bool:
        source, _node_type, module, instance = _origin_parts(origin)
        if self.sfilt is not None and source != self.sfilt:
            return False
        if self.mfilt is not None:
            want_module, _, want_instance = self.mfilt.partition(":")
            if module != want_module or (want_instance and instance != want_instance):
                return False
        return True

    def view(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """What a UVE row shows under this filter; ``{}`` when nothing is left."""
        if self.sfilt is not None or self.mfilt is not None:
            value: dict[str, Any] = {}
            # merged oldest first, as the aggregator does: {origin: {struct: {"ts": us, "data": ...}}}
            chosen = sorted((part["ts"], o, s, part["data"]) for o, structs in (row.get("origins") or {}).items()
                            if self.origin_ok(o) for s, part in structs.items())
            if not chosen:
                return {}
            for _ts, _o, s, data in chosen:
                value[s] = merge(value[s], data) if s in value else data
        else:
            value = dict(row.get("value") or {})
        if row.get("alarms"):
            value["UVEAlarms"] = {"alarms": row["alarms"]}
        if self.cfilt:
            kept: dict[str, Any] = {}
            for s, fields in self.cfilt.items():
                if s not in value:
                    continue
                if fields is None:
                    kept[s] = value[s]
                elif isinstance(value[s], dict):
                    part = {f: value[s][f] for f in sorted(fields) if f in value[s]}
                    if part:
                        kept[s] = part
            value = kept
        return value
