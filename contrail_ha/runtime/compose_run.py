"""The local container runtime runs each host's Compose project: the file ``export compose``
writes for that host, plus an override of what differs on this machine (Compose's own
``-f base -f override`` merge), through Podman's Docker-compatible API (``podman system
service``) with Debian's ``docker-compose``.

What the override changes, and why:

- ``network_mode``: the host's network namespace instead of the machine's network;
- ``volumes``: the cluster's state root at its own path (every host's tree is under it);
- ``pid: host``: the supervisor's pids mean the same inside and out, so ``status``, ``down`` and
  every drill fault (kill -9, SIGSTOP, a held process) work on containers as on processes;
- ``CONTRAIL_HA_ORCHESTRATED``: the supervisor keeps the container contract (its output in the
  container's log, a crash loop fails the container) but starts the processes the orchestrator
  enables, in its readiness-driven waves;
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from contrail_ha.errors import ContrailHaError
from contrail_ha.image.engine import Engine
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import containers, netns
from contrail_ha.runtime.supervisor import ORCHESTRATED_ENV
from contrail_ha.runtime.supervisor_state import GroupSpec
from contrail_ha.topology.plan import Plan

COMPOSE = "docker-compose"
BASE_FILE, LOCAL_FILE = "docker-compose.yaml", "docker-compose.local.yaml"
SERVICE_START_TIMEOUT_S = 30.0
_ENSURING = threading.Lock()


class ComposeError(ContrailHaError, RuntimeError):
    """docker-compose or Podman's API service failed; the message carries their output."""


# --- Podman's Docker-compatible API ---------------------------------------------------------------
class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


class ApiService:
    """``podman system service`` on a socket of the engine's directory, started when Compose needs
    it and stopped by PID (no systemd here); containers do not depend on it once started."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.socket = engine.conf_dir / "podman.sock"
        self.pid_file = engine.conf_dir / "podman-service.pid"
        self.log = engine.conf_dir / "podman-service.log"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def answers(self) -> bool:
        try:
            c = _UnixHTTP(str(self.socket))
            c.request("GET", "/_ping")
            return c.getresponse().status == 200
        except OSError:
            return False

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def ensure(self) -> None:
        """The service running and answering (started if not). Serialised across threads and processes:
        hosts' containers are started in parallel, and each caller finding none running would start its
        own, leaving all but the last running with no owner."""
        import fcntl

        self.engine.conf_dir.mkdir(parents=True, exist_ok=True)
        with _ENSURING, open(self.engine.conf_dir / "podman-service.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._ensure()

    def _ensure(self) -> None:
        if self.pid():
            # a running service slow to answer (a loaded machine) is waited for, not doubled: a second
            # one would take the socket and the pid file, leaving the first running with no owner
            deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
            while time.monotonic() < deadline:
                if self.answers():
                    return
                time.sleep(0.5)
            self.stop()  # alive but deaf for the whole wait: replaced
        self.socket.unlink(missing_ok=True)
        env = {**os.environ, "CONTAINERS_CONF": str(self.engine.conf)}
        self.engine.run("version", "--format", "{{.Client.Version}}", timeout=60)  # renders the configuration
        with open(self.log, "ab") as out:
            p = subprocess.Popen(["podman", "system", "service", "--time=0", self.docker_host], env=env,
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd="/")
        self.pid_file.write_text(f"{p.pid}\n")
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while not self.answers():
            if p.poll() is not None or time.monotonic() > deadline:
                raise ComposeError(f"podman system service did not answer on {self.socket}; see {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self.pid() and time.monotonic() < deadline:
            try:  # our own child when this process started it: reap it
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if self.pid():
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)


# --- the per-host projects ------------------------------------------------------------------------
def project_dir(layout: Layout, host: str) -> Path:
    return layout.root / "compose" / host


def local_override(plan: Plan, layout: Layout, host: str, roles: list[str], orchestrated: bool = True
                   ) -> dict[str, Any]:
    """What differs on this machine (see the module's docstring), for each of ``host``'s services;
    ``orchestrated=False`` leaves the supervisors to start their processes, as the exported files do."""
    ns = netns.ns_name(plan, host)
    return {"services": {containers.CONTAINER_NAMES[role]: {
        "network_mode": f"ns:/run/netns/{ns}",
        "pid": "host",
        "volumes": [f"{layout.root}:{layout.root}"],
        "environment": {**({ORCHESTRATED_ENV: "1"} if orchestrated else {}), "TINI_SUBREAPER": "1"},
    } for role in roles}}


def write_project(plan: Plan, layout: Layout, host: str, specs: list[GroupSpec], image: str,
                  orchestrated: bool = True) -> Path:
    """``host``'s project: the file ``export compose`` writes (same functions), its ``.env``, the override."""
    d = project_dir(layout, host)
    doc = containers.compose_project(plan, host, specs, layout.root, image)
    containers.write_compose_project(d, host, doc)
    (d / LOCAL_FILE).write_text("# contrail-ha: this machine's differences from the exported file (see "
                                "contrail_ha/runtime/compose_run.py)\n"
                                + yaml.safe_dump(local_override(plan, layout, host, [s.role for s in specs],
                                                                orchestrated), sort_keys=False))
    return d


def compose(api: ApiService, d: Path, *args: str, timeout: float = 300) -> str:
    """``docker-compose -f base -f override ARGS`` in project directory ``d``; its output."""
    env = {**os.environ, "DOCKER_HOST": api.docker_host, "COMPOSE_HTTP_TIMEOUT": str(int(timeout))}
    try:
        p = subprocess.run([COMPOSE, "-f", str(d / BASE_FILE), "-f", str(d / LOCAL_FILE), *args], cwd=d, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise ComposeError(f"{COMPOSE} is not installed: run scripts/install.sh") from e
    except subprocess.TimeoutExpired as e:
        raise ComposeError(f"{COMPOSE} {' '.join(args)} in {d}: no answer within {timeout:.0f} s") from e
    if p.returncode != 0:
        raise ComposeError(f"{COMPOSE} {' '.join(args)} in {d} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p.stdout + p.stderr


def up(engine: Engine, layout: Layout, host: str, role: str) -> None:
    """Start (or leave running, or recreate when its definition changed) one role's container."""
    api = ApiService(engine)
    api.ensure()
    compose(api, project_dir(layout, host), "up", "-d", "--no-deps", containers.CONTAINER_NAMES[role])
