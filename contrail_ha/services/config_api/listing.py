"""contrail-api's list and list-bulk-collection: filters, fields, detail, count, pagination.

Both take the same parameters (a query string, or the JSON body of list-bulk-collection) and
parse them with the typed helpers of ``inputs`` before any lookup: id lists hold at most
``MAX_IDS`` uuids (the bound on one request's work: a list-bulk-collection of 25,000 ids would
hold a replica for half a minute), ``fields`` and ``filters`` are bounded likewise.

Pagination (R2005): active when ``page_limit`` or ``page_marker`` is given; pages follow uuid
order and the marker is the last uuid of the page (null when done). A marker that is empty or
``None`` (any case) starts from the beginning; otherwise its last ``:`` segment must be a UUID
(R2005's unanchored markers ``<fq:name>:<uuid>`` are accepted that way), else 400.
``page_limit`` is an integer > 0 (default 256, R2005's ``paginate_count``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from contrail_ha.services.config_api.core import ApiCore
from contrail_ha.services.config_api.inputs import (
    MAX_FIELDS,
    MAX_IDS,
    bool_param,
    fq_name_str_param,
    id_list,
    int_param,
    object_body,
    parse_json,
    show,
    str_list,
    str_param,
    uuid_param,
)
from contrail_ha.services.config_api.objects import ConfigError, Obj
from contrail_ha.services.config_api.schema import CONFIG_ROOT, ResourceType
from contrail_ha.services.config_api.validation import (
    FieldError,
)

log = logging.getLogger(__name__)

PAGE_LIMIT_DEFAULT = 256
PAGE_LIMIT_MAX = 10**9


def page_marker(value: Any) -> str | None:
    """The uuid a page starts after; None to start from the beginning."""
    if value is None:
        return None
    marker = str_param(value, "page_marker", 4096)
    if not marker or marker.lower() == "none":
        return None
    try:
        return uuid_param(marker.rsplit(":", 1)[-1], "page_marker")
    except FieldError:
        raise FieldError("page_marker", f"{show(marker)}: its last ':' segment must be a UUID") from None


def parse_filters(raw: Any) -> list[tuple[str, Any]]:
    """``k==<json>,k==<json>`` (a value that is not JSON is taken as a string); at most
    ``MAX_FIELDS`` terms."""
    if not raw:
        return []
    text = str_param(raw, "filters")
    parts = text.split(",")
    if len(parts) > MAX_FIELDS:
        raise FieldError("filters", f"{len(parts)} terms, at most {MAX_FIELDS} are allowed")
    out = []
    for part in parts:
        if "==" not in part:
            raise FieldError("filters", f"expected key==<json>, got {show(part)}")
        k, v = part.split("==", 1)
        try:
            out.append((k, parse_json(v)))
        except ConfigError:
            out.append((k, v))
    return out


def group_filters(filters: list[tuple[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The filter terms by key: an object matches when each key has one of its values."""
    grouped: dict[str, list[Any]] = {}
    for k, v in filters:
        grouped.setdefault(k, []).append(v)
    return list(grouped.items())


class Listing(ApiCore):
    """The list endpoints (``GET /<type>s``, ``POST /list-bulk-collection``)."""

    async def list(self, rt: ResourceType, q: Mapping[str, Any], base: str) -> Obj:
        """``GET /<type>s``: ``q`` is the query (or the body of list-bulk-collection)."""
        def ids(key: str) -> list[str] | None:
            v = q.get(key)
            return None if v is None else id_list(v, key)

        parent_uuids = ids("parent_id")
        back_ref_uuids = ids("back_ref_id")
        obj_uuids = ids("obj_uuids")
        fq_names = None
        if q.get("fq_names") is not None:
            raw = q["fq_names"]
            names = str_list(raw, "fq_names", MAX_IDS, 4096)
            fq_names = {tuple(fq_name_str_param(f, f"fq_names[{i}]")) for i, f in enumerate(names)}
        filters = parse_filters(q.get("filters"))
        fields = [f for f in str_list(q.get("fields") or [], "fields") if f in rt.field_names]
        detail = bool_param(q.get("detail"))
        count = bool_param(q.get("count"))
        exclude_hrefs = "exclude_hrefs" in q and q.get("exclude_hrefs") not in (False, "False", "false")
        paginate = q.get("page_limit") is not None or q.get("page_marker") is not None
        limit = PAGE_LIMIT_DEFAULT
        if q.get("page_limit") is not None:
            limit = int_param(q["page_limit"], "page_limit", 1, PAGE_LIMIT_MAX)
        after = page_marker(q.get("page_marker"))
        if q.get("parent_fq_name_str"):
            pfq = fq_name_str_param(q["parent_fq_name_str"], "parent_fq_name_str")
            ptype = str_param(q.get("parent_type") or rt.default_parent_type or "", "parent_type", 128)
            if not ptype or ptype == CONFIG_ROOT or self.schema.get(ptype) is None:
                return {rt.collection: []}
            puuid = await self.store.fq_name_to_uuid(self.schema[ptype].object_type, pfq)
            if puuid is None:
                return {rt.collection: []}
            parent_uuids = [puuid]
        entries = await self.store.list(rt.object_type, parent_uuids=parent_uuids,
                                        back_ref_uuids=back_ref_uuids, obj_uuids=obj_uuids)
        if fq_names is not None:
            entries = [e for e in entries if tuple(e[0]) in fq_names]
        entries.sort(key=lambda e: (e[0], e[1]))
        marker: str | None = None
        if paginate:
            entries.sort(key=lambda e: e[1])  # pages follow uuid order; the marker is the last uuid
            if after is not None:
                entries = [e for e in entries if e[1] > after]
            if len(entries) > limit:
                entries = entries[:limit]
                marker = entries[-1][1]
        need_objects = bool(filters) or detail or fields
        objs: list[Obj] = []
        if need_objects:
            want = None if detail else sorted(set(fields) | {k for k, _ in filters})
            found = await self.store.read_many([u for _, u in entries], fields=want)
            for o in found:
                if o is None or o.get("type") != rt.object_type:
                    continue
                if filters and not all(any(o.get(k) == v for v in vals) for k, vals in group_filters(filters)):
                    continue
                objs.append(o)
        if count:
            n = len(objs) if filters else len(entries)
            return {rt.collection: {"count": n}}
        if not detail:
            items: list[Obj]
            if not need_objects:
                items = [{"uuid": u, "fq_name": fq} for fq, u in entries]
            else:
                items = [{"uuid": o["uuid"], "fq_name": o["fq_name"], **{f: o[f] for f in fields if f in o}}
                         for o in objs]
            if not exclude_hrefs:
                for it in items:
                    it["href"] = self.href(base, rt.resource_type, it["uuid"])
            return {rt.collection: items, "marker": marker} if paginate else {rt.collection: items}
        out = []
        for o in objs:
            shown = self.present(base, rt, o, exclude_hrefs)
            for f in list(shown):
                if (f in rt.children or f in rt.back_refs) and f not in fields:
                    del shown[f]
            out.append({rt.resource_type: shown})
        return {rt.collection: out, "marker": marker} if paginate else {rt.collection: out}

    async def list_bulk(self, body: Any, base: str) -> Obj:
        """``POST /list-bulk-collection``: the list parameters, and the ``type``, in a JSON body."""
        body = object_body(body, "type and the list parameters")
        if not body.get("type"):
            raise FieldError("type", "list-bulk-collection needs a body with 'type'")
        rt = self.rtype(str_param(body["type"], "type", 128))
        return await self.list(rt, body, base)
