"""`contrail-ha drill` on the shared HA cluster: real faults under load, then the data check."""

from __future__ import annotations

import json

from tests.e2e.conftest import Cluster

DATA_FIELDS = ("lost", "lost_examples", "mismatched", "duplicate_fq_names", "duplicate_vn_ids", "replicas_disagree",
               "analytics_lost", "analytics_duplicates", "minority_writes", "register_linearizable",
               "graph_violations", "recovered", "last_unhealthy")


def _results(p) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """The drill's results by fault. A failed drill still prints them: its data-check fields come
    first in the failure message (the JSON's tail alone hid which check failed)."""
    try:
        results = {r["fault"]: r for r in json.loads(p.stdout)}
    except (ValueError, KeyError, TypeError):
        raise AssertionError(p.stdout[-3000:] + p.stderr[-3000:]) from None
    why = {name: {k: r.get(k) for k in DATA_FIELDS} for name, r in results.items() if not r.get("data_ok")}
    assert p.returncode == 0, f"data not ok: {why}\n" + p.stdout[-1500:] + p.stderr[-1500:]
    return results


def test_drill_api_replica_and_lb(cluster: Cluster) -> None:
    """On the process runtime (the ZooKeeper leader's kill is drilled on containers over SSH in
    test_zzzz_deploy, and its election in test_cluster)."""
    p = cluster.cli("drill", "--fault", "api-replica", "--fault", "lb-kill", "--seconds", "6", "--json", timeout=1200)
    results = _results(p)
    assert set(results) == {"api-replica", "lb-kill"}
    for name, r in results.items():
        print(f"\n{name}: {r['requests']} requests, failed {r['failed']}, longest outage {r['longest_outage_s']}s, "
              f"writes back {r['writes_back_s']}s, out of rotation {r['out_of_rotation_s']}s, "
              f"p99 {r['p99_during_fault_ms']} ms, recovery {r['recovery_s']}s, acked {r['acked_creates']}, "
              f"messages {r['analytics_sent']}")
        assert r["requests"] > 50 and r["acked_creates"] > 10
        assert r["lost"] == 0 and r["mismatched"] == 0
        assert r["duplicate_fq_names"] == 0 and r["duplicate_vn_ids"] == 0
        assert r["replicas_disagree"] == 0  # every replica reads every acked object the same
        assert r["analytics_sent"] > 100 and r["analytics_lost"] == 0 and r["analytics_duplicates"] == 0
        assert r["recovered"] is True
        assert r["register_ops"] > 50 and r["register_linearizable"] is True, r["register_window"]
        assert r["graph_ops"] > 50 and r["graph_violations"] == 0, r["graph_examples"]
        assert r["data_ok"] is True
    # the killed replica left the lbs' rotation (the time is a figure for docs/ha.md, not a test bound)
    assert results["api-replica"]["out_of_rotation_s"] is not None


def test_drill_partition_and_combined_pause_skew_with_the_checkers(cluster: Cluster) -> None:
    """Issue 20 in CI: one controller cut off from the others for 20 s (longer than every timeout of
    the write path), then a config-DB node frozen while a replica runs 60 s ahead, with the register
    written and read through every replica and the VIP and the object graph built and torn down:
    the register's history is linearizable, the graph has no orphan, dangling ref, lost write or
    duplicate, the cut-off replica refused every write, nothing acked is lost."""
    p = cluster.cli("drill", "--fault", "controller-partition", "--fault", "config-db-pause+api-clock-skew",
                    "--json", timeout=1800)
    results = _results(p)
    for name, r in results.items():
        print(f"\n{name}: {r['requests']} requests, failed {r['failed']}, register {r['register_ops']} "
              f"ops ({r['register_unknown']} unknown), graph {r['graph_ops']} ops, minority {r['minority_writes']}")
        assert r["register_ops"] > 50 and r["register_linearizable"] is True, r["register_window"]
        assert not r["register_undecided"]
        assert r["graph_ops"] > 50 and r["graph_violations"] == 0, r["graph_examples"]
        assert r["graph_answers"].get("delete-project 200", 0) >= 1  # a slot was torn down under the fault
        assert r["lost"] == 0 and r["replicas_disagree"] == 0 and r["data_ok"] is True
    minority = results["controller-partition"]["minority_writes"]
    assert minority and "200" not in minority


def test_drill_refuses_unknown_and_unsurvivable(cluster: Cluster, tmp_path) -> None:
    p = cluster.cli("drill", "--fault", "no-such-fault")
    assert p.returncode == 2 and "unknown fault" in p.stderr
    one = tmp_path / "one-lb.yaml"
    text = cluster.topology.read_text().replace("  - {name: lb2, ip: 10.10.0.12, roles: [lb]}\n", "")
    one.write_text(text)
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "contrail_ha.cli", "drill", "--fault", "lb-kill", "-t", str(one)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "refusing to inject lb-kill" in r.stderr and "needs at least 2 lb" in r.stderr
