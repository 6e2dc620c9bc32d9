"""contrail-api's HTTP boundary: request bodies, request context (ids, requester), errors -> responses.

One place decides how a request's bytes become Python values and how every ``ConfigError``
becomes a response, so that handlers only ever see parsed, bounded input:

- ``read_body`` is strict: at most ``MAX_BODY`` bytes, then ``inputs.parse_json`` (UTF-8 JSON
  only, bounded depth, no lone surrogate). Any failure to read or decode the body (a bad
  ``Content-Encoding`` included) is a 400.
- The typed parameter helpers (``uuid_param``, ``id_list`` ...) live in ``inputs``, free of HTTP,
  and are re-exported here; the service layer uses them on the parsed bodies and queries.
- The ``errors`` middleware maps ``ConfigError``/``FieldError`` to their status; an unexpected
  exception from a request that has written nothing yet (``objects.wrote()`` False) is the
  input's fault and becomes a 400 (logged with its traceback at WARNING, so the bug stays
  visible); after a write it stays a 500, logged at ERROR.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from contrail_ha.services import proxied
from contrail_ha.services.config_api import objects
from contrail_ha.services.config_api.inputs import (
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_IDS,
    MAX_PARAM,
    REQUEST_ID,
    REQUESTER,
    bool_param,
    check_tree,
    csv_list,
    fq_name_param,
    fq_name_str_param,
    id_list,
    int_param,
    object_body,
    optional_uuid,
    parse_json,
    show,
    str_list,
    str_param,
    uuid_param,
)
from contrail_ha.services.config_api.objects import ConfigError
from contrail_ha.services.config_api.validation import FieldError

log = logging.getLogger(__name__)


MAX_BODY = 1024 * 1024
TEXT = "text/plain"


base = proxied.base  # ``scheme://host`` the client addressed: the base of every href in the answer


# --------------------------------------------------------------------------------------------
# Bodies


async def read_body(request: web.Request) -> Any:
    """The request's JSON body, or None when it is empty (413 over ``MAX_BODY``, else 400)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ConfigError(f"Request body too large: {request.content_length} > {MAX_BODY} bytes", 413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise ConfigError(f"Request body too large: more than {MAX_BODY} bytes", 413) from e
    except (ConnectionError, TimeoutError):
        raise
    except Exception as e:  # RequestPayloadError: bad Content-Encoding, truncated chunked body ...
        # the rest of the stream cannot be trusted: answer, then close the connection
        request[CLOSE] = True
        try:
            request.content.feed_eof()  # nothing more to drain after the response
        except Exception:
            pass
        raise ConfigError(f"Unreadable request body: {str(e).strip() or type(e).__name__}") from e
    if len(raw) > MAX_BODY:
        raise ConfigError(f"Request body too large: {len(raw)} > {MAX_BODY} bytes", 413)
    if not raw.strip():
        return None
    return parse_json(raw)


# --------------------------------------------------------------------------------------------
# Request context and errors


REQUEST_ID_HEADER = "X-Contrail-HA-Request"
# request key: the connection must be closed after the response (its stream is broken)
CLOSE = web.RequestKey("contrail_ha_close", bool)

# What a bug triggered by odd input raises; before any write it is answered 400, after one 500.
UNEXPECTED = (TypeError, ValueError, LookupError, AttributeError, RecursionError, UnicodeError, OverflowError)


TRUSTED_PROXIES = proxied.TRUSTED_PROXIES


def requester(request: web.Request) -> dict[str, str]:
    """Who asked, for the audit log. ``remote`` is the address HAProxy saw: the last
    X-Forwarded-For entry (the one the lb appended) of a request that came from an lb; a client's
    own X-Forwarded-For entries come before it and are never believed, nor is the header of a
    request that reached the replica directly."""
    h = request.headers
    return {"user": h.get("X-User-Name") or h.get("X-Auth-User") or "anonymous",
            "useragent": h.get("X-Contrail-Useragent") or h.get("User-Agent") or "",
            "remote": proxied.remote(request)}


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type=TEXT)


async def _answer(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    try:
        return await handler(request)
    except FieldError as e:
        return _text(400, str(e))
    except ConfigError as e:
        return _text(e.status, str(e))
    except web.HTTPRequestEntityTooLarge:
        return _text(413, f"Request body too large: more than {MAX_BODY} bytes")
    except web.HTTPException as e:
        return _text(e.status, e.text or e.reason)
    except UNEXPECTED as e:
        what = f"{request.method} {request.path_qs[:200]}"
        if not objects.wrote():
            log.warning("%s: %s: %s, nothing written: answered 400", what, type(e).__name__, e, exc_info=True)
            return _text(400, f"invalid request: {type(e).__name__}: {str(e)[:300]}")
        log.error("%s: %s: %s after a write: 500", what, type(e).__name__, e, exc_info=True)
        return _text(500, f"internal error: {type(e).__name__}: {str(e)[:300]}")


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """ConfigError -> its status, FieldError -> 400 naming the field; never a 500 for client input."""
    REQUESTER.set(requester(request))
    REQUEST_ID.set(request.headers.get(REQUEST_ID_HEADER) or None)
    objects.REQUEST_STATE.set(objects.RequestState())
    resp = await _answer(request, handler)
    if request.get(CLOSE):
        resp.force_close()
    return resp


__all__ = [
    "CLOSE", "MAX_BODY", "MAX_DEPTH", "MAX_FIELDS", "MAX_IDS", "MAX_PARAM", "REQUESTER", "REQUEST_ID",
    "REQUEST_ID_HEADER", "TEXT", "TRUSTED_PROXIES", "UNEXPECTED", "base", "bool_param", "check_tree", "csv_list",
    "errors",
    "fq_name_param", "fq_name_str_param", "id_list", "int_param", "object_body", "optional_uuid", "parse_json",
    "read_body", "requester", "show", "str_list", "str_param", "uuid_param",
]
