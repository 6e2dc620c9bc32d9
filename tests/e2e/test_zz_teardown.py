"""Runs last: ``down --purge`` leaves no process, namespace, veth, mount or file behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

from contrail_ha.runtime import netns, network
from contrail_ha.runtime.netns import NETNS_DIR
from tests.e2e.conftest import Cluster


def _pids(cluster: Cluster) -> set[int]:
    pids: set[int] = set()
    for f in cluster.layout.root.rglob("supervisor/*/state.json"):
        st = json.loads(f.read_text())
        pids.add(st["supervisor_pid"])
        for p in st["processes"].values():
            pids.update(x for x in (p["pid"], p["server_pid"]) if x)
    return pids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_down_leaves_nothing(cluster: Cluster) -> None:
    pids = _pids(cluster)
    assert len(pids) > 20
    client = netns.ns_name(cluster.plan, netns.CLIENT)  # this test process itself lives there
    ns_pids = {pid for ns in network.namespaces(cluster.plan) if ns != client for pid in network.pids_in(ns)}
    p = cluster.cli("down", "--purge")
    assert p.returncode == 0, p.stdout + p.stderr
    assert [pid for pid in pids | ns_pids if _alive(pid)] == []
    prefix = f"{cluster.plan.cluster_id}-"
    assert [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)] == [] if NETNS_DIR.exists() else True
    assert [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if "contrail-ha" in ln] == []
    assert not list(Path("/etc/netns").glob(f"{prefix}*"))
    assert not cluster.layout.root.exists()
