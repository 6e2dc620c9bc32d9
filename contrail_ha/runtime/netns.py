"""Local hosts as Linux network namespaces: naming, entering, running commands inside.

Each host of the topology is a network namespace ``<cluster-id>-<host>`` with a UTS namespace
(its own hostname) kept alive as a bind mount, plus ``/etc/netns/<ns>/{hosts,resolv.conf}``.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from contrail_ha.topology.plan import Plan

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
UTS_DIR = Path("/run/contrail-ha/uts")

ROUTER = "router"
CLIENT = "client"
SWITCH = "sw"


def ns_name(plan: Plan, host: str) -> str:
    """Namespace of ``host`` (also ``router``, ``client`` and the bridge's ``sw``)."""
    return f"{plan.cluster_id}-{host}"


def uts_file(plan: Plan, host: str) -> Path:
    return UTS_DIR / ns_name(plan, host)


def exec_argv(plan: Plan, host: str, argv: list[str]) -> list[str]:
    """argv that runs ``argv`` inside ``host``'s network and UTS namespaces (with its /etc/hosts)."""
    base = ["ip", "netns", "exec", ns_name(plan, host), *argv]
    uts = uts_file(plan, host)
    if uts.exists():
        return ["nsenter", f"--uts={uts}", "--", *base]
    return base


def machine_argv(plan: Plan, host: str, argv: list[str]) -> list[str]:
    """argv that runs ``argv`` in ``host``'s network and UTS namespaces only: unlike ``ip netns
    exec`` it keeps this machine's mounts (``/sys`` with its cgroups: a container engine started
    there runs containers, whose host network is then the host's) and its ``/etc``."""
    uts = uts_file(plan, host)
    return ["nsenter", f"--net={NETNS_DIR / ns_name(plan, host)}", *([f"--uts={uts}"] if uts.exists() else []),
            "--", *argv]


def enter(ns: str) -> None:
    """Move this process's calling thread (do it before starting threads) into network namespace ``ns``."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()
