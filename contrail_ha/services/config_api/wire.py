"""contrail-api's HTTP boundary: request bodies, request context (ids, requester), errors -> responses.

One place decides how a request's bytes become Python values and how every ``ConfigError``
becomes a response, so that handlers only ever see parsed, bounded input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from contrail_ha.services.config_api.objects import ConfigError
from contrail_ha.services.config_api.validation import (
    FieldError,
)

log = logging.getLogger(__name__)


MAX_BODY = 1024 * 1024
TEXT = "text/plain"


def _bool(v: str | None) -> bool:
    return v is not None and "true" in v.lower()


def _csv(v: str | None) -> list[str]:
    return [x for x in (v or "").split(",") if x]


async def read_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ConfigError(f"Request body too large: {request.content_length} > {MAX_BODY} bytes", 413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise ConfigError(f"Request body too large: more than {MAX_BODY} bytes", 413) from e
    if len(raw) > MAX_BODY:
        raise ConfigError(f"Request body too large: {len(raw)} > {MAX_BODY} bytes", 413)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"Malformed JSON body: {e}") from e


# The id HAProxy gives each request (retries of a request keep it); None when not behind HAProxy.
REQUEST_ID_HEADER = "X-Contrail-HA-Request"
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# Who made the request being served: the config log's "who" (user, user agent, client address).
REQUESTER: ContextVar[dict[str, str] | None] = ContextVar("requester", default=None)


def requester(request: web.Request) -> dict[str, str]:
    h = request.headers
    remote = h.get("X-Forwarded-For", "").split(",")[0].strip() or request.remote or ""
    return {"user": h.get("X-User-Name") or h.get("X-Auth-User") or "anonymous",
            "useragent": h.get("X-Contrail-Useragent") or h.get("User-Agent", ""), "remote": remote}


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """ConfigError -> its status, FieldError -> 400 naming the field; never a 500 for client input."""
    REQUESTER.set(requester(request))
    REQUEST_ID.set(request.headers.get(REQUEST_ID_HEADER) or None)
    try:
        return await handler(request)
    except FieldError as e:
        return web.Response(status=400, text=str(e), content_type=TEXT)
    except ConfigError as e:
        return web.Response(status=e.status, text=str(e), content_type=TEXT)
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413, text=f"Request body too large: more than {MAX_BODY} bytes",
                            content_type=TEXT)
    except web.HTTPException as e:
        return web.Response(status=e.status, text=e.text or e.reason, content_type=TEXT)

