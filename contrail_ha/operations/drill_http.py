"""The HTTP client of the drill's recorded histories (the register, the object graph).

Why its own session: aiohttp resends an idempotent request (PUT, DELETE, GET) once, silently, when
the connection fails under it (RFC 9112 9.3.1 allows it). A checker that records one operation per
call then misreads the history: when an lb dies with a PUT forwarded to a replica, the resend is
answered 200 through the other lb while the first copy, still running on the replica, may apply
later, after writes the client saw complete (a stale value "reappears"; the lb-kill drill's
register flagged exactly that). Sending each request once makes a connection failure an unknown
outcome, which is what the checkers model.
"""

from __future__ import annotations

import aiohttp

from contrail_ha.operations.vip import Vip


def once_session(timeout_s: float, vip: Vip) -> aiohttp.ClientSession:
    """A session that never resends a request by itself (call inside the running loop)."""
    s = vip.session(timeout_s)
    # aiohttp has no public switch for its resend; the pinned version's flag is checked so an
    # upgrade that renames it fails here instead of silently resending again
    if not isinstance(getattr(s, "_retry_connection", None), bool):
        raise RuntimeError(f"aiohttp {aiohttp.__version__}: cannot turn off its resend of idempotent requests")
    s._retry_connection = False
    return s
