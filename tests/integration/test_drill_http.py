"""The drill's history client sends each request once: a connection dropped under a PUT is an
error to the caller (an unknown outcome), not a silent second copy of the write."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from contrail_ha.operations.drill_http import once_session
from contrail_ha.operations.vip import Vip


async def _count_puts(make_session) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """PUT once against a server that drops the connection of its first PUT; (PUTs received, outcome)."""
    seen = 0

    async def put(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        await request.read()
        if seen == 1:
            assert request.transport is not None
            request.transport.abort()  # the lb died with the request forwarded
            await asyncio.sleep(0.5)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_put("/r", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with make_session() as s:
            try:
                async with s.put(f"http://127.0.0.1:{port}/r", json={"v": 1}) as r:
                    outcome = str(r.status)
            except aiohttp.ClientError as e:
                outcome = type(e).__name__
    finally:
        await runner.cleanup()
    return seen, outcome


PLAIN = Vip("http://127.0.0.1:1", "http://127.0.0.1:1", None)  # the tests' servers speak plain HTTP


def test_aiohttp_resends_a_put_by_default() -> None:
    """Why the drill needs its own session: the default one resends and reports the second answer."""
    seen, outcome = asyncio.run(_count_puts(lambda: aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))))
    assert (seen, outcome) == (2, "200")


def test_the_drill_session_sends_once() -> None:
    seen, outcome = asyncio.run(_count_puts(lambda: once_session(10, PLAIN)))
    assert seen == 1
    assert outcome in ("ServerDisconnectedError", "ClientOSError")


def test_a_setup_create_whose_first_answer_was_lost_adopts_the_object() -> None:
    """The graph's project create applied but its answer was lost (the lb died): the retry is
    refused 409 (the name exists), and the graph adopts the object instead of retrying for minutes."""
    from pathlib import Path

    import yaml

    from contrail_ha.operations.drill_graph import Graph
    from contrail_ha.topology.validate import parse

    plan = parse(yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "ha.yaml").read_text())).plan()
    made: dict[str, str] = {}
    posts = 0

    async def create(request: web.Request) -> web.Response:
        nonlocal posts
        posts += 1
        body = (await request.json())["project"]
        name = ":".join(body["fq_name"])
        if name in made:
            return web.json_response({"error": "exists"}, status=409)
        made[name] = "u-1"
        assert request.transport is not None
        request.transport.abort()  # applied, answer lost
        await asyncio.sleep(0.2)
        return web.json_response({})

    async def lookup(request: web.Request) -> web.Response:
        ask = await request.json()
        u = made.get(":".join(ask["fq_name"]))
        return web.json_response({"uuid": u}) if u else web.json_response({}, status=404)

    async def go() -> tuple[str, list[str]]:
        app = web.Application()
        app.router.add_post("/projects", create)
        app.router.add_post("/fqname-to-id", lookup)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        graph = Graph(plan, PLAIN)
        graph.vip = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with once_session(10, PLAIN) as s:
                u = await graph._create(s, "project", {"fq_name": ["default-domain", "p"], "parent_type": "domain"},
                                        "p")
        finally:
            await runner.cleanup()
        return u, [f"{op.kind} {op.status}" for op in graph.history]

    u, kinds = asyncio.run(go())
    assert u == "u-1" and posts == 2
    assert kinds == ["create-project None", "create-project 409", "lookup-project 200"]
