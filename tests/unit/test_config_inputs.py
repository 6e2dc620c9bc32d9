"""contrail-api input handling: the strict body parser, the typed parameter helpers, the name
limits, the ZooKeeper path escaping and the errors middleware (no 5xx for client input)."""

from __future__ import annotations

import asyncio
import json
import socket
import string
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from contrail_ha.services.config_api import objects
from contrail_ha.services.config_api.actions import AAA_MODE_KEY, kv_key, share_param
from contrail_ha.services.config_api.listing import page_marker
from contrail_ha.services.config_api.objects import ConfigError
from contrail_ha.services.config_api.schema import ACTIONS, SERVED_ACTIONS, schema
from contrail_ha.services.config_api.server import ConfigApi
from contrail_ha.services.config_api.validation import (
    MAX_FQ_NAME_ELEMENTS,
    MAX_NAME_CHARS,
    FieldError,
    check_fq_name_limits,
    validate_fq_name,
    validate_object,
)
from contrail_ha.services.config_api.wire import (
    MAX_DEPTH,
    MAX_IDS,
    errors,
    id_list,
    int_param,
    parse_json,
    read_body,
    uuid_param,
)
from contrail_ha.services.config_api.zk import escape, fq_lock_path, subnet_path

U = "c626c10d-1f50-4c9f-9a39-0b1f0c7d2a11"


# --------------------------------------------------------------------------------------------
# The body parser


def test_depth_limit() -> None:
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    for depth in (MAX_DEPTH + 1, 1000, 100_000):
        with pytest.raises(ConfigError, match="nested deeper"):
            parse_json("[" * depth + "]" * depth)
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_json('{"a":' * 1000 + "1" + "}" * 1000)


@pytest.mark.parametrize("text", ['"\\ud800"', '{"\\udfff": 1}', '["ok", {"k": "x\\ud83dy"}]'])
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="surrogate"):
        parse_json(text)


def test_valid_pairs_and_non_bmp_pass() -> None:
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"
    assert parse_json('{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}', "1e400", b"\xff\xfe", "{", "1" * 5000])
def test_non_json_is_400(text: str | bytes) -> None:
    with pytest.raises(ConfigError) as info:
        parse_json(text)
    assert info.value.status == 400


# --------------------------------------------------------------------------------------------
# Typed parameters


@pytest.mark.parametrize("bad", [5, None, [], {}, "", "x", U[:-1], U + "0", True, f"{{{U}}}", U.replace("-", "")])
def test_uuid_param_refuses_non_uuids(bad: Any) -> None:
    with pytest.raises(FieldError) as info:
        uuid_param(bad, "uuid")
    assert info.value.path == "uuid"


def test_uuid_param_normalises_case() -> None:
    assert uuid_param(U.upper(), "uuid") == U


def test_id_list() -> None:
    assert id_list(f"{U},{U}", "obj_uuids") == [U, U]
    assert id_list([U], "obj_uuids") == [U]
    with pytest.raises(FieldError, match=r"obj_uuids\[0\]"):
        id_list([None], "obj_uuids")
    with pytest.raises(FieldError, match="at most 1000"):
        id_list([U] * (MAX_IDS + 1), "obj_uuids")
    with pytest.raises(FieldError):
        id_list(5, "parent_id")


def test_int_param() -> None:
    assert int_param("7", "page_limit", 1, 10) == 7
    for bad in (True, 0, -1, "x", 2.5, None, "9" * 30, float("inf")):
        with pytest.raises(FieldError):
            int_param(bad, "page_limit", 1, 10**9)


@pytest.mark.parametrize(("marker", "after"), [(None, None), ("", None), ("None", None), ("nOnE", None),
                                               (U, U), (f"default-domain:p:{U}", U)])
def test_page_marker(marker: str | None, after: str | None) -> None:
    assert page_marker(marker) == after


