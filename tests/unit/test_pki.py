"""The cluster CA and its server certificates (no servers): made once, kept, re-issued only when
their names change; the keys 0600; a TLS handshake verifies against the CA."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from cryptography import x509

from contrail_ha.rendering import pki
from contrail_ha.rendering.base import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "root", cache=tmp_path / "cache")


def test_the_ca_is_made_once_and_its_key_is_private(layout: Layout) -> None:
    a = pki.ca(layout, "c1")
    assert pki.ca(layout, "c1") == a
    d = layout.root / "secrets"
    assert stat.S_IMODE(os.stat(d / pki.CA_KEY).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d / pki.CA_CERT).st_mode) == 0o644
    cert = x509.load_pem_x509_certificate(a.cert.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "c1" in cert.subject.rfc4514_string()


def test_a_server_certificate_is_kept_until_its_names_change(layout: Layout) -> None:
    one = pki.server(layout, "c1", "vip", ["10.0.0.100", "contrail.example"])
    assert pki.server(layout, "c1", "vip", ["10.0.0.100", "contrail.example"]) == one
    kept = layout.root / "secrets" / "tls-vip.pem"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600 and kept.read_text() == one.pem
    two = pki.server(layout, "c1", "vip", ["10.0.0.101"])
    assert two != one
    cert = x509.load_pem_x509_certificate(two.cert.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.101"]
    kept.write_text("garbage")  # an unreadable kept file is replaced, not trusted
    assert pki.server(layout, "c1", "vip", ["10.0.0.101"]) != two


def test_a_client_verifies_the_server_against_the_ca(layout: Layout, tmp_path: Path) -> None:
    pair = pki.server(layout, "c1", "vip", ["127.0.0.1"])
    pem = tmp_path / "server.pem"
    pem.write_text(pair.pem)
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(pem)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with srv_ctx.wrap_socket(conn, server_side=True) as s:
            s.sendall(b"ok")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ctx = ssl.create_default_context(cadata=pki.ca(layout, "c1").cert)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        assert s.recv(2) == b"ok"
    t.join(5)
    listener.close()
    other = Layout(tmp_path / "other", cache=tmp_path / "cache")  # another cluster's CA does not verify it
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    t = threading.Thread(target=lambda: _accept_and_fail(listener, srv_ctx), daemon=True)
    t.start()
    ctx = ssl.create_default_context(cadata=pki.ca(other, "c2").cert)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    t.join(5)
    listener.close()


def _accept_and_fail(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    conn, _ = listener.accept()
    try:
        ctx.wrap_socket(conn, server_side=True).close()
    except (ssl.SSLError, OSError):
        conn.close()


def test_the_sites_own_certificate_is_served_and_checked(tmp_path: Path) -> None:
    """tls.cert/tls.key: HAProxy gets the site's chain and key; a wrong pair or a missing file is an
    error naming its key, reported by validation before anything is rendered."""
    from contrail_ha.rendering import haproxy
    from contrail_ha.topology.plan import HAPROXY
    from contrail_ha.topology.validate import parse
    from tests.helpers.topo import loopback_plan

    site = pki.server(Layout(tmp_path / "site"), "site", "vip", ["api.example"])
    other = pki.server(Layout(tmp_path / "site"), "site", "other", ["x.example"])
    cert, key, wrong = tmp_path / "vip.crt", tmp_path / "vip.key", tmp_path / "other.key"
    cert.write_text(site.cert)
    key.write_text(site.key)
    wrong.write_text(other.key)
    plan = loopback_plan("127.0.41", 1, tls={"vip": True, "cert": str(cert), "key": str(key)})
    layout = Layout(Path(tempfile.mkdtemp(prefix="pki-", dir="/tmp")))  # short: HAProxy's socket path
    r = haproxy.render(plan, plan.of(HAPROXY)[0], layout)
    pem = haproxy.vip_pem(layout, "lb1")
    assert r.files[pem] == site.cert + site.key and r.modes[pem] == 0o600
    cfg = r.files[haproxy.config_path(layout, "lb1")]
    assert f"    bind 127.0.41.200:8082 ssl crt {pem} alpn http/1.1" in cfg.splitlines()
    assert f"    bind 127.0.41.200:8081 ssl crt {pem} alpn http/1.1" in cfg.splitlines()
    assert not (layout.root / "secrets" / pki.CA_KEY).exists()  # no CA made when the site brings its own

    base = {"cluster": {"id": "c1", "vip": "10.9.0.100", "network": "10.0.0.0/24"},
            "hosts": [{"name": f"h{i}", "ip": f"10.0.0.{i}", "roles": ["lb", "controller", "analytics", "analyticsdb"]}
                      for i in (2, 3, 4)]}
    assert parse({**base, "tls": {"vip": True, "cert": str(cert), "key": str(key)}}).ok
    for tls, where, says in (({"cert": str(cert)}, "tls.key", "both"),
                             ({"cert": str(cert), "key": str(wrong)}, "tls.key", "not the key"),
                             ({"cert": str(tmp_path / "none.crt"), "key": str(key)}, "tls.cert", "cannot read"),
                             ({"cert": str(key), "key": str(key)}, "tls.cert", "no PEM certificate"),
                             ({"vip": "maybe"}, "tls.vip", "")):
        report = parse({**base, "tls": tls})
        assert not report.ok and [p.path for p in report.errors] == [where], (tls, report.problems)
        assert says in report.errors[0].message
    shutil.rmtree(layout.root, ignore_errors=True)


def test_clients_address_and_verify_the_vip_as_configured(tmp_path: Path) -> None:
    from tests.helpers.topo import loopback_plan

    layout = Layout(tmp_path / "root")
    plain = loopback_plan("127.0.42", 1, tls={"vip": False})
    assert (plain.config_api_url, plain.analytics_api_url) == ("http://127.0.42.200:8082", "http://127.0.42.200:8081")
    tls = loopback_plan("127.0.42", 1)  # on by default
    assert (tls.config_api_url, tls.analytics_api_url) == ("https://127.0.42.200:8082", "https://127.0.42.200:8081")
    assert pki.vip_ca(tls, layout) == str(layout.root / "secrets" / pki.CA_CERT)
    assert pki.vip_context(tls, layout).verify_mode.name == "CERT_REQUIRED"
    site = loopback_plan("127.0.42", 1, tls={"vip": True, "cert": "/site/vip.crt", "key": "/site/vip.key"})
    assert pki.vip_ca(site, layout) is None  # the system's trust store
    assert pki.vip_ca(loopback_plan("127.0.42", 1, tls={"vip": True, "cert": "/c", "key": "/k", "ca": "/ca"}),
                      layout) == "/ca"


def test_an_exported_vip_certificate_is_signed_by_the_ca_the_operator_keeps(tmp_path: Path) -> None:
    """export/deploy render with the containers' root but keep secrets where the operator's machine
    does: the VIP's certificate in the lbs' files must verify with that CA (what `status` and the
    drills of a deployed cluster trust), and nothing is written under the containers' root."""
    from contrail_ha import export as ex
    from contrail_ha.topology.validate import load_topology

    plan = load_topology(Path(__file__).resolve().parents[2] / "examples" / "ha.yaml").plan()
    kept, root = tmp_path / "kept", Path(tempfile.mkdtemp(prefix="x-", dir="/tmp")) / "r"  # short: HAProxy's socket
    units = ex.units(plan, kept, root)
    pems = [text for u in units for rel, text in u.files.items() if rel.endswith("vip.pem")]
    assert len(pems) == 2  # one per lb
    ca = pki.vip_ca(plan, Layout(kept))
    assert ca == str(kept / "secrets" / pki.CA_CERT)
    ca_cert = x509.load_pem_x509_certificate(Path(ca).read_bytes())
    for pem in pems:
        x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(ca_cert)
    assert not root.exists()
    shutil.rmtree(root.parent, ignore_errors=True)


def test_a_secret_made_by_two_processes_at_once_is_one_value(tmp_path: Path) -> None:
    """Renderers in parallel processes (the runtime renders hosts concurrently) may make the same
    secret at the same moment: both get the one value that was kept, neither an error."""
    import multiprocessing

    root = tmp_path / "root"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        values = pool.map(_make_secret, [str(root)] * 32)
    assert len(set(values)) == 1 and Layout(root).secret("race") == values[0]
    assert [p.name for p in (root / "secrets").iterdir()] == ["race"]  # no temporary file left


def _make_secret(root: str) -> str:
    return Layout(Path(root)).secret("race")
