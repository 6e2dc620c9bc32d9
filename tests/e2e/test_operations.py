"""Operating the running cluster: idempotent up, degraded status, logs, healing after a dead drill, scale."""

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
    assert "is up in" in p.stdout and "supervisors: " in p.stdout and "(processes)" in p.stdout
    after = _pids(cluster)
    assert after == before, "a second `up` must not restart anything"
    # a running cluster is not moved to the other runtime behind its back
    p = cluster.cli("up", "--containers")
    assert p.returncode == 2 and "runs on processes; `contrail-ha down` first" in p.stderr, p.stderr
    p = cluster.cli("up", "--all-at-once")
    assert p.returncode == 2 and "runs on processes; `contrail-ha down` first" in p.stderr, p.stderr
    p = cluster.cli("up", "--all-at-once", "--processes")
    assert p.returncode == 2 and "cannot be combined with --processes" in p.stderr, p.stderr
    assert _pids(cluster) == before


def test_a_topology_that_renumbers_a_member_is_refused(cluster: Cluster, tmp_path) -> None:
    """The members' identities were recorded at `up`; a pin that would renumber one changes nothing."""
    import subprocess

    import yaml

    from tests.e2e.conftest import CLI

    rec = json.loads((cluster.layout.root / "identity.json").read_text())
    assert rec["zookeeper_myid"] == {"ctrl1": 1, "ctrl2": 2, "ctrl3": 3}
    assert rec["kafka_broker_id"] == {"ctrl1": 0, "ctrl2": 1, "ctrl3": 2}
    assert rec["config_db_seed"] == rec["analytics_db_seed"] == ["ctrl1", "ctrl2", "ctrl3"]
    before = _pids(cluster)
    data = yaml.safe_load(cluster.topology.read_text())
    data["hosts"][3]["identity"] = {"zookeeper_myid": 1}  # ctrl2 as ctrl1's myid
    path = tmp_path / "renumbered.yaml"
    path.write_text(yaml.safe_dump(data))
    p = subprocess.run([*CLI, "up", "--processes", "-t", str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "hosts[3].identity.zookeeper_myid" in p.stderr and "ctrl2 is ZooKeeper myid 2" in p.stderr, p.stderr
    assert _pids(cluster) == before
    assert json.loads((cluster.layout.root / "identity.json").read_text()) == rec


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


def test_drill_heal_undoes_what_a_dead_drill_left(cluster: Cluster) -> None:
    """A drill killed by SIGKILL cannot heal its fault: `drill --heal` releases held processes, plugs
    pulled cables and removes partition rules, and the cluster gets healthy again."""
    plan, layout = cluster.plan, cluster.layout
    faults.kill(plan, layout, "ctrl3", "analytics-api-1", hold=True)
    faults.partition(plan, "ctrl3", ["lb2"])
    faults.cut_link(plan, "lb2")
    p = cluster.cli("drill", "--heal")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for line in ("released analytics-api-1 (ctrl3)", "removed the partition of ctrl3", "plugged the cable of lb2"):
        assert line in p.stdout, p.stdout
    again = cluster.cli("drill", "--heal")
    assert again.returncode == 0 and "nothing to heal" in again.stdout, again.stdout
    wait(lambda: cluster.cli("status").returncode == 0, 240, "healthy after drill --heal", interval=2)


def test_scale_config_api_out_and_back_without_dropping_requests(cluster: Cluster, tmp_path) -> None:
    """`scale config-api=2`: a second replica per controller joins HAProxy (which reloads) once it is
    ready; then back to 1, each departing replica drained first. Three clients see no error."""
    import subprocess
    import sys
    import threading

    import httpx

    from contrail_ha.probes import haproxy

    topo = tmp_path / "ha.yaml"
    topo.write_text(cluster.topology.read_text())
    results: list[int | str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    results.append(c.get(f"{cluster.api}/virtual-networks").status_code)
                except httpx.HTTPError as e:
                    results.append(e.__class__.__name__)

    def scale(n: int) -> str:
        p = subprocess.run([sys.executable, "-m", "contrail_ha.cli", "scale", f"config-api={n}", "-t", str(topo)],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        return p.stdout

    def servers() -> set[str]:
        rows = haproxy.parse_stat(haproxy.command(haproxy.stats_socket(cluster.layout, "lb1"), "show stat"))
        return set(haproxy.backends(rows)["contrail-api-backend"]["servers"])

    threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert "lbs to reload after the APIs" in scale(2)
        assert "config_api_replicas: 2" in topo.read_text() and "# contrail-api instances" in topo.read_text()
        assert servers() == {f"ctrl{i}-config-api-{r}" for i in (1, 2, 3) for r in (1, 2)}
        r = httpx.get(f"http://{cluster.plan.topology.host('ctrl1').ip}:18082/health", timeout=10)
        assert r.status_code == 200, r.text
        scale(1)
        assert servers() == {f"ctrl{i}-config-api-1" for i in (1, 2, 3)}
    finally:
        stop.set()
        t.join(30)
    assert len(results) > 20
    assert [x for x in results if x != 200] == []  # nothing dropped while HAProxy reloaded
