"""Faults injected for real: kill -9 a supervised process (held down until healed), pause one
(SIGSTOP until healed), skew its clock (libfaketime), pull a cable, partition a host, kill a whole
host (every process or container of it at once)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import network
from contrail_ha.runtime.record import deployed
from contrail_ha.runtime.supervisor_state import ROUTER, SupervisorDir
from contrail_ha.topology.plan import Plan, group_of_process

ROUTER_ROLE = "router"


def _dir(plan: Plan, layout: Layout, host: str, proc: str) -> SupervisorDir:
    """The supervisor of the role that owns ``proc`` on ``host``."""
    return SupervisorDir.of(layout, host, ROUTER_ROLE if host == ROUTER else group_of_process(proc))


def process_state(plan: Plan, layout: Layout, host: str, proc: str) -> dict[str, Any]:
    if deployed(layout):  # its processes are reached through their containers there
        from contrail_ha.operations import faults_remote

        return faults_remote.process_state(plan, layout, host, proc)
    return _dir(plan, layout, host, proc).process(proc)


def kill_in(sd: SupervisorDir, proc: str, hold: bool = True) -> list[int]:
    """kill -9 ``proc`` of supervisor ``sd`` (and the server behind its wrapper); with ``hold`` the
    supervisor leaves it down until :meth:`SupervisorDir.release`."""
    if hold:
        sd.hold(proc)
    st = sd.process(proc)
    pids = [p for p in (st.get("server_pid"), st.get("pid")) if p]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def kill(plan: Plan, layout: Layout, host: str, proc: str, hold: bool = True) -> list[int]:
    """kill -9 ``proc`` on ``host`` (and the server behind its wrapper). With ``hold`` it stays down."""
    if deployed(layout):  # its processes are reached through their containers there
        from contrail_ha.operations import faults_remote

        return faults_remote.kill(plan, layout, host, proc, hold)
    return kill_in(_dir(plan, layout, host, proc), proc, hold)


def kill_host(plan: Plan, layout: Layout, host: str) -> int:
    """kill -9 everything of ``host`` at once, as if it lost power: every process in its network
    namespace - its role supervisors (on containers, each container's main process: the engine
    sees them exit 137) and every component. Returns how many processes (deployed: containers)
    were killed."""
    if deployed(layout):
        from contrail_ha.operations import faults_remote

        return faults_remote.kill_host(plan, layout, host)
    ns = network.ns_name(plan, host)
    killed: set[int] = set()
    for _ in range(3):  # a supervisor may start a child between the listing and its own death
        pids = [p for p in network.pids_in(ns) if p not in (os.getpid(), os.getppid())]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        if not pids:
            break
        time.sleep(0.2)
    return len(killed)


def recover_host(plan: Plan, layout: Layout, host: str) -> None:
    """What an operator does after a host came back: ``contrail-ha up`` (idempotent), which starts
    whatever the engine has not restarted and waits for every component to be ready again
    (deployed: the host's Compose project up again, over SSH)."""
    if deployed(layout):
        from contrail_ha.operations import faults_remote

        faults_remote.recover_host(plan, layout, host)
        return
    from contrail_ha.runtime import cluster

    cluster.up(plan, layout, progress=lambda _m: None)


def pause(plan: Plan, layout: Layout, host: str, proc: str) -> list[int]:
    """SIGSTOP ``proc`` on ``host`` (and the server behind its wrapper): a long GC stall, a frozen
    VM or a throttled cgroup. Its sockets stay open and nothing answers. Recorded for the heal."""
    st = process_state(plan, layout, host, proc)
    pids = [p for p in (st.get("server_pid"), st.get("pid")) if p]
    if not pids:
        raise RuntimeError(f"{proc} on {host} is not running: nothing to pause")
    _dir(plan, layout, host, proc).record_paused(proc, pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    return pids


def resume(plan: Plan, layout: Layout, host: str, proc: str) -> None:
    """SIGCONT what :func:`pause` stopped."""
    sd = _dir(plan, layout, host, proc)
    _cont(sd.paused_pids(proc))
    sd.forget_paused(proc)


def _cont(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"  # Debian's libfaketime (threads)


def skew(plan: Plan, layout: Layout, host: str, proc: str, seconds: float) -> None:
    """Restart ``proc`` with its clock ``seconds`` off (libfaketime: wall and monotonic clocks alike,
    as a host whose time source is wrong). Undone by :func:`unskew`."""
    if not os.path.exists(FAKETIME_LIB):
        raise RuntimeError(f"{FAKETIME_LIB} is missing: install Debian's libfaketime (scripts/install.sh does)")
    _dir(plan, layout, host, proc).set_fault_env(proc, {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": f"{seconds:+.0f}s"})
    kill(plan, layout, host, proc, hold=False)


def unskew(plan: Plan, layout: Layout, host: str, proc: str) -> None:
    """Restart ``proc`` with the true clock."""
    sd = _dir(plan, layout, host, proc)
    if sd.fault_env(proc):
        sd.clear_fault_env(proc)
        kill(plan, layout, host, proc, hold=False)


def heal(plan: Plan, layout: Layout, host: str, proc: str) -> None:
    """Let the supervisor restart a held process."""
    if deployed(layout):  # its processes are reached through their containers there
        from contrail_ha.operations import faults_remote

        faults_remote.heal(plan, layout, host, proc)
        return
    _dir(plan, layout, host, proc).release(proc)


def wait_running(plan: Plan, layout: Layout, host: str, proc: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = process_state(plan, layout, host, proc)
        if st["state"] == "running" and st["pid"]:
            return int(st["pid"])
        time.sleep(0.1)
    raise TimeoutError(f"{proc} on {host} not running after {timeout}s")


def cut_link(plan: Plan, host: str) -> None:
    network.set_link(plan, host, up=False)


def restore_link(plan: Plan, host: str) -> None:
    network.set_link(plan, host, up=True)


PARTITION_TABLE = "contrail_ha_partition"


def partition(plan: Plan, host: str, peers: list[str]) -> None:
    """Cut ``host`` off from ``peers`` (host names) in both directions, with nftables rules in its namespace.

    Everything else (the lbs, the router, the client) still reaches it: a partition of the
    controllers among themselves, not a pulled cable.
    """
    ips = sorted(str(plan.topology.host(p).ip) for p in peers)
    if not ips:
        raise ValueError("a partition needs at least one peer")
    addrs = ", ".join(ips)
    rules = (f"table inet {PARTITION_TABLE} {{\n"
             f"  chain in {{ type filter hook input priority -10; policy accept; ip saddr {{ {addrs} }} drop; }}\n"
             f"  chain out {{ type filter hook output priority -10; policy accept; ip daddr {{ {addrs} }} drop; }}\n"
             "}\n")
    network.nft(plan, host, rules)


def heal_partition(plan: Plan, host: str) -> None:
    # "add" first: deleting a table that is not there is an error, and healing twice is not
    network.nft(plan, host, f"add table inet {PARTITION_TABLE}\ndelete table inet {PARTITION_TABLE}\n")


def heal_all(plan: Plan, layout: Layout) -> list[str]:
    """Undo whatever a drill that died mid-fault may have left: held processes, pulled cables,
    partition rules. Idempotent; returns what it healed."""
    healed: list[str] = []
    dirs = [d for n in (ROUTER, *(h.name for h in plan.topology.hosts)) for d in SupervisorDir.all_of(layout, n)]
    held = sorted(((sd, p) for sd in dirs for p in sd.held_processes()), key=lambda t: t[0].held_file(t[1]))
    for sd in dirs:
        for proc in sd.fault_env_processes():
            sd.clear_fault_env(proc)
            pid = sd.pid(proc)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)  # the supervisor restarts it with its own environment
                except ProcessLookupError:
                    pass
            healed.append(f"restarted {proc} ({sd.node}) without its fault environment")
        for proc in sd.paused_processes():
            _cont(sd.paused_pids(proc))
            sd.forget_paused(proc)
            healed.append(f"resumed {proc} ({sd.node})")
    for sd, proc in held:
        sd.release(proc)
        healed.append(f"released {proc} ({sd.node})")
    for h in plan.topology.hosts:
        if not network.link_is_up(plan, h.name):
            network.set_link(plan, h.name, up=True)
            healed.append(f"plugged the cable of {h.name}")
        if network.nft_has_table(plan, h.name, PARTITION_TABLE):
            heal_partition(plan, h.name)
            healed.append(f"removed the partition of {h.name}")
    return healed
