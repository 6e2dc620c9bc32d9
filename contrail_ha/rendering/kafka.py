"""Kafka 3.9 broker in ZooKeeper mode on an analyticsdb host (Contrail's kafka container).

``broker.id`` is the host's recorded identity (``topology.identity``); the brokers share
the controllers' ZooKeeper under the chroot ``plan.kafka_chroot`` (Kafka creates it). Topics
are created explicitly (the analytics topics by ``services.analytics.topics``, others by
``probes.kafka.ensure_topic``), so auto-creation is off. Durability:
RF and ``min.insync.replicas`` from the topology, no unclean leader election. The JVM is
started directly (no distribution scripts), logging through slf4j-reload4j.
"""

from __future__ import annotations

import json
from pathlib import Path

from contrail_ha.rendering import zookeeper
from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered, jvm_heap_flags, python
from contrail_ha.services.kafka_login import MECHANISM, PROTOCOL
from contrail_ha.topology.plan import KAFKA, ZOOKEEPER, Instance, Plan

JAVA = "java"
MAIN_CLASS = "kafka.Kafka"

ZK_SESSION_MS = 6000  # broker death noticed in ~6 s; survives a ZooKeeper leader change (<3 s)
ZK_CONNECT_MS = 30000  # how long a starting broker waits for ZooKeeper before giving up
REPLICA_LAG_MS = 10000  # a silent follower leaves the ISR after 10 s (stock 30 s)
RETENTION_HOURS = 24  # Contrail: 24 h / 256 MB
RETENTION_BYTES = 256 * 1024 * 1024
SEGMENT_BYTES = 64 * 1024 * 1024
INTERNAL_TOPIC_PARTITIONS = 10  # __consumer_offsets / __transaction_state (stock 50)


# Users (SASL/SCRAM-SHA-512, passwords generated once per cluster) and what each may do; nothing
# else is allowed (AclAuthorizer, allow.everyone.if.no.acl.found=false). The brokers' own user is
# the only super user (inter-broker traffic, and the operator's topic tools).
BROKER_USER = "contrail-kafka"
COLLECTOR_USER = "contrail-collector"  # makes the analytics topics, produces to them
AGGREGATOR_USER = "contrail-aggregator"  # consumes them in its group
MONITOR_USER = "contrail-monitor"  # cluster and topic metadata: the probes, node agents, readiness
USERS = (BROKER_USER, COLLECTOR_USER, AGGREGATOR_USER, MONITOR_USER)


def password(layout: Layout, user: str) -> str:
    return layout.secret(f"kafka-{user}")


def login(layout: Layout, user: str) -> tuple[str, str]:
    """``(user, password)`` of a Kafka user of this cluster."""
    return user, password(layout, user)


def acls(plan: Plan) -> list[dict[str, object]]:
    """Every ACL of the cluster's users (the analytics topics and group share the cluster's prefix)."""
    prefix = f"{plan.cluster_id}-"
    return [
        {"user": COLLECTOR_USER, "resource": "Topic", "pattern": "PREFIXED", "name": prefix,
         "operations": ["Create", "Write", "Describe", "DescribeConfigs"]},
        {"user": COLLECTOR_USER, "resource": "Cluster", "name": "kafka-cluster", "operations": ["IdempotentWrite"]},
        {"user": AGGREGATOR_USER, "resource": "Topic", "pattern": "PREFIXED", "name": prefix,
         "operations": ["Read", "Describe"]},
        {"user": AGGREGATOR_USER, "resource": "Group", "pattern": "PREFIXED", "name": prefix,
         "operations": ["Read", "Describe"]},
        {"user": MONITOR_USER, "resource": "Topic", "name": "*", "operations": ["Describe", "DescribeConfigs"]},
        {"user": MONITOR_USER, "resource": "Cluster", "name": "kafka-cluster", "operations": ["Describe"]},
    ]


def users_config(plan: Plan, layout: Layout) -> dict[str, object]:
    """``users.json``: what the broker's launcher writes into ZooKeeper (services.kafka_users)."""
    return {"zookeeper": plan.zookeeper_servers, "chroot": plan.kafka_chroot,
            "zookeeper_user": zookeeper.KAFKA_USER,
            "zookeeper_password": zookeeper.password(layout, zookeeper.KAFKA_USER),
            "users": [{"name": u, "password": password(layout, u)} for u in USERS], "acls": acls(plan)}


