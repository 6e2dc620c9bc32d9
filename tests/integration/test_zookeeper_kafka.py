"""A real 3-node ZooKeeper ensemble and 3 Kafka brokers (ZooKeeper mode) on 127.0.20.1..3.

ZooKeeper: one leader; kill -9 of the leader keeps a kazoo session serving writes and reads and
a new leader is elected; the killed node rejoins as a follower. Kafka: three brokers register
under the chroot, a topic with RF 3 / min.insync.replicas 2 is created explicitly, and a message
is produced with acks=all and consumed back.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from kazoo.client import KazooClient, KazooState

from contrail_ha.probes import kafka as kafka_probe
from contrail_ha.probes import zookeeper as zk_probe
from contrail_ha.probes.base import Check
from contrail_ha.rendering import kafka as kafka_render
from contrail_ha.rendering import zookeeper as zk_render
from contrail_ha.rendering.base import DEFAULT_CACHE, Layout, ProcessSpec
from contrail_ha.runtime import health as container_health
from contrail_ha.services.kafka_login import client_config
from contrail_ha.topology.plan import KAFKA, ZOOKEEPER, Instance, Plan
from tests.helpers import proc
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PREFIX = "127.0.20"
TOPIC = "ha-test"
RDKAFKA_LOG = logging.getLogger("test.rdkafka")


class Servers:
    """The processes this test started, by component and host; stopped by PID only."""

    def __init__(self, plan: Plan, layout: Layout, logdir: Path) -> None:
        self.plan, self.layout, self.logdir = plan, layout, logdir
        self.procs: dict[tuple[str, str], tuple[subprocess.Popen[bytes], ProcessSpec]] = {}
        self.order: list[str] = []

    def start(self, inst: Instance) -> subprocess.Popen[bytes]:
        render = zk_render.render if inst.component == ZOOKEEPER else kafka_render.render
        r = render(self.plan, inst, self.layout)
        proc.write_files(r)
        [spec] = r.processes
        p = proc.start(spec, self.logdir / f"{inst.host.name}-{spec.name}.log")
        self.procs[(inst.component, inst.host.name)] = (p, spec)
        if inst.component not in self.order:
            self.order.append(inst.component)
        return p

    def kill9(self, inst: Instance) -> None:
        p, _ = self.procs[(inst.component, inst.host.name)]
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)

    def stop_all(self) -> None:
        """Stop components in reverse start order (Kafka before its ZooKeeper), by PID."""
        for component in reversed(self.order):
            for (c, _), (p, spec) in reversed(self.procs.items()):
                if c == component:
                    t0 = time.monotonic()
                    proc.stop(p, spec)
                    print(f"stopped {c} pid {p.pid} in {time.monotonic() - t0:.2f}s")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    plan = loopback_plan(PREFIX, 3)
    layout = Layout(tmp_path / "root", cache=DEFAULT_CACHE)
    proc.require_runtime(layout, "zookeeper", "kafka")
    s = Servers(plan, layout, tmp_path / "logs")
    try:
        yield s
    finally:
        s.stop_all()


def _health(processes: list[ProcessSpec]) -> str:
    [p] = processes
    assert p.health, p
    return p.health


def _quorum(plan: Plan, layout: Layout) -> Check | None:
    cluster = zk_probe.checks(plan, layout)[-1]
    return cluster if cluster.ok else None


def _all_serving(plan: Plan) -> list[Check] | None:
    nodes = zk_probe.node_checks(plan)
    return nodes if all(c.ok for c in nodes) else None


def test_zookeeper_ensemble_and_kafka(servers: Servers) -> None:
    plan, layout = servers.plan, servers.layout
    timings: dict[str, float] = {}

    # --- ZooKeeper: cold start of 3 -> one leader ------------------------------------------
    t0 = time.monotonic()
    for inst in plan.of(ZOOKEEPER):
        servers.start(inst)
    proc.wait_for(lambda: _quorum(plan, layout), 60, "zookeeper quorum")
    timings["zk_quorum_formation"] = time.monotonic() - t0
    # A quorum needs only a majority; the third server serves once it has synced with the leader.
    proc.wait_for(lambda: _all_serving(plan), 30, "all three zookeeper servers serving")
    nodes = zk_probe.node_checks(plan)
    assert all(c.ok for c in nodes), nodes
    assert sorted(c.detail for c in nodes) == ["follower", "follower", "leader"]
    for inst in plan.of(ZOOKEEPER):
        assert zk_probe.ready(plan, layout, inst)[0]
        assert container_health.probe(_health(zk_render.render(plan, inst, layout).processes)) is None
    old = zk_probe.leader(plan)
    assert old is not None

    # --- kill -9 the leader: the session keeps serving, a new leader is elected -------------
    zk = KazooClient(hosts=plan.zookeeper_servers, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.create("/ha-test/before", b"1", makepath=True)
        session = zk.client_id[0]
        t0 = time.monotonic()
        servers.kill9(old)
        new = proc.wait_for(lambda: (lambda ld: ld if ld is not None and ld != old else None)(
            zk_probe.leader(plan)), 30, "new zookeeper leader", interval=0.05)
        timings["zk_leader_reelection"] = time.monotonic() - t0
        assert isinstance(new, Instance) and new.host.name != old.host.name
        zk.retry(zk.create, "/ha-test/after", b"2")
        assert zk.retry(zk.get, "/ha-test/after")[0] == b"2"
        assert zk.retry(zk.get, "/ha-test/before")[0] == b"1"
        timings["zk_write_read_after_kill"] = time.monotonic() - t0
        assert zk.state == KazooState.CONNECTED
        assert zk.client_id[0] == session, "the session did not survive the leader change"
        assert container_health.probe(_health(zk_render.render(plan, old, layout).processes)) is not None
        proc.wait_for(lambda: _quorum(plan, layout), 10, "quorum of the two survivors")
        by_host = {c.target: c for c in zk_probe.checks(plan, layout)}
        assert not by_host[old.host.name].ok
        assert by_host["cluster"].ok and by_host["cluster"].data["serving"] == 2
        assert by_host["cluster"].data["leader"] == new.host.name

        # --- the killed node rejoins as a follower --------------------------------------------
        t0 = time.monotonic()
        servers.start(old)
        proc.wait_for(lambda: zk_probe.ready(plan, layout, old) == (True, "follower"), 60,
                      "restarted zookeeper as follower", interval=0.1)
        timings["zk_rejoin_as_follower"] = time.monotonic() - t0
        assert zk_probe.checks(plan, layout)[-1].data["serving"] == 3
    finally:
        zk.stop()
        zk.close()

    # --- Kafka: three brokers register under the chroot -------------------------------------
    # a chroot left from before zookeeper.set.acl: world-writable znodes the launcher must lock
    planted = f"{plan.kafka_chroot}/planted/deep"  # no path Kafka reads
    zk = KazooClient(hosts=plan.zookeeper_servers, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.create(planted, b"{}", makepath=True)
    finally:
        zk.stop()
        zk.close()
    t0 = time.monotonic()
    for inst in plan.of(KAFKA):
        servers.start(inst)
    for inst in plan.of(KAFKA):
        proc.wait_for(lambda inst=inst: kafka_probe.ready(plan, layout, inst)[0], 120,
                      f"kafka broker {inst.index}")
    timings["kafka_3_brokers_registered"] = time.monotonic() - t0
    kchecks = kafka_probe.checks(plan, layout)
    brokers = [c for c in kchecks if c.target != "cluster"]
    assert [c.target for c in brokers] == ["n1", "n2", "n3"]
    for inst in plan.of(KAFKA):  # the container's health: the listener accepts (just after registration)
        url = _health(kafka_render.render(plan, inst, layout).processes)
        proc.wait_for(lambda url=url: container_health.probe(url) is None, 30, f"kafka health {url}")
    assert all(c.ok for c in brokers), brokers
    # the cluster's metadata (from any broker) lists a broker a moment after its registration
    kchecks = proc.wait_for(lambda: (lambda c: c if c[-1].data.get("brokers") == [0, 1, 2] else None)(
        kafka_probe.checks(plan, layout)), 30, "every broker in the cluster's metadata")
    assert kchecks[-1].data["brokers"] == [0, 1, 2]

    # --- an explicit topic with RF 3 and min.insync.replicas 2 (as the brokers' user) -------
    admin = kafka_render.login(layout, kafka_render.BROKER_USER)
    t0 = time.monotonic()
    # True: this call created it. Under heavy load the first create can answer a timeout after it
    # applied; the retry then finds the topic (False). Either way it exists as asked (checked below).
    assert kafka_probe.ensure_topic(plan, TOPIC, 1, rf=3, min_insync=2, auth=admin) in (True, False)
    timings["kafka_topic_create"] = time.monotonic() - t0
    # Idempotent; an existing topic gets min.insync.replicas aligned.
    assert kafka_probe.ensure_topic(plan, TOPIC, 1, rf=3, min_insync=1, auth=admin) is False
    assert kafka_probe.describe_topic(plan, TOPIC, auth=admin)["min.insync.replicas"] == 1
    assert kafka_probe.ensure_topic(plan, TOPIC, 1, rf=3, min_insync=2, auth=admin) is False
    desc = kafka_probe.describe_topic(plan, TOPIC, auth=admin)
    assert desc["replication_factor"] == 3
    assert desc["min.insync.replicas"] == 2
    [part] = desc["partitions"]
    assert sorted(part["replicas"]) == [0, 1, 2]
    assert part["leader"] in part["replicas"]

    # --- produce with acks=all, consume it back ---------------------------------------------
    t0 = time.monotonic()
    errors: list[object] = []
    producer = Producer({"bootstrap.servers": plan.kafka_servers, "acks": "all", "logger": RDKAFKA_LOG,
                         "enable.idempotence": True, "message.timeout.ms": 30000, **client_config(admin)})
    producer.produce(TOPIC, key=b"k", value=b"hello", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None]
    del producer
    consumer = Consumer({"bootstrap.servers": plan.kafka_servers, "group.id": "ha-test", "logger": RDKAFKA_LOG,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **client_config(admin)})
    try:
        consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        got = None
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got = msg
    finally:
        consumer.close()
    assert got is not None and got.key() == b"k" and got.value() == b"hello"
    timings["kafka_produce_consume"] = time.monotonic() - t0

    health = proc.wait_for(lambda: (lambda c: c if c.ok else None)(kafka_probe.checks(plan, layout)[-1]),
                           30, "no under-replicated partitions")
    assert health.data["under_replicated"] == []

    _logins_and_acls(plan, layout)
    _znodes_locked(plan, layout, planted)
    print("\ntimings (s): " + ", ".join(f"{k}={v:.2f}" for k, v in timings.items()))


def _refused_metadata(plan: Plan, conf: dict[str, str]) -> str:
    """The error of a metadata request with ``conf`` (it must fail)."""
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": plan.kafka_servers, "socket.timeout.ms": 3000, "logger": RDKAFKA_LOG,
                     **conf})
    with pytest.raises(KafkaException) as info:
        a.list_topics(timeout=5)
    return str(info.value)


def _logins_and_acls(plan: Plan, layout: Layout) -> None:
    """Issue 13: no anonymous client, no wrong password; each user only what its ACLs allow."""
    from confluent_kafka.admin import AdminClient, NewTopic

    _refused_metadata(plan, {})  # plaintext: the listener speaks SASL only
    _refused_metadata(plan, client_config((kafka_render.COLLECTOR_USER, "guess")))  # librdkafka: no broker
    agg = client_config(kafka_render.login(layout, kafka_render.AGGREGATOR_USER))
    errors: list[object] = []
    p = Producer({"bootstrap.servers": plan.kafka_servers, "logger": RDKAFKA_LOG, "message.timeout.ms": 10000, **agg})
    p.produce(TOPIC, value=b"x", on_delivery=lambda err, _m: errors.append(err))  # not its topic
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None and "AUTHORIZATION" in str(errors[0]), errors  # type: ignore[unreachable]
    a = AdminClient({"bootstrap.servers": plan.kafka_servers, "logger": RDKAFKA_LOG, **agg})
    fut = a.create_topics([NewTopic(f"{plan.cluster_id}-planted", num_partitions=1, replication_factor=1)],
                          request_timeout=15)[f"{plan.cluster_id}-planted"]
    with pytest.raises(KafkaException, match="AUTHORIZATION"):
        fut.result(20)
    col = client_config(kafka_render.login(layout, kafka_render.COLLECTOR_USER))
    a = AdminClient({"bootstrap.servers": plan.kafka_servers, "logger": RDKAFKA_LOG, **col})
    fut = a.create_topics([NewTopic("outside-the-prefix", num_partitions=1, replication_factor=1)],
                          request_timeout=15)["outside-the-prefix"]
    with pytest.raises(KafkaException, match="AUTHORIZATION"):
        fut.result(20)
    c = Consumer({"bootstrap.servers": plan.kafka_servers, "group.id": f"{plan.cluster_id}-x", "logger": RDKAFKA_LOG,
                  "auto.offset.reset": "earliest", **col})
    try:
        c.subscribe([TOPIC])
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is not None:
                err = m.error()
        assert err is not None and "AUTHORIZATION" in str(err), err  # the collector reads nothing
    finally:
        c.close()


def _znodes_locked(plan: Plan, layout: Layout, planted: str) -> None:
    """Issue 13: every znode of Kafka's chroot is the brokers' SASL identity's (the planted one
    too): anyone may read the brokers' metadata, nobody else write it, nor read the credentials."""
    from kazoo.exceptions import NoAuthError
    from kazoo.security import OPEN_ACL_UNSAFE, Permissions

    root = plan.kafka_chroot
    anon = KazooClient(hosts=plan.zookeeper_servers, timeout=10.0)
    kafka = KazooClient(hosts=plan.zookeeper_servers, timeout=10.0, sasl_options={
        "mechanism": "DIGEST-MD5", "username": zk_render.KAFKA_USER,
        "password": zk_render.password(layout, zk_render.KAFKA_USER)})
    anon.start(timeout=15)
    kafka.start(timeout=15)
    try:
        seen, todo = 0, [root]
        while todo:
            path = todo.pop()
            acl, _ = kafka.get_acls(path)
            ids = {(a.id.scheme, a.id.id, a.perms) for a in acl}
            assert ("sasl", zk_render.KAFKA_USER, Permissions.ALL) in ids, (path, acl)
            assert ids <= {("sasl", zk_render.KAFKA_USER, Permissions.ALL), ("world", "anyone", Permissions.READ)}, \
                (path, acl)
            todo.extend(f"{path}/{c}" for c in kafka.get_children(path))
            seen += 1
        assert seen > 20  # brokers, topics, partitions, users, ACLs
        assert anon.get_children(f"{root}/brokers/ids")  # the brokers' registrations are public
        for call, args in ((anon.create, (f"{root}/brokers/ids/9", b"{}")), (anon.set, (planted, b"x")),
                           (anon.delete, (f"{root}/brokers/topics/{TOPIC}",)),
                           (anon.set_acls, (f"{root}/kafka-acl", OPEN_ACL_UNSAFE)),
                           (anon.create, (f"{root}/kafka-acl/Topic/planted", b"{}")),
                           (anon.get, (f"{root}/config/users/{kafka_render.MONITOR_USER}",))):
            with pytest.raises(NoAuthError):
                call(*args)
        assert kafka.get(planted)[0] == b"{}"
    finally:
        for c in (anon, kafka):
            c.stop()
            c.close()
