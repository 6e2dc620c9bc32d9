"""contrail-api's list and list-bulk-collection: filters, fields, detail, count, pagination."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from contrail_ha.services.config_api.core import ApiCore
from contrail_ha.services.config_api.objects import Obj
from contrail_ha.services.config_api.schema import CONFIG_ROOT, ResourceType
from contrail_ha.services.config_api.validation import (
    FieldError,
)
from contrail_ha.services.config_api.wire import _bool, _csv

log = logging.getLogger(__name__)


class Listing(ApiCore):
    """The list endpoints (``GET /<type>s``, ``POST /list-bulk-collection``)."""

    async def list(self, rt: ResourceType, q: dict[str, Any], base: str) -> Obj:
        def ids(key: str) -> list[str] | None:
            v = q.get(key)
            if v is None:
                return None
            return [x for x in (v if isinstance(v, list) else _csv(str(v)))]

        parent_uuids = ids("parent_id")
        if q.get("parent_fq_name_str"):
            ptype = q.get("parent_type") or rt.default_parent_type
            if not ptype or ptype == CONFIG_ROOT or self.schema.get(ptype) is None:
                return {rt.collection: []}
            puuid = await self.store.fq_name_to_uuid(self.schema[ptype].object_type,
                                                     str(q["parent_fq_name_str"]).split(":"))
            if puuid is None:
                return {rt.collection: []}
            parent_uuids = [puuid]
        entries = await self.store.list(rt.object_type, parent_uuids=parent_uuids,
                                        back_ref_uuids=ids("back_ref_id"), obj_uuids=ids("obj_uuids"))
        fq_names = ids("fq_names")
        if fq_names is not None:
            wanted = {tuple(f.split(":")) for f in fq_names}
            entries = [e for e in entries if tuple(e[0]) in wanted]
        filters = self._filters(q.get("filters"))
        fields = [f for f in (ids("fields") or []) if f in rt.field_names]
        detail = q.get("detail") is True or _bool(str(q.get("detail"))) if q.get("detail") is not None else False
        count = q.get("count") is True or (isinstance(q.get("count"), str) and _bool(q["count"]))
        exclude_hrefs = "exclude_hrefs" in q and q.get("exclude_hrefs") not in (False, "False", "false")
        entries.sort(key=lambda e: (e[0], e[1]))
        marker: str | None = None
        paginate = q.get("page_limit") is not None
        if paginate:
            try:
                limit = int(q["page_limit"])
            except (TypeError, ValueError) as e:
                raise FieldError("page_limit", f"must be an integer, got {q['page_limit']!r}") from e
            if limit < 1:
                raise FieldError("page_limit", f"must be at least 1, got {limit}")
            entries.sort(key=lambda e: e[1])  # pages follow uuid order; the marker is the last uuid
            after = q.get("page_marker")
            if after:
                entries = [e for e in entries if e[1] > str(after)]
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
                if filters and not all(any(o.get(k) == v for v in vals) for k, vals in self._group(filters)):
                    continue
                objs.append(o)
        if count:
            n = len(objs) if filters else len(entries)
            return {rt.collection: {"count": n}}
        if not detail:
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

    @staticmethod
    def _filters(raw: Any) -> list[tuple[str, Any]]:
        if not raw:
            return []
        out = []
        for part in str(raw).split(","):
            if "==" not in part:
                raise FieldError("filters", f"expected key==<json>, got {part!r}")
            k, v = part.split("==", 1)
            try:
                out.append((k, json.loads(v)))
            except ValueError:
                out.append((k, v))
        return out

    @staticmethod
    def _group(filters: list[tuple[str, Any]]) -> list[tuple[str, list[Any]]]:
        grouped: dict[str, list[Any]] = {}
        for k, v in filters:
            grouped.setdefault(k, []).append(v)
        return list(grouped.items())

    async def h_list(self, request: web.Request) -> web.Response:
        rt = self._collection(request)
        return web.json_response(await self.list(rt, dict(request.query), self.base(request)))

    async def h_list_bulk(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict) or not body.get("type"):
            raise FieldError("type", "list-bulk-collection needs a body with 'type'")
        rt = self.rtype(body["type"])
        return web.json_response(await self.list(rt, body, self.base(request)))