def monitor_file(layout: Layout, inst: Instance) -> Path:
    """The monitor's login as rendered on ``inst``'s host, for the probes there."""
    return layout.conf(inst.host.name, inst.name) / "monitor.json"


def broker_id(plan: Plan, inst: Instance) -> int:
    """The Kafka broker.id of the instance's host."""
    return plan.broker_id(inst.host)


def server_properties(plan: Plan, inst: Instance, layout: Layout) -> str:
    """The text of server.properties for ``inst``."""
    r = plan.topology.replication
    rf = r.kafka
    min_isr = min(r.kafka_min_insync, rf)
    listener = f"{PROTOCOL}://{inst.ip}:{plan.ports.kafka}"
    cpus = plan.topology.cpus(inst.host)
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{BROKER_USER}" '
            f'password="{password(layout, BROKER_USER)}";')
    props: list[tuple[str, object]] = [
        ("broker.id", broker_id(plan, inst)),
        ("broker.id.generation.enable", "false"),
        ("listeners", listener),
        ("advertised.listeners", listener),
        ("inter.broker.listener.name", PROTOCOL),
        # Every connection logs in (SCRAM), the brokers' too; nothing is allowed without an ACL.
        ("sasl.enabled.mechanisms", MECHANISM),
        ("sasl.mechanism.inter.broker.protocol", MECHANISM),
        (f"listener.name.{PROTOCOL.lower()}.{MECHANISM.lower()}.sasl.jaas.config", jaas),
        ("authorizer.class.name", "kafka.security.authorizer.AclAuthorizer"),
        ("super.users", f"User:{BROKER_USER}"),
        ("allow.everyone.if.no.acl.found", "false"),
        # ZooKeeper mode (no process.roles / node.id), no KRaft migration.
        ("zookeeper.connect", plan.kafka_zookeeper_connect),
        ("zookeeper.session.timeout.ms", ZK_SESSION_MS),
        ("zookeeper.connection.timeout.ms", ZK_CONNECT_MS),
        ("zookeeper.metadata.migration.enable", "false"),
        # Every znode the brokers create is their SASL identity's (world-readable where Kafka says
        # it may be, never the credentials): nobody else can rewrite the ACLs, topics or brokers.
        ("zookeeper.set.acl", "true"),
        ("log.dirs", layout.data(inst.host.name, inst.name)),
        # Durability and fail-over.
        ("default.replication.factor", rf),
        ("min.insync.replicas", min_isr),
        ("unclean.leader.election.enable", "false"),
        ("offsets.topic.replication.factor", rf),
        ("offsets.topic.num.partitions", INTERNAL_TOPIC_PARTITIONS),
        ("transaction.state.log.replication.factor", rf),
        ("transaction.state.log.min.isr", min_isr),
        ("transaction.state.log.num.partitions", INTERNAL_TOPIC_PARTITIONS),
        ("replica.lag.time.max.ms", REPLICA_LAG_MS),
        ("controlled.shutdown.enable", "true"),
        # The last broker of a stopping cluster cannot hand its leaderships over: retry fast.
        ("controlled.shutdown.max.retries", 3),
        ("controlled.shutdown.retry.backoff.ms", 1000),
        ("auto.leader.rebalance.enable", "true"),
        # Topics.
        ("num.partitions", 1),
        ("auto.create.topics.enable", "false"),
        ("delete.topic.enable", "true"),
        ("group.initial.rebalance.delay.ms", 0),
        # The aggregators' consumer group: a dead aggregator's partitions move within its 4 s session.
        ("group.min.session.timeout.ms", 1000),
        # Retention as in Contrail.
        ("log.retention.hours", RETENTION_HOURS),
        ("log.retention.bytes", RETENTION_BYTES),
        ("log.segment.bytes", SEGMENT_BYTES),
        ("log.retention.check.interval.ms", 300000),
        # Threads for the host's CPUs (jvm.cpus): 2 and 2 on the local cluster's two shared cores.
        ("num.network.threads", max(2, cpus // 2)),
        ("num.io.threads", max(2, cpus)),
        ("num.replica.fetchers", 1),
        ("num.recovery.threads.per.data.dir", 1),
        ("background.threads", 4),
        ("log.cleaner.threads", 1),
        ("log.cleaner.dedupe.buffer.size", 8 * 1024 * 1024),
    ]
    body = "\n".join(f"{k}={v}" for k, v in props)
    return "# Rendered by contrail-ha: do not edit.\n" + body + "\n"


def log4j_properties() -> str:
    """reload4j configuration; ``${kafka.logs.dir}`` is set on the command line."""
    return """# Rendered by contrail-ha: do not edit.
log4j.rootLogger=INFO, kafkaAppender, stdout

log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.kafkaAppender=org.apache.log4j.RollingFileAppender
log4j.appender.kafkaAppender.File=${kafka.logs.dir}/server.log
log4j.appender.kafkaAppender.MaxFileSize=10MB
log4j.appender.kafkaAppender.MaxBackupIndex=3
log4j.appender.kafkaAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.kafkaAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.stateChangeAppender=org.apache.log4j.RollingFileAppender
log4j.appender.stateChangeAppender.File=${kafka.logs.dir}/state-change.log
log4j.appender.stateChangeAppender.MaxFileSize=10MB
log4j.appender.stateChangeAppender.MaxBackupIndex=2
log4j.appender.stateChangeAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.stateChangeAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.controllerAppender=org.apache.log4j.RollingFileAppender
log4j.appender.controllerAppender.File=${kafka.logs.dir}/controller.log
log4j.appender.controllerAppender.MaxFileSize=10MB
log4j.appender.controllerAppender.MaxBackupIndex=2
log4j.appender.controllerAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.controllerAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.logger.org.apache.zookeeper=INFO
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.kafka.controller=INFO, controllerAppender
log4j.additivity.kafka.controller=false
log4j.logger.state.change.logger=INFO, stateChangeAppender
log4j.additivity.state.change.logger=false
"""


def render(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    """server.properties, log4j.properties and the kafka.Kafka process for one analyticsdb host."""
    if inst.component != KAFKA:
        raise ValueError(f"not a kafka instance: {inst.component}")
    host = inst.host.name
    conf = layout.conf(host, inst.name)
    data = layout.data(host, inst.name)
    logs = layout.logs(host, inst.name)
    props = conf / "server.properties"
    log4j = conf / "log4j.properties"
    users, monitor = conf / "users.json", monitor_file(layout, inst)
    jaas = conf / "zookeeper-jaas.conf"
    user, pw = login(layout, MONITOR_USER)
    argv = [
        # the launcher writes the users and ACLs into ZooKeeper, then execs the broker
        python(), "-m", "contrail_ha.services.kafka_users", str(users), "--",
        JAVA,
        *jvm_heap_flags(plan.topology.heap.kafka, plan.topology, inst.host),
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={logs}",
        f"-Djava.security.auth.login.config={jaas}",  # the brokers' ZooKeeper login (SASL)
        "-cp",
        layout.classpath("kafka"),
        MAIN_CLASS,
        str(props),
    ]
    return Rendered(
        files={props: server_properties(plan, inst, layout), log4j: log4j_properties(),
               users: json.dumps(users_config(plan, layout), indent=2) + "\n",
               monitor: json.dumps({"user": user, "password": pw}) + "\n",
               jaas: zookeeper.jaas_client(layout, zookeeper.KAFKA_USER)},
        # the brokers' password; every user's; the probes' login; the brokers' ZooKeeper login
        modes={props: 0o600, users: 0o600, monitor: 0o600, jaas: 0o600},
        dirs=[conf, data, logs],
        # A new broker registers in ZooKeeper at its first start and exits when no server answers
        # within its session timeout: it waits for ZooKeeper to serve (a quorum) first.
        processes=[ProcessSpec(name=inst.name, argv=argv, cwd=str(logs), stop_timeout=30.0,
                               health=f"tcp://{inst.address}", fresh_dir=str(data), join_any=True,
                               join_after=[f"zk://{z.address}" for z in plan.of(ZOOKEEPER)])],
    )
