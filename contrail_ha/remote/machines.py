"""The topology's hosts as machines on this one: each a network namespace (the local network of
:mod:`contrail_ha.runtime.network`) running Debian's sshd on the host's address, with its own host
key, accepting the cluster's key for root. sshd enters only the namespace's network (and
hostname), not ``ip netns exec``'s remounted ``/sys``: a container engine started over SSH then
finds its cgroups, and its host-network containers get the host's network, as on a real machine.
What reaches them does so over SSH to their IPs (from the client's namespace, the operator's side
of the router), exactly as it would reach real machines: this module is the only one that enters
their namespaces, to start the sshd a real machine would already run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from contrail_ha.errors import ContrailHaError
from contrail_ha.remote import ssh
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import netns, network, pids
from contrail_ha.topology.plan import Plan

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd wants its privilege separation directory
START_TIMEOUT_S = 20


class MachinesError(ContrailHaError):
    """A stand-in machine could not be started; the message says which and why."""


def _dir(layout: Layout, host: str) -> Path:
    d = ssh.ssh_dir(layout) / "hosts" / host
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def pid_file(layout: Layout, host: str) -> Path:
    return _dir(layout, host) / "sshd.pid"


def sshd_config(plan: Plan, layout: Layout, host: str) -> str:
    """A host's sshd: its address only, keys only (root with a key, no passwords), sftp built in."""
    h = plan.topology.host(host)
    d = _dir(layout, host)
    return "\n".join([
        "# Rendered by contrail-ha: a stand-in machine's sshd.",
        f"ListenAddress {h.ip}:22",
        f"HostKey {ssh.host_key(layout, host)}",
        f"PidFile {pid_file(layout, host)}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
        # the key file is ours (0600 in a 0700 directory) wherever the state root is, /tmp included,
        # whose sticky world-writable mode StrictModes refuses along the path
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PrintMotd no",
        "MaxStartups 50:30:100",  # Ansible opens several sessions per host at once
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
        "",
    ])


def _running(layout: Layout, host: str) -> int | None:
    try:
        pid = int(pid_file(layout, host).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not pids.alive(pid):
        return None
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    return pid if str(_dir(layout, host) / "sshd_config") in cmd else None  # ours, not a reused pid


def running(layout: Layout, host: str) -> bool:
    """Whether ``host``'s stand-in sshd runs."""
    return _running(layout, host) is not None


def start(plan: Plan, layout: Layout, host: str) -> int:
    """sshd of ``host`` running (idempotent); its pid."""
    if pid := _running(layout, host):
        return pid
    d = _dir(layout, host)
    key = ssh.client_key(plan, layout)
    (d / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    cfg = d / "sshd_config"
    cfg.write_text(sshd_config(plan, layout, host))
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    check = subprocess.run([SSHD, "-t", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise MachinesError(f"{host}: sshd refuses its configuration: {check.stderr.strip()}")
    pid_file(layout, host).unlink(missing_ok=True)
    with open(d / "sshd.log", "ab") as log:
        subprocess.Popen(netns.machine_argv(plan, host, [SSHD, "-f", str(cfg), "-E", str(d / "sshd.log")]),
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if pid := _running(layout, host):
            return pid
        time.sleep(0.1)
    raise MachinesError(f"{host}: sshd did not start in {START_TIMEOUT_S}s; see {d / 'sshd.log'}")


def stop(layout: Layout, host: str) -> bool:
    """Stop ``host``'s sshd (its sessions end with it); whether one ran."""
    pid = _running(layout, host)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pids.alive(pid):
        time.sleep(0.05)
    if pids.alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file(layout, host).unlink(missing_ok=True)
    return True


def start_router(plan: Plan, layout: Layout) -> None:
    """The upstream router's BIRD (the operator's network, as under ``up``): the lbs announce the
    VIP to it, and the client reaches the VIP through it."""
    from contrail_ha.runtime import cluster

    group, rendered = cluster.rendered_groups(plan, layout)[-1]
    cluster.apply(plan, layout, group, rendered)
    cluster.enable(layout, plan, group.node, group.role, [p.name for r in rendered for p in r.processes])


def up(plan: Plan, layout: Layout, progress: Callable[[str], None] = print) -> Path:
    """Every host a namespace with its sshd, the upstream router running; the SSH configuration and
    inventory written. Returns the ``ssh -F`` configuration."""
    network.create(plan, progress=lambda m: progress(f"  {m}"))
    start_router(plan, layout)
    progress(f"router: BIRD on {plan.router_ip}")
    keys = {}
    for h in plan.topology.hosts:
        start(plan, layout, h.name)
        keys[h.name] = Path(f"{ssh.host_key(layout, h.name)}.pub").read_text()
        progress(f"{h.name}: sshd on {h.ip}:22")
    ssh.write_known_hosts(plan, layout, keys)
    ssh.write_inventory(plan, layout)
    return ssh.write_config(plan, layout)


def client_argv(plan: Plan) -> list[str]:
    """Where the operator's side is on this machine: the client's namespace, whose router reaches
    the hosts' network (the hosts themselves are never entered)."""
    return ["ip", "netns", "exec", netns.ns_name(plan, netns.CLIENT)]
