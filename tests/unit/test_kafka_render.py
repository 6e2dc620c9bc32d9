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
    (cache / "classpath" / "zookeeper.txt").write_text("/jars/zookeeper-3.8.4.jar\n")
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
        assert p["listeners"] == f"SASL_PLAINTEXT://127.0.20.{n + 1}:9092"
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
    java = spec.argv.index("java")  # after the launcher that writes the users and ACLs, then execs it
    assert spec.argv[1:java] == ["-m", "contrail_ha.services.kafka_users", str(conf / "users.json"), "--"]
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


def test_logins_and_acls(plan: Plan, layout: Layout) -> None:
    """Issue 13: SCRAM on every connection (the brokers' too), nothing allowed without an ACL, one
    super user; the users' passwords only in files their owner reads."""
    import json

    r = kafka.render(plan, plan.of(KAFKA)[0], layout)
    p = _props(r)
    assert p["inter.broker.listener.name"] == "SASL_PLAINTEXT" and p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert p["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] == "false" and p["super.users"] == "User:contrail-kafka"
    assert kafka.password(layout, kafka.BROKER_USER) in p["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    conf = layout.conf("n1", "kafka")
    assert {r.modes[conf / f] for f in ("server.properties", "users.json", "monitor.json")} == {0o600}
    users = json.loads(r.files[conf / "users.json"])
    assert [u["name"] for u in users["users"]] == list(kafka.USERS) and users["chroot"] == plan.kafka_chroot
    assert len({u["password"] for u in users["users"]}) == 4
    by_user: dict[str, set[str]] = {}
    for a in users["acls"]:
        by_user.setdefault(a["user"], set()).update(f"{a['resource']}:{a['name']}:{op}" for op in a["operations"])
    col, agg = by_user["contrail-collector"], by_user["contrail-aggregator"]
    assert "Topic:test-:Write" in col and "Topic:test-:Read" not in col
    assert "Topic:test-:Read" in agg and "Topic:test-:Write" not in agg
    assert all(":Describe" in x for x in by_user["contrail-monitor"])  # metadata only
    assert kafka.BROKER_USER not in by_user  # the super user needs none


def test_scram_credential_is_rfc5802_and_verifies() -> None:
    """The credential the launcher stores: Kafka's format, re-derivable from the password only."""
    import base64
    import hashlib
    import hmac

    from contrail_ha.services import kafka_users

    salt = b"0123456789abcdef"
    cred = kafka_users.credential("pencil", salt, 4096)
    fields = dict(kv.split("=", 1) for kv in cred.split(","))
    assert base64.b64decode(fields["salt"]) == salt and fields["iterations"] == "4096"
    salted = hashlib.pbkdf2_hmac("sha512", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
    assert base64.b64decode(fields["stored_key"]) == hashlib.sha512(client_key).digest()
    assert kafka_users.matches(cred, "pencil") and not kafka_users.matches(cred, "pencil2")
    assert kafka_users.matches(kafka_users.credential("pencil"), "pencil")  # a fresh salt each time


def test_the_brokers_znodes_are_their_sasl_identitys(plan: Plan, layout: Layout) -> None:
    """Issue 13: the brokers log in to ZooKeeper (SASL DIGEST-MD5, a JAAS file only they read) and
    set ACLs on what they create; the launcher logs in as them; the servers know the password."""
    import json

    from contrail_ha.rendering import zookeeper
    from contrail_ha.topology.plan import ZOOKEEPER

    r = kafka.render(plan, plan.of(KAFKA)[0], layout)
    assert _props(r)["zookeeper.set.acl"] == "true"
    conf = layout.conf("n1", "kafka")
    jaas = conf / "zookeeper-jaas.conf"
    secret = zookeeper.password(layout, zookeeper.KAFKA_USER)
    assert r.modes[jaas] == 0o600 and secret in r.files[jaas] and r.files[jaas].startswith("Client {")
    assert f"-Djava.security.auth.login.config={jaas}" in r.processes[0].argv
    users = json.loads(r.files[conf / "users.json"])
    assert (users["zookeeper_user"], users["zookeeper_password"]) == (zookeeper.KAFKA_USER, secret)
    zr = zookeeper.render(plan, plan.of(ZOOKEEPER)[0], layout)
    zjaas = layout.conf("n1", "zookeeper") / "jaas.conf"
    assert zr.modes[zjaas] == 0o600 and f'user_{zookeeper.KAFKA_USER}="{secret}"' in zr.files[zjaas]
    assert f"-Djava.security.auth.login.config={zjaas}" in zr.processes[0].argv
    cfg = zr.files[layout.conf("n1", "zookeeper") / "zoo.cfg"]
    assert f"authProvider.sasl={zookeeper.SASL_PROVIDER}" in cfg.splitlines()
    assert secret not in cfg and secret not in " ".join(zr.processes[0].argv + r.processes[0].argv)


def test_the_launcher_gives_kafkas_acls() -> None:
    """As zookeeper.set.acl: the brokers' identity may do anything; others read, except credentials."""
    from kazoo.security import Permissions

    from contrail_ha.services import kafka_users

    for path in ("", "/brokers/ids/1", "/kafka-acl/Topic/x", "/config/topics/t"):
        acl = kafka_users.acls_for(path, "contrail-kafka")
        assert {(a.id.scheme, a.id.id, a.perms) for a in acl} == {
            ("sasl", "contrail-kafka", Permissions.ALL), ("world", "anyone", Permissions.READ)}, path
    for path in ("/config/users", "/config/users/contrail-monitor", "/config/brokers/1", "/delegation_token"):
        acl = kafka_users.acls_for(path, "contrail-kafka")
        assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("sasl", "contrail-kafka", Permissions.ALL)], path
    cfg = kafka_users.UsersConfig(zookeeper="127.0.0.1:2181", chroot="/c-kafka", users=[], acls=[],
                                  zookeeper_user="contrail-kafka", zookeeper_password="pw")
    zk = kafka_users.client(cfg)
    try:
        assert [(a.id.scheme, a.id.id) for a in zk.default_acl] == [("sasl", "contrail-kafka")]
        assert "pw" not in repr(cfg)
    finally:
        zk.close()
