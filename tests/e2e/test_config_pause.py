"""Issue 20: a contrail-api replica frozen (SIGSTOP) for longer than a create's claim window while
creates and ref adds are in flight on it and their parents and targets are deleted through the
other replicas: no orphan, no dangling ref, no acknowledged create under an acknowledged delete.

CONTRAIL_HA_PAUSE_ROUNDS rounds (default 2, each holding the pause 25 s); the long run is
scripts/pause_config_api.py.
"""

from __future__ import annotations

import os

from contrail_ha.operations import faults
from tests.e2e.conftest import Cluster
from tests.helpers import pause

ROUNDS = int(os.environ.get("CONTRAIL_HA_PAUSE_ROUNDS", "2"))


def test_paused_replica_keeps_integrity(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    apis = plan.of("config-api")
    victim = apis[-1]
    host = victim.host.name
    res = pause.run(plan.config_api_url, [f"http://{i.address}" for i in apis], f"http://{victim.address}",
                    lambda: faults.pause(plan, layout, host, victim.name),
                    lambda: faults.resume(plan, layout, host, victim.name), rounds=ROUNDS, hold=25.0)
    print(res.summary())
    assert not res.violations, res.summary() + "\n" + "\n".join(res.violations[:20])
    # the nemesis really held requests across the freeze, and the deletes went through meanwhile
    assert res.held >= 1, res.summary()
    assert res.answers["delete-project 200"] >= 1, res.summary()
    assert faults.process_state(plan, layout, host, victim.name)["state"] == "running"


def test_harness_flags_an_acknowledged_create_under_an_acknowledged_delete() -> None:
    """The pause harness's own check (no cluster): what it must call a violation, and what not."""
    r = pause.Round("http://vip", ["http://a", "http://b"], "http://b", pairs=2)
    r.projects = [("p0", "i0", "a0"), ("p1", "i1", "a1")]
    r._read_check = lambda base, created, gone: []  # type: ignore[method-assign]
    r.history = [pause.Op("create", "http://b", 0, 0.0, 30.0, 200, "vn-late"),
                 pause.Op("create", "http://b", 1, 0.0, 30.0, 200, "vn-ok"),
                 pause.Op("delete-vn", "http://a", 1, 5.0, 6.0, 200, "vn-ok"),
                 pause.Op("delete-project", "http://a", 0, 20.0, 21.0, 200, "p0"),
                 pause.Op("delete-project", "http://a", 1, 20.0, 21.0, 200, "p1"),
                 pause.Op("create", "http://b", 1, 0.0, 30.0, 503, ""),
                 pause.Op("ref-add", "http://b", 1, 0.0, 30.0, 500, "")]
    found = r.check()
    assert [v.split(":")[0] for v in found] == ["5xx", "acked-orphan"], found
    assert "vn-late" in found[1]
    r.register_ops = [pause.linearizable.Op("w", "x", 0.0, 1.0), pause.linearizable.Op("r", "initial", 2.0, 3.0)]
    r.history = []
    assert [v.split(":")[0] for v in r.check()] == ["not-linearizable"]
    r.client.close()
