"""A real HAProxy on loopback (VIP 127.0.40.200) in front of tiny HTTP backends on 127.0.40.x.

Checks that the rendered configuration really does what it claims: /health 503 marks a server
DOWN, idempotent requests and creates are retried past a 503 while other POSTs are not, every
request carries a unique id the client cannot forge, and clients see no error while a backend is
killed.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from contrail_ha.probes import haproxy as probe
from contrail_ha.rendering import haproxy
from contrail_ha.rendering.base import Layout, ProcessSpec
from contrail_ha.topology.plan import ANALYTICS_API, CONFIG_API, HAPROXY, Plan
from tests.helpers import proc
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PREFIX = "127.0.40"
VIP = f"{PREFIX}.200"
PORTS = {"config_api": 40082, "analytics_api": 40081, "haproxy_stats": 40937}

# A backend: GET /health answers <health>; every other request answers <status> with its name.
BACKEND = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ip, port, health, status, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


class Handler(BaseHTTPRequestHandler):
    def _reply(self, code):
        body = (name + "\n" + self.headers.get("X-Contrail-HA-Request", "") + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(health if self.path == "/health" else status)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(status)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((ip, port), Handler).serve_forever()
"""

# host -> (/health status, status of every other request)
BEHAVIOUR = {
    "n1": (200, 200),
    "n2": (503, 200),  # cannot serve writes: must go DOWN
    "n3": (200, 200),  # killed in test_killed_backend
    "n4": (200, 503),  # passes checks but answers 503: GETs are retried elsewhere, POSTs are not
    "a1": (200, 200),
}


def _plan(**overrides: object) -> Plan:
    hosts = [{"name": "lb1", "ip": f"{PREFIX}.100", "roles": ["lb"]}]
    hosts += [{"name": f"n{i}", "ip": f"{PREFIX}.{i}", "roles": ["controller"]} for i in range(1, 5)]
    hosts += [{"name": "a1", "ip": f"{PREFIX}.11", "roles": ["analytics"]}]
    return loopback_plan(PREFIX, ports=PORTS, hosts=hosts, **{"tls": {"vip": False}, **overrides})


@dataclass
class Cluster:
    plan: Plan
    layout: Layout
    haproxy: subprocess.Popen[bytes]
    backends: dict[str, subprocess.Popen[bytes]]

    def states(self) -> dict[str, str]:
        """server name -> status, over both backends."""
        rows = probe.parse_stat(probe.command(haproxy.stats_socket(self.layout, "lb1"), "show stat"))
        out: dict[str, str] = {}
        for b in probe.backends(rows).values():
            out.update({name: s["status"] for name, s in b["servers"].items()})
        return out

    def server(self, host: str) -> str:
        comp = ANALYTICS_API if host.startswith("a") else CONFIG_API
        return next(haproxy.server_name(i) for i in self.plan.of(comp) if i.host.name == host)


def _listening(ip: str, port: int) -> bool:
    with socket.create_connection((ip, port), timeout=0.5):
        return True


def _request(method: str = "GET", port: int = PORTS["config_api"], path: str = "/virtual-networks",
             headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, name of the backend that answered)."""
    return _request_id(method, port, path, headers)[:2]


def _request_id(method: str = "GET", port: int = PORTS["config_api"], path: str = "/virtual-networks",
                headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, backend name, the request id the backend received)."""
    c = http.client.HTTPConnection(VIP, port, timeout=10)
    try:
        c.request(method, path, body=b"{}" if method == "POST" else None, headers=headers or {})
        r = c.getresponse()
        name, rid = (r.read().decode() + "\n").split("\n")[:2]
        return r.status, name.strip(), rid.strip()
    finally:
        c.close()


@contextmanager
def _running(plan: Plan) -> Iterator[Cluster]:
    """Every backend of ``plan`` and lb1's HAProxy, rendered and checked by ``haproxy -c``."""
    root = Path(tempfile.mkdtemp(prefix="c40-hap-", dir="/tmp"))
    layout = Layout(root)
    logdir = root / "logs"
    backends: dict[str, tuple[subprocess.Popen[bytes], ProcessSpec]] = {}
    try:
        for inst in [*plan.of(CONFIG_API), *plan.of(ANALYTICS_API)]:
            health, status = BEHAVIOUR[inst.host.name]
            spec = ProcessSpec(inst.host.name, [sys.executable, "-c", BACKEND, inst.ip, str(inst.port),
                                                str(health), str(status), inst.host.name])
            backends[inst.host.name] = (proc.start(spec, logdir / f"{inst.host.name}.log"), spec)
        for inst in [*plan.of(CONFIG_API), *plan.of(ANALYTICS_API)]:
            proc.wait_for(lambda i=inst: _listening(i.ip, i.port), 15, f"backend {inst.address}")
        r = haproxy.render(plan, plan.instance(HAPROXY, "lb1"), layout)
        cfg = haproxy.config_path(layout, "lb1")
        proc.write_files(r)
        ok, out = haproxy.check_config(cfg)
        assert ok, out
        with proc.running(r, logdir) as procs:
            inst = plan.instance(HAPROXY, "lb1")
            proc.wait_for(lambda: probe.ready(plan, layout, inst)[0], 15, "haproxy stats socket")
            yield Cluster(plan, layout, procs[0], {h: p for h, (p, _) in backends.items()})
    finally:
        for p, spec in backends.values():
            proc.stop(p, spec, timeout=5)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with _running(_plan()) as c:
        yield c


