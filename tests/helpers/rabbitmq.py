"""A real RabbitMQ cluster on loopback addresses for integration tests (rendered with ``shared_netns``).

Several nodes share the root namespace here, so each gets its own epmd on its own port; the
first node forms the cluster and the others join it, as the runtime does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from contrail_ha.probes import rabbitmq as probe
from contrail_ha.rendering import rabbitmq as rmq
from contrail_ha.rendering.base import Layout, ProcessSpec
from contrail_ha.topology.plan import RABBITMQ, RABBITMQ_DIST_OFFSET, Instance, Plan
from tests.helpers import proc

READY_TIMEOUT = 150.0


def listening(ip: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``ip:port``."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def beam_pid(layout: Layout, inst: Instance) -> int:
    """The Erlang VM's PID (the process we start is the rabbitmq-server shell wrapper)."""
    return int(Path(rmq.paths(layout, inst)["pid"]).read_text().strip())


def log_tail(layout: Layout, inst: Instance, lines: int = 20) -> str:
    f = layout.host_dir(inst.host.name) / "logs" / "rabbitmq.log"
    try:
        return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_gone(pids: list[int]) -> None:
    """After the wrappers stopped, the VMs (children that could outlive them) must be gone too."""
    for pid in pids:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        try:
            if b"beam" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"beam {pid} survived its wrapper and was killed")
        except (FileNotFoundError, ProcessLookupError):
            pass


@dataclass
class Node:
    inst: Instance
    server_spec: ProcessSpec
    logdir: Path
    wrapper: subprocess.Popen[bytes] | None = None


@dataclass
class Cluster:
    """The nodes we started, with fault helpers that act by the PIDs we own."""

    plan: Plan
    layout: Layout
    nodes: list[Node] = field(default_factory=list)
    procs: list[tuple[subprocess.Popen[bytes], ProcessSpec | None]] = field(default_factory=list)
    beams: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def inst(self, i: int) -> Instance:
        return self.nodes[i].inst

    def address(self, i: int) -> str:
        return self.nodes[i].inst.address

    def index(self, address: str | None) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.inst.address == address)

    def servers(self, *order: int) -> list[str]:
        return [self.address(i) for i in order]

    def start(self, i: int) -> None:
        n = self.nodes[i]
        n.wrapper = proc.start(n.server_spec, n.logdir / f"{n.server_spec.name}.log")
        self.procs.append((n.wrapper, n.server_spec))

    def beam(self, i: int) -> int:
        """The Erlang VM of node ``i``: from its pid file, checked to be in the session we started."""
        n = self.nodes[i]
        assert n.wrapper is not None
        pid = beam_pid(self.layout, n.inst)
        assert os.getsid(pid) == n.wrapper.pid, f"pid {pid} is not a process we started"
        assert b"beam" in Path(f"/proc/{pid}/cmdline").read_bytes()
        if pid not in self.beams:
            self.beams.append(pid)
        return pid

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``'s VM (by PID); its wrapper then exits."""
        n = self.nodes[i]
        assert n.wrapper is not None
        os.kill(self.beam(i), signal.SIGKILL)
        n.wrapper.wait(30)

    def signal(self, i: int, sig: int) -> None:
        """SIGSTOP / SIGCONT node ``i``'s VM (by PID)."""
        os.kill(self.beam(i), sig)

    def wait_ready(self, idx: list[int]) -> None:
        last: dict[int, str] = {}

        def ready() -> bool:
            for i in idx:
                if last.get(i) != "running":
                    ok, detail = probe.ready(self.plan, self.layout, self.nodes[i].inst)
                    last[i] = "running" if ok else detail
            return all(last.get(i) == "running" for i in idx)

        try:
            proc.wait_for(ready, READY_TIMEOUT, "rabbitmq", interval=0.2)
        except TimeoutError as e:
            tails = "\n".join(f"--- n{i + 1}: {last.get(i)}\n{log_tail(self.layout, self.inst(i))}" for i in idx)
            raise AssertionError(f"{e}\n{tails}") from e

    def wait_cluster(self) -> None:
        """Every node running, in every node's view, no partitions."""
        proc.wait_for(lambda: all(c.ok for c in probe.checks(self.plan, self.layout)), READY_TIMEOUT,
                      "rabbitmq cluster", interval=0.5)

    def restart(self, i: int) -> None:
        t = time.monotonic()
        self.start(i)
        self.wait_ready([i])
        self.wait_cluster()
        self.timings[f"restart n{i + 1} after kill -9"] = time.monotonic() - t


@contextmanager
def loopback_cluster(plan: Plan, layout: Layout, epmd_base: int, *, configure: bool) -> Iterator[Cluster]:
    """Start every RabbitMQ node of ``plan`` (first node, then the others); stop them all at exit."""
    c = Cluster(plan, layout)
    insts = plan.of(RABBITMQ)
    busy = [f"{i.ip}:{p}" for i in insts
            for p in (i.port, i.port + RABBITMQ_DIST_OFFSET, epmd_base + i.index + 1) if listening(i.ip, p)]
    assert not busy, f"already in use: {busy}"
    with ExitStack() as stack:
        stack.callback(ensure_gone, c.beams)  # runs last

        def stop_all() -> None:
            for p, spec in reversed(c.procs):
                proc.stop(p, spec)

        stack.callback(stop_all)
        t0 = time.monotonic()
        for inst in insts:
            r = rmq.render(plan, inst, layout, epmd_port=epmd_base + inst.index + 1, shared_netns=True)
            proc.write_files(r)
            epmd, server = r.processes
            logdir = layout.host_dir(inst.host.name) / "logs"
            c.procs.append((proc.start(epmd, logdir / "epmd.log"), epmd))
            c.nodes.append(Node(inst, server, logdir))
        c.start(0)  # the first node forms the cluster, the others join it
        c.wait_ready([0])
        c.timings["first node ready"] = time.monotonic() - t0
        t1 = time.monotonic()
        for i in range(1, len(insts)):
            c.start(i)
        c.wait_ready(list(range(1, len(insts))))
        c.timings["other nodes joined"] = time.monotonic() - t1
        c.wait_cluster()
        if configure:
            assert probe.configure(plan, layout) in ("set", "unchanged")
        c.timings["fresh formation"] = time.monotonic() - t0
        for i in range(len(insts)):
            c.beam(i)
        yield c
