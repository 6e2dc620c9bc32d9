"""The container health check (contrail_ha.runtime.health) on real sockets of this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from contrail_ha.rendering.base import ProcessSpec
from contrail_ha.runtime import health
from contrail_ha.runtime.supervisor_state import GroupSpec, SupervisorDir


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, int]]]:
    code = {"status": 200}

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(code["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/health", code
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def listener() -> Iterator[str]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield f"tcp://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def test_probes(http_server: tuple[str, dict[str, int]], listener: str, tmp_path: Path) -> None:
    url, code = http_server
    assert health.probe(url) is None
    code["status"] = 503
    assert "503" in (health.probe(url) or "")
    assert health.probe(listener) is None
    assert "ConnectionRefused" in (health.probe(f"tcp://127.0.0.1:{_closed_port()}") or "")
    sock = tmp_path / "ctl.sock"
    with socket.socket(socket.AF_UNIX) as u:
        u.bind(str(sock))
        u.listen()
        assert health.probe(f"unix://{sock}") is None
    assert health.probe(f"unix://{tmp_path}/none.sock") is not None
    assert "unknown probe" in (health.probe("ftp://x") or "")


def _group(tmp_path: Path, procs: dict[str, tuple[str, int | None, str]]) -> GroupSpec:
    """A group whose supervisor is this process; procs: name -> (state, pid, health URL)."""
    spec = GroupSpec(host="h1", role="controller", run_dir=str(tmp_path / "run"), log_dir=str(tmp_path / "logs"),
                     processes=[ProcessSpec(n, ["true"], health=url) for n, (_, _, url) in procs.items()])
    d = SupervisorDir(Path(spec.run_dir))
    d.path.mkdir(parents=True)
    d.write_state(json.dumps({"supervisor_pid": os.getpid(), "processes": {
        n: {"state": st, "pid": pid} for n, (st, pid, _) in procs.items()}}))
    (Path(spec.run_dir) / "spec.json").write_text(spec.to_json())
    return spec


def test_problems_counts_running_and_held_not_disabled(listener: str, tmp_path: Path) -> None:
    me = os.getpid()
    spec = _group(tmp_path, {"zk": ("running", me, listener), "api": ("disabled", None, "tcp://127.0.0.1:1"),
                             "agent": ("running", me, "")})
    assert health.problems(spec) == []
    spec = _group(tmp_path / "b", {"zk": ("running", me, f"tcp://127.0.0.1:{_closed_port()}"),
                                   "db": ("held", None, ""), "gone": ("running", 2**22 + 1, "")})
    found = health.problems(spec)
    assert [p.split(":")[0] for p in found] == ["zk", "db", "gone"], found
    assert found[1] == "db: held"


def test_command_exit_codes(listener: str, tmp_path: Path) -> None:
    spec = _group(tmp_path, {"zk": ("running", os.getpid(), listener)})
    ok = subprocess.run([sys.executable, "-m", "contrail_ha.runtime.health", str(Path(spec.run_dir) / "spec.json")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"healthy": True, "problems": []}
    bad = _group(tmp_path / "b", {"zk": ("running", os.getpid(), f"tcp://127.0.0.1:{_closed_port()}")})
    p = subprocess.run([sys.executable, "-m", "contrail_ha.runtime.health", str(Path(bad.run_dir) / "spec.json")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and not json.loads(p.stdout)["healthy"]
    assert health.main(["a.json", "b.json"]) == 2 and health.main([str(tmp_path / "missing.json")]) == 1
    (tmp_path / "dead").mkdir()
    assert "no state yet" in health.problems(GroupSpec("h", "r", str(tmp_path / "dead"), str(tmp_path), []))[0]


def test_alive_is_only_the_supervisor(tmp_path: Path) -> None:
    """Kubernetes' liveness: a process that waits or is down is readiness's business, not a restart's."""
    spec = _group(tmp_path, {"db": ("joining", None, ""), "zk": ("running", os.getpid(), "tcp://127.0.0.1:1")})
    path = str(Path(spec.run_dir) / "spec.json")
    assert health.problems(spec) and health.liveness_problems(spec) == []
    p = subprocess.run([sys.executable, "-m", "contrail_ha.runtime.health", "--alive", path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    SupervisorDir(Path(spec.run_dir)).write_state(json.dumps({"supervisor_pid": 2**22 + 1, "processes": {}}))
    assert health.liveness_problems(spec) == [f"supervisor: pid {2**22 + 1} not running"]
    assert health.main(["--alive", path]) == 1


def test_without_arguments_it_finds_the_supervisor_of_its_namespace(tmp_path: Path) -> None:
    """The image's HEALTHCHECK names no spec: it checks the one supervisor of its container."""
    spec = _group(tmp_path, {"agent": ("running", os.getpid(), "")})
    spec_file = str(Path(spec.run_dir) / "spec.json")
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "contrail_ha.runtime.supervisor",
                          spec_file])
    try:
        deadline = time.monotonic() + 20  # until the child has exec'd (before, its cmdline is pytest's)
        while spec_file not in health.supervised_specs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spec_file in health.supervised_specs()
    finally:
        p.kill()
        p.wait(10)
    assert spec_file not in health.supervised_specs()
    fake_proc = tmp_path / "proc"
    (fake_proc / "7").mkdir(parents=True)
    (fake_proc / "7" / "cmdline").write_bytes(b"python\0-m\0contrail_ha.runtime.supervisor\0--container\0/s.json\0")
    assert health.supervised_specs(fake_proc) == ["/s.json"]