def _converged(c: Cluster) -> bool:
    s = c.states()
    want = {"n1": "UP", "n2": "DOWN", "n3": "UP", "n4": "UP", "a1": "UP"}
    return all(s.get(c.server(h)) == st for h, st in want.items())


def test_health_checks_mark_503_down(cluster: Cluster) -> None:
    proc.wait_for(lambda: _converged(cluster), 20, "health states")
    [check] = probe.checks(cluster.plan, cluster.layout)
    assert check.ok, check.detail
    assert check.target == "lb1" and check.component == "haproxy"
    api = check.data["backends"][haproxy.CONFIG_API_BACKEND]
    assert api["up"] == 3 and api["total"] == 4
    assert api["servers"][cluster.server("n2")]["status"] == "DOWN"
    assert api["servers"][cluster.server("n2")]["check_code"] == "503"
    assert check.data["backends"][haproxy.ANALYTICS_API_BACKEND]["up"] == 1
    assert check.data["frontends"] == {haproxy.CONFIG_API_FRONTEND: "OPEN",
                                       haproxy.ANALYTICS_API_FRONTEND: "OPEN", haproxy.STATS_PROXY: "OPEN"}
    # the analytics frontend serves too
    assert _request(port=PORTS["analytics_api"]) == (200, "a1")


def test_all_servers_down_is_reported(cluster: Cluster) -> None:
    proc.wait_for(lambda: _converged(cluster), 20, "health states")
    os.kill(cluster.backends["a1"].pid, signal.SIGKILL)
    proc.wait_for(lambda: cluster.states()[cluster.server("a1")] == "DOWN", 10, "a1 DOWN")
    [check] = probe.checks(cluster.plan, cluster.layout)
    assert not check.ok
    assert haproxy.ANALYTICS_API_BACKEND in check.detail


def test_idempotent_requests_and_creates_retried_past_503_other_posts_not(cluster: Cluster) -> None:
    proc.wait_for(lambda: _converged(cluster), 20, "health states")
    gets = [_request("GET") for _ in range(12)]
    assert all(code == 200 for code, _ in gets), gets
    assert {name for _, name in gets} == {"n1", "n3"}
    creates = [_request("POST") for _ in range(9)]  # POST /virtual-networks: idempotent through the request id
    assert all(code == 200 for code, _ in creates), creates
    actions = [_request("POST", path="/virtual-network/x/ip-alloc") for _ in range(9)]
    assert {code for code, _ in actions} == {200, 503}, actions
    assert all(name == "n4" for code, name in actions if code == 503)


def test_every_request_gets_a_unique_unforgeable_id(cluster: Cluster) -> None:
    proc.wait_for(lambda: _converged(cluster), 20, "health states")
    ids = [_request_id("GET", headers={"X-Contrail-HA-Request": "forged"})[2] for _ in range(20)]
    assert "forged" not in ids and all(ids)
    assert len(set(ids)) == 20
    assert all(i.startswith(socket.gethostname() + "_") or "_127.0.40." in i for i in ids), ids[:3]


def test_killed_backend_is_invisible_to_clients(cluster: Cluster) -> None:
    proc.wait_for(lambda: _converged(cluster), 20, "health states")
    results: list[tuple[int, str]] = []
    errors: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                results.append(_request("GET"))
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
            time.sleep(0.01)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        proc.wait_for(lambda: len(results) >= 20, 10, "traffic before the kill")
        os.kill(cluster.backends["n3"].pid, signal.SIGKILL)
        t0 = time.monotonic()
        proc.wait_for(lambda: cluster.states()[cluster.server("n3")] == "DOWN", 10, "n3 DOWN")
        down_after = time.monotonic() - t0
        n = len(results)
        proc.wait_for(lambda: len(results) >= n + 20, 10, "traffic after n3 DOWN")
    finally:
        stop.set()
        t.join(15)
    assert not errors, errors[:5]
    bad = [r for r in results if r[0] != 200]
    assert not bad, bad[:5]
    assert down_after < 5, f"n3 marked DOWN only after {down_after:.1f}s"
    # the requests that hit the dead server were retried elsewhere, not failed
    [check] = probe.checks(cluster.plan, cluster.layout)
    n3 = check.data["backends"][haproxy.CONFIG_API_BACKEND]["servers"][cluster.server("n3")]
    assert int(n3["wretr"] or 0) + int(n3["wredis"] or 0) > 0, n3


