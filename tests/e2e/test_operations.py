"""Operating the running cluster: idempotent up, degraded status, logs."""

from __future__ import annotations

import json

from contrail_ha.operations import faults
from tests.e2e.conftest import Cluster
from tests.helpers.proc import wait_for as wait


def _pids(cluster: Cluster) -> dict[str, int]:
    out = {}
    for f in sorted(cluster.layout.root.rglob("supervisor/*/state.json")):
        st = json.loads(f.read_text())
        for name, p in st["processes"].items():
            out[f"{st['host']}/{name}"] = p["pid"]
    return out


def test_up_again_is_idempotent(cluster: Cluster) -> None:
    before = _pids(cluster)
    p = cluster.cli("up")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "is up in" in p.stdout
    after = _pids(cluster)
    assert after == before, "a second `up` must not restart anything"


def test_status_degraded_names_what_and_where(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    faults.kill(plan, layout, "ctrl2", "config-api-1", hold=True)
    try:
        def degraded() -> dict | None:
            p = cluster.cli("status", "--json")
            out = json.loads(p.stdout)
            bad = {(c["component"], c["target"]) for c in out["checks"] if not c["ok"]}
            return {"rc": p.returncode, "bad": bad, "out": out} if ("config-api", "ctrl2/config-api-1") in bad \
                else None

        r = wait(degraded, 30, "status shows the killed replica")
        assert r["rc"] == 1 and r["out"]["healthy"] is False
        assert ("process", "ctrl2/config-api-1") in r["bad"]
        text = cluster.cli("status")
        assert text.returncode == 1
        assert "config-api on ctrl2/config-api-1" in text.stderr and "held" in text.stderr
    finally:
        faults.heal(plan, layout, "ctrl2", "config-api-1")
    wait(lambda: cluster.cli("status").returncode == 0, 60, "healthy again after heal")


def test_logs_command(cluster: Cluster) -> None:
    p = cluster.cli("logs", "ctrl1", "zookeeper", "-n", "5")
    assert p.returncode == 0 and "zookeeper" in p.stdout
    p = cluster.cli("logs", "router")
    assert p.returncode == 0 and "bird" in p.stdout
    bad = cluster.cli("logs", "nohost")
    assert bad.returncode == 2 and "unknown host 'nohost'" in bad.stderr
