"""The default HA cluster, real components in namespaces: status from the components themselves."""

from __future__ import annotations

import json
import time
import uuid

import httpx
from kazoo.client import KazooClient

from contrail_ha.operations import faults
from contrail_ha.probes import cassandra, kafka, rabbitmq, zookeeper
from contrail_ha.rendering import kafka as kafka_render
from contrail_ha.topology.plan import ZOOKEEPER
from tests.e2e.conftest import Cluster
from tests.helpers.proc import wait_for as wait


def test_status_all_healthy(cluster: Cluster) -> None:
    p = wait(lambda: (r := cluster.cli("status", "--json")).returncode == 0 and r, 120, "status healthy")
    out = json.loads(p.stdout)
    assert out["healthy"] is True
    components = {c["component"] for c in out["checks"]}
    for needed in ("process", "zookeeper", "rabbitmq", "config-db", "analytics-db", "kafka", "haproxy", "bird",
                   "vip", "config-api", "analytics-api"):
        assert needed in components, f"status lacks {needed}: {sorted(components)}"


def test_status_table_and_exit_code(cluster: Cluster) -> None:
    p = cluster.cli("status")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "healthy" in p.stdout


def test_vip_serves_both_apis(cluster: Cluster) -> None:
    r = httpx.get(f"{cluster.api}/", timeout=5)
    assert r.status_code == 200 and r.json()["href"] == cluster.api
    assert httpx.get(f"{cluster.api}/health", timeout=5).status_code == 200
    assert httpx.get(f"{cluster.analytics}/analytics", timeout=5).status_code == 200


def test_rabbitmq_three_running_nodes(cluster: Cluster) -> None:
    checks = rabbitmq.checks(cluster.plan, cluster.layout)
    assert all(c.ok for c in checks), [c.as_dict() for c in checks]
    per_node = [c for c in checks if c.target != "cluster"]
    assert len(per_node) == 3


def test_each_cassandra_ring_three_un(cluster: Cluster) -> None:
    checks = cassandra.checks(cluster.plan, cluster.layout)
    for comp in ("config-db", "analytics-db"):
        nodes = [c for c in checks if c.component == comp and c.target != "cluster"]
        assert sorted(c.target for c in nodes) == ["ctrl1", "ctrl2", "ctrl3"], [c.as_dict() for c in checks]
        assert all(c.detail == "UN" and c.ok for c in nodes), [c.as_dict() for c in nodes]


def test_kafka_three_brokers_topic_rf3_minisr2(cluster: Cluster) -> None:
    checks = kafka.checks(cluster.plan, cluster.layout)
    brokers = [c for c in checks if c.target != "cluster"]
    assert len(brokers) == 3 and all(c.ok for c in brokers), [c.as_dict() for c in checks]
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    admin = kafka_render.login(cluster.layout, kafka_render.BROKER_USER)  # the operator's topic tool
    kafka.ensure_topic(cluster.plan, name, partitions=3, auth=admin)
    d = kafka.describe_topic(cluster.plan, name, auth=admin)
    assert d["min.insync.replicas"] == 2 and d["replication_factor"] == 3
    assert all(len(p["replicas"]) == 3 for p in d["partitions"])


def test_zookeeper_survives_leader_kill(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    leader = zookeeper.leader(plan)
    assert leader is not None
    from contrail_ha.rendering import zookeeper as zk_render

    # as the replicas' identity: ZooKeeper's root admits no one else's znodes
    secret = zk_render.password(layout, zk_render.API_USER)
    zk = KazooClient(hosts=plan.zookeeper_servers, timeout=6, auth_data=[("digest", f"{zk_render.API_USER}:{secret}")])
    zk.start(timeout=15)
    try:
        path = f"/{plan.cluster_id}/e2e/{uuid.uuid4().hex}"
        zk.create(path, b"before", makepath=True)
        faults.kill(plan, layout, leader.host.name, ZOOKEEPER, hold=True)
        t0 = time.monotonic()
        # the ensemble keeps serving writes and reads without the old leader
        wait(lambda: zk.set(path, b"after") is not None, 30, "write after leader kill")
        assert zk.get(path)[0] == b"after"
        new = wait(lambda: (n := zookeeper.leader(plan)) and n.host.name != leader.host.name and n, 30, "new leader")
        print(f"\nZooKeeper: new leader {new.host.name} serving {time.monotonic() - t0:.2f}s after the kill")
        zk.delete(f"/{plan.cluster_id}/e2e", recursive=True)
    finally:
        faults.heal(plan, layout, leader.host.name, ZOOKEEPER)
        zk.stop()
        zk.close()
    wait(lambda: all(c.ok for c in zookeeper.checks(plan, layout)), 60, "zookeeper healthy again")