@pytest.mark.parametrize("marker", ["x", "a:b", f"{U}:x", 5, ["a"]])
def test_bad_page_marker_is_400(marker: Any) -> None:
    with pytest.raises(FieldError, match="page_marker"):
        page_marker(marker)


def test_kv_keys() -> None:
    assert kv_key("neutron:x") == "neutron:x"
    for bad in ("", 5, None, "k" * 1025, AAA_MODE_KEY):
        with pytest.raises(FieldError):
            kv_key(bad)


def test_share_entries() -> None:
    assert share_param([{"tenant": f"tenant:{U}", "tenant_access": 7}]) == [
        {"tenant": f"tenant:{U}", "tenant_access": 7}]
    for bad in (5, [5], [{"tenant": 5, "tenant_access": 1}], [{"tenant": "x:y", "tenant_access": 1}],
                [{"tenant": "tenant:", "tenant_access": 1}], [{"tenant": U, "tenant_access": 8}],
                [{"tenant": U, "tenant_access": "rw"}], [{"tenant": U}], [{"tenant": U, "tenant_access": 1, "x": 1}]):
        with pytest.raises(FieldError):
            share_param(bad)


def test_refs_uuid_and_to_are_typed() -> None:
    for bad in ({"uuid": 5}, {"uuid": "nope"}, {"to": [None]}, {"to": "a:b"}, {"to": ["x" * 300]}, {"to": {"uuid": 7}}):
        with pytest.raises(FieldError, match=r"network_ipam_refs\[0\]"):
            validate_object("virtual-network", {"network_ipam_refs": [{**bad, "attr": None}]})
    validate_object("virtual-network", {"network_ipam_refs": [{"to": ["d", "p", "i"], "uuid": None, "attr": None}]})


def test_perms2_share_tenant_is_checked_on_create() -> None:
    body = {"perms2": {"owner": "x", "share": [{"tenant": "t" * 300, "tenant_access": 1}]}}
    with pytest.raises(FieldError, match=r"perms2.share\[0\].tenant"):
        validate_object("project", body)


# --------------------------------------------------------------------------------------------
# Names


def test_name_limits() -> None:
    ok = ["default-domain", "p", "n" * MAX_NAME_CHARS]
    assert validate_fq_name("virtual-network", ok) == ok
    for bad in (["d", "p", "n" * (MAX_NAME_CHARS + 1)], ["d", "", "x"], ["a"] * (MAX_FQ_NAME_ELEMENTS + 1),
                ["a" * 250] * 4, ["d", "p", "a\ud800"], ["d", "p", "a:b"], ["d", "p", "a\x01"], ["d", "p", "\ufffe"]):
        with pytest.raises(FieldError, match="fq_name"):
            validate_fq_name("virtual-network", bad)
    validate_fq_name("route-target", ["target:64512:1"])


@given(st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=10))
@settings(max_examples=300, deadline=None, database=None)
def test_accepted_names_fit_every_store(fq: list[str]) -> None:
    try:
        check_fq_name_limits(fq)
    except FieldError:
        return
    joined = ":".join(fq)
    assert len(f"structured_syslog_application_record:{joined}") <= 1024  # the config log's object id
    assert len(f"{joined}:{U}".encode()) < 8 * 1024  # the Cassandra fq-name column, far below 64 KiB
    assert len(fq_lock_path("structured_syslog_application_record", fq).encode()) < 16 * 1024


# --------------------------------------------------------------------------------------------
# ZooKeeper paths


def zk_valid_node(name: str) -> bool:
    """ZooKeeper's PathUtils.validatePath for one node name (Java UTF-16 units)."""
    if name in ("", ".", ".."):
        return False
    for ch in name:
        c = ord(ch)
        if c == 0 or 0x01 <= c <= 0x1F or 0x7F <= c <= 0x9F or 0xD800 <= c <= 0xF8FF or 0xFFF0 <= c <= 0xFFFF \
                or c > 0xFFFF:
            return False
    return True


