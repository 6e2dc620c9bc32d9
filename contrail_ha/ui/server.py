"""The UI's HTTP server: static files and ``/api/*`` (JSON), read-only."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from contrail_ha.operations.vip import Vip
from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.services.analytics.protocol import UVE_TYPES
from contrail_ha.topology.plan import Plan

STATIC = Path(__file__).parent / "static"
PLAN = web.AppKey("plan", Plan)
LAYOUT = web.AppKey("layout", Layout)
Collect = Callable[[Plan, Layout], list[Check]]
COLLECT: web.AppKey[Collect] = web.AppKey("collect")
HTTP = web.AppKey("http", aiohttp.ClientSession)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def overview(request: web.Request) -> web.Response:
    plan = request.app[PLAN]
    t = plan.topology
    return web.json_response({
        "cluster": t.cluster.id, "vip": plan.vip, "network": str(t.cluster.network),
        "lb_protocol": t.lb.protocol.value,
        "hosts": [{"name": h.name, "ip": str(h.ip), "roles": [r.value for r in h.roles]} for h in t.hosts],
        "replication": t.replication.model_dump(), "services": t.services.model_dump(),
        "uve_types": list(UVE_TYPES),
    })


async def status(request: web.Request) -> web.Response:
    checks: list[Check] = await asyncio.to_thread(request.app[COLLECT], request.app[PLAN], request.app[LAYOUT])
    return web.json_response({"healthy": all(c.ok for c in checks),
                              "checks": [{k: v for k, v in c.as_dict().items() if k != "data"} for c in checks]})


async def _analytics(request: web.Request, path: str) -> web.Response:
    plan = request.app[PLAN]
    url = f"{plan.analytics_api_url}/analytics{path}"
    try:
        async with request.app[HTTP].get(url, params=request.query) as r:
            body = await r.read()
            return web.Response(status=r.status, body=body, content_type=r.content_type)
    except (TimeoutError, aiohttp.ClientError) as e:
        return web.json_response({"error": f"analytics API unreachable: {e.__class__.__name__}"}, status=502)


async def alarms(request: web.Request) -> web.Response:
    return await _analytics(request, "/alarms")


async def uves(request: web.Request) -> web.Response:
    kind = request.match_info["type"]
    if kind not in UVE_TYPES:
        return web.json_response({"error": f"unknown UVE type {kind!r}"}, status=404)
    name = request.match_info.get("name")
    return await _analytics(request, f"/uves/{kind}/{name}" if name else f"/uves/{kind}s")


async def drills(request: web.Request) -> web.Response:
    d = request.app[LAYOUT].root / "drills"
    files = sorted(d.glob("drill-*.json"), reverse=True)[:20] if d.exists() else []
    out = []
    for f in files:
        try:
            out.append({"file": f.name, "results": json.loads(f.read_text())})
        except (OSError, ValueError):
            continue
    return web.json_response(out)


async def config(request: web.Request) -> web.Response:
    """A list of config objects of one type (``/api/config/virtual-networks``), through the VIP."""
    plan = request.app[PLAN]
    kind = request.match_info["collection"]
    if not kind.replace("-", "").isalpha():
        return web.json_response({"error": f"bad collection {kind!r}"}, status=400)
    url = f"{plan.config_api_url}/{kind}"
    try:
        async with request.app[HTTP].get(url, params={"detail": "False"}) as r:
            return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)
    except (TimeoutError, aiohttp.ClientError) as e:
        return web.json_response({"error": f"config API unreachable: {e.__class__.__name__}"}, status=502)


def build(plan: Plan, layout: Layout, collect: Collect) -> web.Application:
    app = web.Application()
    app[PLAN], app[LAYOUT], app[COLLECT] = plan, layout, collect

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[HTTP] = Vip.of(plan, layout).session(10)
        yield
        await app[HTTP].close()

    app.cleanup_ctx.append(session)
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/api/overview", overview)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/alarms", alarms)
    app.router.add_get("/api/uves/{type}", uves)
    app.router.add_get("/api/uves/{type}/{name}", uves)
    app.router.add_get("/api/drills", drills)
    app.router.add_get("/api/config/{collection}", config)
    return app


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket now (in this process's current network namespace)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    s.setblocking(False)
    return s


def serve(app: web.Application, sock: socket.socket) -> None:
    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        await asyncio.Event().wait()

    asyncio.run(main())
