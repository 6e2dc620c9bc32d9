"""What a replica may believe of a request that came through an lb: the client's address and
whether the client spoke TLS to the VIP.

HAProxy appends the address it saw to X-Forwarded-For and, on a TLS frontend, sets
X-Forwarded-Proto. A client can send both headers too, so they are believed only on a request
whose peer is an lb (``trusted_proxies`` in the replica's ``service.json``), and of
X-Forwarded-For only the entry HAProxy added last.
"""

from __future__ import annotations

from aiohttp import web

# the lbs' addresses (and the VIP): only a request that comes from one of them is believed
TRUSTED_PROXIES = web.AppKey("trusted_proxies", frozenset)


def from_proxy(request: web.Request) -> bool:
    """The request's peer is one of the cluster's lbs."""
    return (request.remote or "") in request.app.get(TRUSTED_PROXIES, frozenset())


def remote(request: web.Request) -> str:
    """The client's address as the lb saw it (the peer's own for a request that did not come
    through one)."""
    peer = request.remote or ""
    if not from_proxy(request):
        return peer
    # HAProxy adds its own header line after the client's: every line, every entry, in order
    forwarded = [a.strip() for v in request.headers.getall("X-Forwarded-For", []) for a in v.split(",") if a.strip()]
    return forwarded[-1] if forwarded else peer


def base(request: web.Request) -> str:
    """``scheme://host`` the client addressed: the base of every href in an answer (``https`` when
    the lb terminated TLS for it)."""
    scheme = request.scheme
    if from_proxy(request) and request.headers.get("X-Forwarded-Proto", "").lower() == "https":
        scheme = "https"
    return f"{scheme}://{request.host}"
