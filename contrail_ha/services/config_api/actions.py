"""contrail-api's action endpoints that are not object CRUD: names and ids, useragent-kv, perms,
aaa-mode, the virtual-network IP actions."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from contrail_ha.services.config_api.core import ApiCore, default_perms2
from contrail_ha.services.config_api.objects import ConfigError, NotFound, Obj
from contrail_ha.services.config_api.schema import canonical
from contrail_ha.services.config_api.validation import (
    FieldError,
)
from contrail_ha.services.config_api.wire import TEXT

log = logging.getLogger(__name__)


class Actions(ApiCore):
    """Handlers of the action endpoints."""

    async def h_fqname_to_id(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with type and fq_name")
        rt = self.rtype(str(body.get("type") or ""))
        fq = body.get("fq_name")
        if not isinstance(fq, list) or not fq or not all(isinstance(x, str) for x in fq):
            raise FieldError("fq_name", f"expected a list of strings, got {fq!r}")
        u = await self.store.fq_name_to_uuid(rt.object_type, fq)
        if u is None:
            raise NotFound(f"Name {fq} not found")
        return web.json_response({"uuid": u})

    async def h_id_to_fqname(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        u = body.get("uuid") if isinstance(body, dict) else None
        if not isinstance(u, str):
            raise FieldError("uuid", "missing")
        found = await self.store.uuid_to_fq_name(u)
        if found is None:
            raise NotFound(f"UUID {u} not found")
        return web.json_response({"fq_name": found[0], "type": canonical(found[1])})

    async def h_kv(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with operation and key")
        op, key = body.get("operation"), body.get("key")
        if op == "STORE":
            await self.require_writable()
            await self.store.kv_store(key, body.get("value"))
            return web.Response(status=200, text="", content_type=TEXT)
        if op == "RETRIEVE":
            if key is None:
                return web.json_response({"value": await self.store.kv_all()})
            value = await self.store.kv_retrieve(key)
            if value is None:
                raise NotFound(f"Unknown key {key}")
            return web.json_response({"value": value})
        if op == "DELETE":
            await self.require_writable()
            await self.store.kv_delete(key)
            return web.Response(status=200, text="", content_type=TEXT)
        raise FieldError("operation", f"must be STORE, RETRIEVE or DELETE, got {op!r}")

    async def h_obj_perms(self, request: web.Request) -> web.Response:
        return web.json_response({"token_info": None, "is_cloud_admin_role": True,
                                  "is_global_read_only_role": False, "permissions": "RWX"})

    async def _perms_update(self, request: web.Request, fn: Callable[[Obj, Obj], None]) -> web.Response:
        body = await self.body(request)
        if not isinstance(body, dict) or not isinstance(body.get("uuid"), str):
            raise FieldError("uuid", "missing")
        rt, obj = await self._prop_target(body["uuid"])
        perms2 = dict(obj.get("perms2") or default_perms2())
        fn(body, perms2)
        await self.require_writable()
        await self.store.update(obj["uuid"], {"perms2": perms2}, None)
        await self.changed("UPDATE", rt.object_type, obj["uuid"], obj["fq_name"], new={"perms2": perms2})
        return web.json_response({})

    async def h_chown(self, request: web.Request) -> web.Response:
        def apply(body: Obj, perms2: Obj) -> None:
            if not body.get("owner"):
                raise FieldError("owner", "missing")
            perms2["owner"] = str(body["owner"]).replace("-", "")
        return await self._perms_update(request, apply)

    async def h_chmod(self, request: web.Request) -> web.Response:
        def apply(body: Obj, perms2: Obj) -> None:
            for k in ("owner", "owner_access", "global_access", "share"):
                if body.get(k) is not None:
                    if k.endswith("_access") and (not isinstance(body[k], int) or not 0 <= body[k] <= 7):
                        raise FieldError(k, f"must be an integer 0-7, got {body[k]!r}")
                    perms2[k] = body[k]
        return await self._perms_update(request, apply)

    async def h_aaa_get(self, request: web.Request) -> web.Response:
        return web.json_response({"aaa-mode": self.aaa_mode})

    async def h_aaa_put(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        mode = body.get("aaa-mode") if isinstance(body, dict) else None
        if mode not in ("no-auth", "cloud-admin", "rbac"):
            raise FieldError("aaa-mode", f"must be no-auth, cloud-admin or rbac, got {mode!r}")
        self.aaa_mode = mode
        return web.json_response({"aaa-mode": mode})

    async def _vn(self, request: web.Request) -> Obj:
        return await self.lookup(self.schema["virtual-network"], request.match_info["uuid"])

    async def h_ip_alloc(self, request: web.Request) -> web.Response:
        vn = await self._vn(request)
        body = await self.body(request) or {}
        if not isinstance(body, dict):
            raise ConfigError("Body must be an object with count, subnet, family")
        count = body.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= 4096:
            raise FieldError("count", f"must be an integer 1-4096, got {count!r}")
        family = body.get("family")
        if family not in (None, "v4", "v6"):
            raise FieldError("family", f"must be v4 or v6, got {family!r}")
        await self.require_writable()
        owner = f"ip-alloc:{vn['uuid']}"
        out = []
        for _ in range(count):
            addr, _s = await self.ipam.allocate(vn, owner, family=family, subnet_uuid=body.get("subnet"))
            out.append(addr)
        return web.json_response({"ip_addr": out})

    async def h_ip_free(self, request: web.Request) -> web.Response:
        vn = await self._vn(request)
        body = await self.body(request) or {}
        addrs = body.get("ip_addr") if isinstance(body, dict) else None
        if not isinstance(addrs, list):
            raise FieldError("ip_addr", "expected a list of addresses")
        await self.require_writable()
        for a in addrs:
            await self.ipam.free(vn, str(a))
        return web.Response(status=200, text="", content_type=TEXT)

    async def h_subnet_ip_count(self, request: web.Request) -> web.Response:
        vn = await self._vn(request)
        body = await self.body(request) or {}
        subnets = body.get("subnet_list") if isinstance(body, dict) else None
        if not isinstance(subnets, list):
            raise FieldError("subnet_list", "expected a list of subnets")
        return web.json_response({"ip_count_list": [await self.ipam.count(vn, str(c)) for c in subnets]})

    async def _project_fq(self, obj: Obj) -> list[str] | None:
        """The project an object lives in (its own fq_name for a project), None for global objects."""
        if obj.get("type") == "project":
            return list(obj["fq_name"])
        fq = obj["fq_name"]
        if len(fq) >= 3 and await self.store.fq_name_to_uuid("project", fq[:2]) is not None:
            return list(fq[:2])
        return None

