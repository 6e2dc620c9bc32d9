"""Kafka rendering: server.properties, log4j and the kafka.Kafka process (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contrail_ha.rendering import kafka
from contrail_ha.rendering.base import Layout, Rendered
from contrail_ha.topology.plan import KAFKA, Plan
from tests.helpers.topo import loopback_plan


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    cache = tmp_path / "cache"
    (cache / "classpath").mkdir(parents=True)
    (cache / "classpath" / "kafka.txt").write_text("/jars/kafka_2.13-3.9.1.jar:/jars/slf4j-reload4j.jar\n")
    return Layout(tmp_path / "root", cache=cache)


@pytest.fixture
def plan() -> Plan:
    return loopback_plan("127.0.20", 3)


def _props(r: Rendered) -> dict[str, str]:
    text = next(t for p, t in r.files.items() if p.name == "server.properties")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            assert k not in out, f"{k} twice"
            out[k] = v
    return out


def test_broker_identity_and_listeners(plan: Plan, layout: Layout) -> None:
    for n, inst in enumerate(plan.of(KAFKA)):
        p = _props(kafka.render(plan, inst, layout))
        assert p["broker.id"] == str(n) == str(inst.index)
        assert p["listeners"] == f"PLAINTEXT://127.0.20.{n + 1}:9092"
        assert p["advertised.listeners"] == p["listeners"]
        assert p["log.dirs"] == str(layout.data(inst.host.name, "kafka"))


def test_zookeeper_mode_with_chroot(plan: Plan, layout: Layout) -> None:
    p = _props(kafka.render(plan, plan.of(KAFKA)[0], layout))
    assert p["zookeeper.connect"] == "127.0.20.1:2181,127.0.20.2:2181,127.0.20.3:2181/test-kafka"
    assert p["zookeeper.connect"] == plan.kafka_zookeeper_connect
    assert p["zookeeper.metadata.migration.enable"] == "false"
    assert "process.roles" not in p and "node.id" not in p
    assert 2000 <= int(p["zookeeper.session.timeout.ms"]) <= 10000


def test_durability(plan: Plan, layout: Layout) -> None:
    p = _props(kafka.render(plan, plan.of(KAFKA)[0], layout))
    assert p["default.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2"
    assert p["unclean.leader.election.enable"] == "false"
    assert p["offsets.topic.replication.factor"] == "3"
    assert p["transaction.state.log.replication.factor"] == "3"
    assert p["transaction.state.log.min.isr"] == "2"
    assert p["auto.create.topics.enable"] == "false"
    assert p["controlled.shutdown.enable"] == "true"
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["log.retention.hours"] == "24"
    assert p["log.retention.bytes"] == str(256 * 1024 * 1024)


def test_replication_follows_topology(layout: Layout) -> None:
    plan = loopback_plan("127.0.20", 5, replication={"config_db": 3, "analytics_db": 3, "kafka": 3,
                                                     "kafka_min_insync": 1})
    p = _props(kafka.render(plan, plan.of(KAFKA)[4], layout))
    assert p["broker.id"] == "4"
    assert p["min.insync.replicas"] == "1"
    assert p["transaction.state.log.min.isr"] == "1"
    single = loopback_plan("127.0.20", 1)
    p1 = _props(kafka.render(single, single.of(KAFKA)[0], layout))
    assert p1["default.replication.factor"] == p1["offsets.topic.replication.factor"] == "1"
    assert p1["min.insync.replicas"] == p1["transaction.state.log.min.isr"] == "1"


def test_process_and_logging(plan: Plan, layout: Layout) -> None:
    r = kafka.render(plan, plan.of(KAFKA)[1], layout)
    [spec] = r.processes
    assert spec.name == "kafka"
    conf = layout.conf("n2", "kafka")
    logs = layout.logs("n2", "kafka")
    assert spec.argv[0] == "java"
    assert "-Xmx256m" in spec.argv
    assert f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}" in spec.argv
    assert f"-Dkafka.logs.dir={logs}" in spec.argv
    assert spec.argv[spec.argv.index("-cp") + 1] == "/jars/kafka_2.13-3.9.1.jar:/jars/slf4j-reload4j.jar"
    assert spec.argv[-2:] == ["kafka.Kafka", str(conf / "server.properties")]
    assert "${kafka.logs.dir}/server.log" in r.files[conf / "log4j.properties"]


def test_a_new_broker_waits_for_zookeeper_to_serve(plan: Plan, layout: Layout) -> None:
    from contrail_ha.topology.plan import ZOOKEEPER

    [spec] = kafka.render(plan, plan.of(KAFKA)[2], layout).processes
    assert spec.join_after == [f"zk://{z.address}" for z in plan.of(ZOOKEEPER)] and len(spec.join_after) == 3
    assert spec.join_any and spec.fresh_dir == str(layout.data("n3", "kafka"))