@given(st.text(), st.text())
@settings(max_examples=500, deadline=None, database=None)
def test_escape_is_injective_and_zookeeper_valid(a: str, b: str) -> None:
    ea, eb = escape(a), escape(b)
    assert "/" not in ea and all(32 <= ord(c) < 127 for c in ea)
    assert (ea == eb) == (a == b)
    if a:
        assert zk_valid_node(f"virtual_network:{ea}")


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters=":"), min_size=1), min_size=1, max_size=5),
       st.lists(st.text(alphabet=st.characters(blacklist_characters=":"), min_size=1), min_size=1, max_size=5))
@settings(max_examples=300, deadline=None, database=None)
def test_fq_lock_path_is_injective(a: list[str], b: list[str]) -> None:
    pa, pb = fq_lock_path("virtual_network", a), fq_lock_path("virtual_network", b)
    assert (pa == pb) == (a == b)
    node = pa.split("/")[-1]
    assert pa.count("/") == 2 and zk_valid_node(node)


def test_escape_examples() -> None:
    assert escape("plain name-1.x") == "plain name-1.x"
    assert escape("a/b%c") == "a%2Fb%25c"
    assert escape("t\tab\r\n\x7f\x9f\ue000\U0001f600") == "t%09ab%0D%0A%7F%C2%9F%EE%80%80%F0%9F%98%80"
    assert subnet_path(["d", "p", "v/\t"], "10.0.0.5/24") == "/api-server/subnets/d:p:v%2F%09:10.0.0.0/24/"
    assert all(c in string.printable for c in escape("ünïcødé"))


# --------------------------------------------------------------------------------------------
# The homepage advertises only what is served


def test_every_advertised_action_has_a_route() -> None:
    app = web.Application()
    ConfigApi(None, None, None).add_routes(app)
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    page = schema().homepage("http://h:8082")
    advertised = [lk["link"] for lk in page["links"] if lk["link"]["rel"] == "action"]
    assert {lk["name"] for lk in advertised} == set(SERVED_ACTIONS)
    for link in advertised:
        uri = link["href"][len("http://h:8082"):].replace("%s", "{uuid}")
        action = next(a for a in ACTIONS if a.name == link["name"])
        for method in action.methods:
            assert (method, uri) in routes, (link["name"], method, uri)


# --------------------------------------------------------------------------------------------
# The errors middleware and read_body over real HTTP


async def _serve(handler: Any) -> tuple[web.AppRunner, int]:
    app = web.Application(middlewares=[errors])
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return out


def test_middleware_and_body_decoding() -> None:
    async def handler(request: web.Request) -> web.Response:
        body = await read_body(request)
        if request.path == "/type-error":
            raise TypeError("boom")
        if request.path == "/after-write":
            objects.mark_write()
            raise KeyError("boom")
        return web.json_response({"body": body})

    async def run() -> list[bytes]:
        runner, port = await _serve(handler)
        try:
            def req(path: str, body: bytes, headers: str = "") -> bytes:
                return _raw(port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}"
                                  f"Connection: close\r\n\r\n".encode() + body)
            return [await asyncio.to_thread(req, p, b, h) for p, b, h in [
                ("/", b'{"a": 1}', ""),
                ("/", b'{"a": 1}', "Content-Encoding: gzip\r\n"),
                ("/", b'{"a": 1}' * 20000, "Content-Encoding: deflate\r\n"),
                ("/", b"[" * 2000 + b"]" * 2000, ""),
                ("/", b'"\\ud800"', ""),
                ("/type-error", b"", ""),
                ("/after-write", b"", ""),
            ]]
        finally:
            await runner.cleanup()

    out = asyncio.run(run())
    status = [int(r.split(b" ", 2)[1]) if r else 0 for r in out]
    assert status == [200, 400, 400, 400, 400, 400, 500], out
    assert json.loads(out[0].split(b"\r\n\r\n", 1)[1]) == {"body": {"a": 1}}
    assert b"invalid request: TypeError" in out[5]