def test_sigusr1_soft_stop(cluster: Cluster) -> None:
    spec = haproxy.render(cluster.plan, cluster.plan.instance(HAPROXY, "lb1"), cluster.layout).processes[0]
    assert spec.stop_signal == signal.SIGUSR1
    os.killpg(cluster.haproxy.pid, spec.stop_signal)
    t0 = time.monotonic()
    cluster.haproxy.wait(10)
    assert time.monotonic() - t0 < 5
    ok, _ = probe.ready(cluster.plan, cluster.layout, cluster.plan.instance(HAPROXY, "lb1"))
    assert not ok
    [check] = probe.checks(cluster.plan, cluster.layout)
    assert not check.ok and "stats socket" in check.detail


def test_scale_in_drains_a_departing_replica_before_it_stops(cluster: Cluster) -> None:
    """rollout.drain puts a replica the new plan drops in maintenance, so stopping it is invisible."""
    from contrail_ha.runtime import rollout

    proc.wait_for(lambda: _converged(cluster), 20, "health states")
    hosts = [{"name": "lb1", "ip": f"{PREFIX}.100", "roles": ["lb"]}]
    hosts += [{"name": f"n{i}", "ip": f"{PREFIX}.{i}", "roles": ["controller"]} for i in (1, 2, 4)]
    hosts += [{"name": "a1", "ip": f"{PREFIX}.11", "roles": ["analytics"]}]
    smaller = loopback_plan(PREFIX, ports=PORTS, hosts=hosts)
    n3 = cluster.server("n3")
    assert rollout.departing(smaller, cluster.layout, "lb1") == [(haproxy.CONFIG_API_BACKEND, n3)]
    assert rollout.departing(cluster.plan, cluster.layout, "lb1") == []
    said: list[str] = []
    assert rollout.drain(smaller, cluster.layout, said.append) == [f"lb1:{haproxy.CONFIG_API_BACKEND}/{n3}"]
    assert cluster.states()[n3] == "MAINT" and said[-1] == "drained", said
    os.kill(cluster.backends["n3"].pid, signal.SIGKILL)
    answers = [_request("GET") for _ in range(30)]
    assert all(code == 200 for code, _ in answers), answers
    assert "n3" not in {name for _, name in answers}
    [check] = probe.checks(cluster.plan, cluster.layout)
    dead = check.data["backends"][haproxy.CONFIG_API_BACKEND]["servers"][n3]
    assert int(dead["wretr"] or 0) + int(dead["wredis"] or 0) == 0, dead  # nothing was even tried on it
    assert rollout.drain(smaller, cluster.layout, said.append) == [f"lb1:{haproxy.CONFIG_API_BACKEND}/{n3}"]


def test_the_vip_speaks_tls_only_with_the_cluster_cas_certificate() -> None:
    """Issue 13: with tls.vip both API ports terminate TLS (the cluster CA's certificate for the VIP's
    address and its names); a client trusting the CA gets answers, a plain-HTTP client and one
    trusting another CA get none; the replicas behind still see plain HTTP with the request id."""
    import ssl
    import warnings

    from contrail_ha.rendering import pki

    with _running(_plan(tls={"vip": True, "names": ["contrail.example"]})) as c:
        proc.wait_for(lambda: _converged(c), 20, "health states")
        ca = pki.ca(c.layout, c.plan.cluster_id).cert
        ctx = ssl.create_default_context(cadata=ca)
        for port in (PORTS["config_api"], PORTS["analytics_api"]):
            https = http.client.HTTPSConnection(VIP, port, timeout=10, context=ctx)
            try:
                https.request("GET", "/virtual-networks", headers={"X-Contrail-HA-Request": "forged"})
                r = https.getresponse()
                name, rid = (r.read().decode() + "\n").split("\n")[:2]
                assert r.status == 200 and name in {"n1", "n3", "a1"} and rid and rid != "forged"
                cert = https.sock.getpeercert()
                assert cert is not None and ("IP Address", VIP) in cert["subjectAltName"]
                assert ("DNS", "contrail.example") in cert["subjectAltName"]
                assert https.sock.version() in {"TLSv1.2", "TLSv1.3"}
            finally:
                https.close()
            with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
                _request(port=port)  # plain HTTP: the handshake fails, nothing is answered
        stranger = ssl.create_default_context(cadata=pki.ca(Layout(c.layout.root / "other"), "x").cert)
        https = http.client.HTTPSConnection(VIP, PORTS["config_api"], timeout=10, context=stranger)
        with pytest.raises(ssl.SSLCertVerificationError):
            https.request("GET", "/virtual-networks")
        https.close()
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cadata=ca)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        https = http.client.HTTPSConnection(VIP, PORTS["config_api"], timeout=10, context=old)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https.request("GET", "/virtual-networks")  # nothing older than TLS 1.2
        https.close()
