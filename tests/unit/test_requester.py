"""The audit log's "remote": the address HAProxy saw, never what a client claims."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from contrail_ha.services.config_api.wire import TRUSTED_PROXIES, requester

LB = "10.10.0.11"


class _Peer:
    """A transport that says which address the connection came from."""

    def __init__(self, ip: str) -> None:
        self.ip = ip

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.ip, 40000) if name == "peername" else default


def _remote(peer: str, xff: str | list[str] | None) -> str:
    app = web.Application()
    app[TRUSTED_PROXIES] = frozenset({LB, "10.10.100.10"})
    lines = [xff] if isinstance(xff, str) else xff or []
    headers = CIMultiDict(("X-Forwarded-For", v) for v in lines)
    request = make_mocked_request("POST", "/projects", headers=headers, app=app, transport=_Peer(peer))
    return requester(request)["remote"]


def test_through_an_lb_the_address_it_appended() -> None:
    assert _remote(LB, "10.250.0.2") == "10.250.0.2"
    # a client's own header comes first; HAProxy appends what it saw
    assert _remote(LB, "203.0.113.7, 10.250.0.2") == "10.250.0.2"
    # HAProxy's `option forwardfor` adds a header line of its own after the client's
    assert _remote(LB, ["203.0.113.7", "10.250.0.2"]) == "10.250.0.2"


def test_a_direct_client_is_its_own_address_whatever_it_claims() -> None:
    assert _remote("10.250.0.2", "203.0.113.7") == "10.250.0.2"
    assert _remote("10.10.0.21", None) == "10.10.0.21"


def test_an_lb_without_the_header_is_the_lb() -> None:
    assert _remote(LB, None) == LB and _remote(LB, " , ") == LB


def test_hrefs_are_https_only_when_an_lb_says_it_terminated_tls() -> None:
    """X-Forwarded-Proto from an lb (its TLS frontend) makes the answer's hrefs https; the same
    header from a client that reached a replica directly changes nothing."""
    from contrail_ha.services.proxied import base

    def href(peer: str, proto: str | None) -> str:
        app = web.Application()
        app[TRUSTED_PROXIES] = frozenset({LB})
        headers = CIMultiDict({"Host": "10.9.0.100:8082", **({"X-Forwarded-Proto": proto} if proto else {})})
        return base(make_mocked_request("GET", "/", headers=headers, app=app, transport=_Peer(peer)))

    assert href(LB, "https") == "https://10.9.0.100:8082"
    assert href(LB, None) == "http://10.9.0.100:8082"
    assert href("10.250.0.2", "https") == "http://10.9.0.100:8082"
