"""A role supervisor's health: every process it should run runs, and answers its own probe.

This is the container's health check (``python -m contrail_ha.runtime.health SPEC.json``, exit 0
when healthy, else 1 and one line per problem; ``--alive``: only that the supervisor runs, the
liveness check), so it stays light: the standard library only, a
few short connections. Each process declares its probe in its spec (``ProcessSpec.health``), where
its renderer knows its address:

- ``tcp://IP:PORT``: the port accepts a connection (Cassandra's CQL, RabbitMQ's AMQP and Kafka's
  listeners open only once the server has started);
- ``zk://IP:PORT``: ZooKeeper serves (``srvr`` names a mode; without a quorum it does not);
- ``http://IP:PORT/PATH``: the answer is 200 (our services' ``/health``);
- ``unix:///PATH``: the control socket accepts a connection (HAProxy's stats, BIRD's control).

A process the orchestrator has not enabled yet is not counted; a held one (a drill's fault) is.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from contrail_ha.runtime import pids
from contrail_ha.runtime.supervisor_state import GroupSpec, SupervisorDir

TIMEOUT = 3.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a probe never goes through a proxy


def _tcp(host: str, port: int, send: bytes | None = None) -> bytes:
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        if send is None:
            return b""
        s.sendall(send)
        chunks = []
        while b := s.recv(4096):
            chunks.append(b)
        return b"".join(chunks)


def probe(url: str) -> str | None:
    """None when the probe passes, else what failed."""
    u = urlsplit(url)
    try:
        if u.scheme == "tcp":
            _tcp(u.hostname or "", u.port or 0)
        elif u.scheme == "zk":
            answer = _tcp(u.hostname or "", u.port or 0, b"srvr").decode(errors="replace")
            if "Mode: " not in answer:
                return f"{url}: not serving ({answer.strip()[:80] or 'no answer'})"
        elif u.scheme == "http":
            with _DIRECT.open(url, timeout=TIMEOUT) as r:
                if r.status != 200:
                    return f"{url}: {r.status}"
        elif u.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(TIMEOUT)
                s.connect(u.path)
        else:
            return f"{url}: unknown probe"
    except urllib.error.HTTPError as e:
        return f"{url}: {e.code}"
    except (OSError, ValueError) as e:
        return f"{url}: {e.__class__.__name__}: {e}"
    return None


def _alive(pid: object) -> bool:
    """A pid as ``state.json`` holds it (an int, or null) that names a live process."""
    return isinstance(pid, int) and pid > 0 and pids.alive(pid)


def _supervisor(spec: GroupSpec) -> tuple[dict, list[str]]:
    """The supervisor's state, and what is wrong with the supervisor itself (no state, not running)."""
    state = SupervisorDir(Path(spec.run_dir)).state()
    if state is None:
        return {}, ["supervisor: no state yet"]
    if not _alive(state.get("supervisor_pid")):
        return state, [f"supervisor: pid {state.get('supervisor_pid')} not running"]
    return state, []


def problems(spec: GroupSpec) -> list[str]:
    """Why the group is not healthy; empty when it is."""
    state, dead = _supervisor(spec)
    if dead:
        return dead
    procs = state.get("processes") or {}
    out: list[str] = []
    for p in spec.processes:
        st = procs.get(p.name) or {}
        if st.get("state") == "disabled":
            continue
        if st.get("state") != "running" or not _alive(st.get("pid")):
            out.append(f"{p.name}: {st.get('state', 'unknown')}")
        elif p.health and (why := probe(p.health)):
            out.append(f"{p.name}: {why}")
    return out


def liveness_problems(spec: GroupSpec) -> list[str]:
    """What only a restart of the container fixes: its supervisor gone. Its processes' readiness is
    the readiness check's: a store that waits for its peers, or a replica whose database is away, is
    not ready, and restarting it would only make the wait longer (the supervisor itself exits when a
    process crash-loops)."""
    return _supervisor(spec)[1]


def supervised_specs(proc: Path = Path("/proc")) -> list[str]:
    """The spec files of the role supervisors running in this PID namespace (read from their command
    lines): in a container of its own, the one the image's ``HEALTHCHECK`` checks without arguments."""
    found: list[str] = []
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            argv = [a.decode(errors="replace") for a in cmdline.read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if "contrail_ha.runtime.supervisor" in argv and argv[-1].endswith(".json"):
            found.append(argv[-1])
    return sorted(set(found))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    alive_only = "--alive" in args  # the liveness check (Kubernetes' livenessProbe)
    args = [a for a in args if a != "--alive"]
    if not args:
        args = supervised_specs()
        if len(args) != 1:
            sys.stdout.write(f"no single role supervisor to check here ({len(args)} found): name its SPEC.json\n")
            return 1
    if len(args) != 1:
        sys.stderr.write("usage: python -m contrail_ha.runtime.health [--alive] [SPEC.json]\n")
        return 2
    try:
        spec = GroupSpec.from_json(Path(args[0]).read_text())
    except (OSError, ValueError, TypeError) as e:
        sys.stdout.write(f"spec {args[0]}: {e}\n")
        return 1
    found = liveness_problems(spec) if alive_only else problems(spec)
    sys.stdout.write(json.dumps({"healthy": not found, "problems": found}) + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
