"""contrail-api's HTTP routes: thin aiohttp handlers over the service layer.

Each handler only parses the request (path, query, headers, the body through ``wire.read_body``),
calls one ``ConfigService`` operation, and builds the response; errors are answered by the
``wire.errors`` middleware. The order is the service's: e.g. an object's type (404) is checked
before its body is read.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from contrail_ha.services.config_api.service import ConfigService
from contrail_ha.services.config_api.wire import TEXT, base, read_body


def empty() -> web.Response:
    """The empty 200 answer of a write that returns nothing."""
    return web.Response(status=200, text="", content_type=TEXT)


def json_or_empty(out: Any) -> web.Response:
    return empty() if out is None else web.json_response(out)


class Handlers:
    """The routes of one ``ConfigService``."""

    def __init__(self, api: ConfigService) -> None:
        self.api = api

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.h_home)
        r.add_get("/hello", self.h_hello)
        r.add_post("/fqname-to-id", self.h_fqname_to_id)
        r.add_post("/id-to-fqname", self.h_id_to_fqname)
        r.add_post("/ref-update", self.h_ref_update)
        r.add_post("/ref-relax-for-delete", self.h_ref_relax)
        r.add_get("/prop-collection-get", self.h_prop_get)
        r.add_post("/prop-collection-update", self.h_prop_update)
        r.add_post("/useragent-kv", self.h_kv)
        r.add_post("/list-bulk-collection", self.h_list_bulk)
        r.add_get("/obj-perms", self.h_obj_perms)
        r.add_post("/chown", self.h_chown)
        r.add_post("/chmod", self.h_chmod)
        r.add_get("/aaa-mode", self.h_aaa_get)
        r.add_put("/aaa-mode", self.h_aaa_put)
        r.add_post("/set-tag", self.h_set_tag)
        r.add_post("/virtual-network/{uuid}/ip-alloc", self.h_ip_alloc)
        r.add_post("/virtual-network/{uuid}/ip-free", self.h_ip_free)
        r.add_post("/virtual-network/{uuid}/subnet-ip-count", self.h_subnet_ip_count)
        r.add_get("/{collection}", self.h_list)
        r.add_post("/{collection}", self.h_create)
        r.add_get("/{type}/{uuid}", self.h_read)
        r.add_put("/{type}/{uuid}", self.h_update)
        r.add_delete("/{type}/{uuid}", self.h_delete)

    async def h_hello(self, request: web.Request) -> web.Response:
        """The bare endpoint of the same HTTP stack: the benchmarks' local ceiling."""
        return web.json_response({"hello": "contrail-api"})

    async def h_home(self, request: web.Request) -> web.Response:
        return web.json_response(self.api.schema.homepage(base(request)))

    # --- objects ---------------------------------------------------------------------------------
    async def h_create(self, request: web.Request) -> web.Response:
        rt = self.api.collection(request.match_info["collection"])
        body = await read_body(request)
        return web.json_response(await self.api.create_from_body(rt, body, base(request)))

    async def h_read(self, request: web.Request) -> web.Response:
        rt = self.api.rtype(request.match_info["type"])
        out, etag = await self.api.read(rt, request.match_info["uuid"], request.query, base(request),
                                        request.headers.get("If-None-Match"))
        if out is None:
            return web.Response(status=304, headers={"ETag": etag} if etag else None)
        return web.json_response(out, headers={"ETag": etag} if etag else None)

    async def h_update(self, request: web.Request) -> web.Response:
        rt = self.api.rtype(request.match_info["type"])
        body = await read_body(request)
        return web.json_response(await self.api.update_from_body(rt, request.match_info["uuid"], body,
                                                                 base(request)))

    async def h_delete(self, request: web.Request) -> web.Response:
        rt = self.api.rtype(request.match_info["type"])
        await self.api.delete(rt, request.match_info["uuid"], base(request))
        return empty()

    async def h_list(self, request: web.Request) -> web.Response:
        rt = self.api.collection(request.match_info["collection"])
        return web.json_response(await self.api.list(rt, dict(request.query), base(request)))

    async def h_list_bulk(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.list_bulk(await read_body(request), base(request)))

    # --- refs and element updates ------------------------------------------------------------------
    async def h_ref_update(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.ref_update(await read_body(request)))

    async def h_ref_relax(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.ref_relax(await read_body(request)))

    async def h_set_tag(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.set_tag(await read_body(request)))

    async def h_prop_get(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.prop_get(request.query))

    async def h_prop_update(self, request: web.Request) -> web.Response:
        await self.api.prop_update(await read_body(request))
        return empty()

    # --- actions -----------------------------------------------------------------------------------
    async def h_fqname_to_id(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.fqname_to_id(await read_body(request)))

    async def h_id_to_fqname(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.id_to_fqname(await read_body(request)))

    async def h_kv(self, request: web.Request) -> web.Response:
        return json_or_empty(await self.api.kv(await read_body(request)))

    async def h_obj_perms(self, request: web.Request) -> web.Response:
        return web.json_response(self.api.obj_perms())

    async def h_chown(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.chown(await read_body(request)))

    async def h_chmod(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.chmod(await read_body(request)))

    async def h_aaa_get(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.get_aaa_mode())

    async def h_aaa_put(self, request: web.Request) -> web.Response:
        return web.json_response(await self.api.set_aaa_mode(await read_body(request)))

    async def h_ip_alloc(self, request: web.Request) -> web.Response:
        vn = await self.api.virtual_network(request.match_info["uuid"])  # 404 before the body is read
        return web.json_response(await self.api.ip_alloc(vn, await read_body(request)))

    async def h_ip_free(self, request: web.Request) -> web.Response:
        vn = await self.api.virtual_network(request.match_info["uuid"])
        await self.api.ip_free(vn, await read_body(request))
        return empty()

    async def h_subnet_ip_count(self, request: web.Request) -> web.Response:
        vn = await self.api.virtual_network(request.match_info["uuid"])
        return web.json_response(await self.api.subnet_ip_count(vn, await read_body(request)))
