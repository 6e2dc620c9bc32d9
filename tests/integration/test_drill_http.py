"""The drill's history client sends each request once: a connection dropped under a PUT is an
error to the caller (an unknown outcome), not a silent second copy of the write."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from contrail_ha.operations.drill_http import once_session


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


def test_aiohttp_resends_a_put_by_default() -> None:
    """Why the drill needs its own session: the default one resends and reports the second answer."""
    seen, outcome = asyncio.run(_count_puts(lambda: aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))))
    assert (seen, outcome) == (2, "200")


def test_the_drill_session_sends_once() -> None:
    seen, outcome = asyncio.run(_count_puts(lambda: once_session(10)))
    assert seen == 1
    assert outcome in ("ServerDisconnectedError", "ClientOSError")

