"""Cassandra 5.0 for the config DB and the analytics DB (one module, two clusters).

There is no Cassandra distribution: the daemon runs straight from the Maven classpath as
``setpriv ... java <flags> -cp <classpath> org.apache.cassandra.service.CassandraDaemon`` with a rendered
``cassandra.yaml`` and ``logback.xml``. Every node is tuned to be tiny and quick to start:
six of these JVMs share two cores with everything else.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import yaml

from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered, jvm_heap_flags, python
from contrail_ha.services.keyspaces import ANALYTICS_KEYSPACE, CONFIG_KEYSPACE, USERAGENT_KEYSPACE
from contrail_ha.topology.model import Host, Jit
from contrail_ha.topology.plan import ANALYTICS_DB, ANALYTICS_DB_JMX, CONFIG_DB, CONFIG_DB_JMX, Instance, Plan

MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
NUM_TOKENS = 16
RING_DELAY_MS = 5000  # default 30 s: how long a joining node waits for ring information

# Roles (PasswordAuthenticator + CassandraAuthorizer): Cassandra's default superuser
# (cassandra/cassandra) is replaced by ADMIN_ROLE, whose password is generated once per cluster;
# each client logs in as its own role, which holds only its keyspaces; probes log in as
# MONITOR_ROLE (system tables and the gossip view only). The role keeper on every node
# (contrail_ha.services.cassandra_roles) makes them.
ADMIN_ROLE = "contrail-admin"
MONITOR_ROLE = "contrail-monitor"
CLIENT_ROLE = {CONFIG_DB: "contrail-api", ANALYTICS_DB: "contrail-analytics"}
KEYSPACES = {CONFIG_DB: [CONFIG_KEYSPACE, USERAGENT_KEYSPACE], ANALYTICS_DB: [ANALYTICS_KEYSPACE]}
MONITOR_GRANTS = ["SELECT ON KEYSPACE system_views"]  # gossip_info: the ring as each node sees it
# Logins, roles and permissions keep Cassandra's cache times (2 s): a dropped role or a changed
# password stops working within them (a longer cache keeps a refused login valid while its refresh
# fails). The reads behind them go to a quorum of system_auth, which is on up to 3 nodes.
SUPERUSER_SETUP_DELAY_MS = 2000  # default 10 s: when a fresh ring makes the default superuser
# bcrypt cost of the stored passwords: 2^4 rounds (Cassandra's minimum; default 2^10). bcrypt's cost
# protects guessable human passwords; ours are 128-bit random secrets, and every new connection
# pays it: after a partition heals, every client reconnecting every second at 2^10 saturated the two
# cores for minutes (connections timed out, so they retried: 300 s to recover, seen in a drill).
BCRYPT_LOG2_ROUNDS = 4

# Cassandra mlockall()s the whole JVM at start; as root (CAP_IPC_LOCK) that succeeds and pins
# ~650 MB per node and costs start time. Without the capability it fails harmlessly (a warning)
# under the default 8 MiB RLIMIT_MEMLOCK, and a node stays at ~400 MB resident.
NO_MEMLOCK = ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--"]

# conf/jvm17-server.options of Cassandra 5.0: the JDK internals it reaches into.
JDK17_MODULE_FLAGS = [
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
]


@dataclass(frozen=True)
class DbCluster:
    """What differs between the two Cassandra clusters."""

    component: str
    cluster_name: str
    cql_port: int
    storage_port: int
    jmx_port: int
    heap_mb: int
    hosts: list[Host]


def cluster_of(plan: Plan, component: str) -> DbCluster:
    """The config-DB or analytics-DB cluster of ``plan``."""
    p, heap = plan.ports, plan.topology.heap
    if component == CONFIG_DB:
        return DbCluster(CONFIG_DB, plan.config_db_name, p.config_db_cql, p.config_db_storage,
                         CONFIG_DB_JMX, heap.config_db, plan.controllers)
    if component == ANALYTICS_DB:
        return DbCluster(ANALYTICS_DB, plan.analytics_db_name, p.analytics_db_cql, p.analytics_db_storage,
                         ANALYTICS_DB_JMX, heap.analytics_db, plan.analyticsdb)
    raise ValueError(f"not a Cassandra component: {component}")


def seeds(plan: Plan, component: str) -> list[str]:
    """``ip:storage_port`` of the cluster's seeds."""
    c = cluster_of(plan, component)
    return [f"{h.ip}:{c.storage_port}" for h in plan.seeds(component)]


def password(layout: Layout, component: str, role: str) -> str:
    """The generated password of ``role`` on the ``config-db`` or ``analytics-db`` cluster."""
    return layout.secret(f"{component}-{role}")


def login(layout: Layout, component: str, role: str) -> tuple[str, str]:
    """``(role, password)``: what a client of that cluster logs in with."""
    return role, password(layout, component, role)


def monitor_file(layout: Layout, inst: Instance) -> Path:
    """The monitor role's login as rendered on ``inst``'s host, for the probes there."""
    return layout.conf(inst.host.name, inst.name) / "monitor.json"


def roles_config(plan: Plan, inst: Instance, layout: Layout) -> dict:
    """What the node's role keeper makes: the admin, each role with its password, keyspaces and
    grants, and the replication of ``system_auth`` (every node holds the roles, up to 3)."""
    c = cluster_of(plan, inst.component)
    rf = plan.topology.replication.config_db if inst.component == CONFIG_DB else plan.topology.replication.analytics_db
    client = CLIENT_ROLE[inst.component]
    return {
        "ip": inst.ip, "port": c.cql_port, "component": inst.component,
        "admin": {"name": ADMIN_ROLE, "password": password(layout, inst.component, ADMIN_ROLE)},
        "roles": [
            {"name": client, "password": password(layout, inst.component, client),
             "keyspaces": KEYSPACES[inst.component], "grants": []},
            {"name": MONITOR_ROLE, "password": password(layout, inst.component, MONITOR_ROLE),
             "keyspaces": [], "grants": MONITOR_GRANTS},
        ],
        "keyspace_rf": rf,
        "system_auth_rf": min(3, len(c.hosts)),
    }


def cassandra_yaml(plan: Plan, inst: Instance, layout: Layout) -> dict:
    """The node's cassandra.yaml as a dict (5.0 key names, with units)."""
    c = cluster_of(plan, inst.component)
    data = layout.data(inst.host.name, inst.name)
    cpus = plan.topology.cpus(inst.host)
    return {
        "cluster_name": c.cluster_name,
        "num_tokens": NUM_TOKENS,  # random tokens: safe when every seed starts at once
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "storage_compatibility_mode": "NONE",  # a fresh 5.0-only cluster
        "seed_provider": [
            {
                "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                "parameters": [{"seeds": ",".join(seeds(plan, inst.component))}],
            }
        ],
        "listen_address": inst.ip,
        "rpc_address": inst.ip,
        "storage_port": c.storage_port,
        "ssl_storage_port": c.storage_port + 1,
        "native_transport_port": c.cql_port,
        "start_native_transport": True,
        "endpoint_snitch": "SimpleSnitch",
        "authenticator": "PasswordAuthenticator",
        "authorizer": "CassandraAuthorizer",
        "role_manager": "CassandraRoleManager",
        "data_file_directories": [str(data / "data")],
        "commitlog_directory": str(data / "commitlog"),
        "saved_caches_directory": str(data / "saved_caches"),
        "hints_directory": str(data / "hints"),
        "cdc_raw_directory": str(data / "cdc_raw"),
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        "commitlog_segment_size": "16MiB",
        "commitlog_total_space": "256MiB",
        "disk_failure_policy": "stop",
        "commit_failure_policy": "stop",
        # Pools for the host's CPUs (jvm.cpus); small on the local cluster, whose two cores are
        # shared by six Cassandra JVMs and the rest of the stack.
        "concurrent_reads": 2 * cpus,
        "concurrent_writes": 2 * cpus,
        "concurrent_counter_writes": cpus,
        "concurrent_materialized_view_writes": cpus,
        "concurrent_compactors": max(1, min(cpus // 2, 8)),
        "concurrent_validations": 1,
        "concurrent_materialized_view_builders": 1,
        "concurrent_index_builders": 1,
        "memtable_flush_writers": max(1, min(cpus // 4, 4)),
        "max_hints_delivery_threads": 1,
        "native_transport_max_threads": max(16, 8 * cpus),
        "compaction_throughput": "16MiB/s",
        "memtable_allocation_type": "heap_buffers",
        "key_cache_size": "8MiB",
        "row_cache_size": "0MiB",
        "counter_cache_size": "0MiB",
        "file_cache_size": "16MiB",
        "networking_cache_size": "8MiB",
        "hinted_handoff_enabled": True,
        "max_hint_window": "3h",
        "auto_snapshot": True,
        "gc_warn_threshold": "2000ms",
    }


def logback_xml(log_dir: Path) -> str:
    """Logs to ``system.log`` (INFO, size-rotated); warnings also to stdout for the supervisor."""
    return f"""<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{log_dir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{log_dir}/system.log.%i.zip</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter">
      <level>WARN</level>
    </filter>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG" />
    <appender-ref ref="STDOUT" />
  </root>
  <logger name="org.apache.cassandra" level="INFO" />
  <logger name="com.thinkaurelius.thrift" level="ERROR" />
</configuration>
"""


def jvm_flags(plan: Plan, inst: Instance, layout: Layout, classpath: str, *, jmx: bool = True) -> list[str]:
    """Every JVM flag and system property of the node (everything before ``-cp``)."""
    c = cluster_of(plan, inst.component)
    host, name = inst.host.name, inst.name
    conf, data, logs = layout.conf(host, name), layout.data(host, name), layout.logs(host, name)
    flags = [
        *jvm_heap_flags(c.heap_mb, plan.topology, inst.host),
        "-Xss256k",
        "-XX:+UseThreadPriorities",
        "-XX:+PerfDisableSharedMem",
        *(["-XX:TieredStopAtLevel=1"] if plan.topology.jvm.jit == Jit.C1 else []),  # C1: little JIT work at start
        f"-XX:ErrorFile={logs}/hs_err_%p.log",
        "-Djava.net.preferIPv4Stack=true",
        "-Djdk.attach.allowAttachSelf=true",
        *JDK17_MODULE_FLAGS,
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        "-Dchronicle.analytics.disable=true",
        "-Dchronicle.announcer.disable=true",
        f"-Dcassandra.config=file://{conf}/cassandra.yaml",
        f"-Dcassandra.storagedir={data}",
        f"-Dcassandra.logdir={logs}",
        f"-Dlogback.configurationFile=file://{conf}/logback.xml",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.ring_delay_ms={RING_DELAY_MS}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.memtable.row_overhead_size=180",  # skips a ~2 s measurement at start (value it finds)
        "-Dcassandra.shutdown_announce_in_ms=500",  # default 2 s pause after announcing a stop
        f"-Dcassandra.superuser_setup_delay_ms={SUPERUSER_SETUP_DELAY_MS}",
        f"-Dcassandra.auth_bcrypt_gensalt_log2_rounds={BCRYPT_LOG2_ROUNDS}",
    ]
    jamm = next((j for j in classpath.split(":") if "/jamm-" in j), None)
    if jamm:
        flags.append(f"-javaagent:{jamm}")  # object sizing for memtables and caches
    if jmx:
        # As cassandra-env.sh with LOCAL_JMX=yes: registry and RMI server on the loopback address only.
        flags += [f"-Dcassandra.jmx.local.port={c.jmx_port}", "-Dcom.sun.management.jmxremote.authenticate=false"]
    return flags


def joins_after(plan: Plan, inst: Instance) -> list[Instance]:
    """The nodes a new node must find serving before it bootstraps: none for a seed (seeds start
    together); for the others, every node before them, so that they join one at a time (Cassandra
    refuses a bootstrap while another node's is under way)."""
    nodes = plan.of(inst.component)
    seeds = {h.name for h in plan.seeds(inst.component)}
    if inst.host.name in seeds:
        return []
    return nodes[:[n.host.name for n in nodes].index(inst.host.name)]


def render(plan: Plan, inst: Instance, layout: Layout, *, jmx: bool = True) -> Rendered:
    """Files and process of one Cassandra node (``config-db`` or ``analytics-db``).

    ``jmx=False`` leaves JMX off: tests in the root namespace cannot all bind 127.0.0.1:7200/7201.
    """
    cluster_of(plan, inst.component)  # refuses other components
    host, name = inst.host.name, inst.name
    conf, data, logs = layout.conf(host, name), layout.data(host, name), layout.logs(host, name)
    classpath = layout.classpath("cassandra")
    argv = [*NO_MEMLOCK, "java", *jvm_flags(plan, inst, layout, classpath, jmx=jmx), "-cp", classpath, MAIN_CLASS]
    before = joins_after(plan, inst)
    roles, monitor = conf / "roles.json", monitor_file(layout, inst)
    user, pw = login(layout, inst.component, MONITOR_ROLE)
    return Rendered(
        files={
            conf / "cassandra.yaml": yaml.safe_dump(cassandra_yaml(plan, inst, layout), sort_keys=False),
            conf / "logback.xml": logback_xml(logs),
            roles: json.dumps(roles_config(plan, inst, layout), indent=2) + "\n",
            monitor: json.dumps({"user": user, "password": pw}) + "\n",
        },
        modes={roles: 0o600, monitor: 0o600},  # the cluster's Cassandra passwords; the probes' login
        dirs=[conf, data, logs, *(data / d for d in ("data", "commitlog", "saved_caches", "hints", "cdc_raw"))],
        processes=[
            ProcessSpec(
                name=name,
                argv=argv,
                env={"MALLOC_ARENA_MAX": "4"},
                cwd=str(data),
                stop_signal=signal.SIGTERM,
                stop_timeout=90.0,
                health=f"tcp://{inst.address}",  # CQL opens once the node has joined
                join_after=[f"tcp://{n.address}" for n in before],
                fresh_dir=str(data) if before else "",
            ),
            # Makes the roles once the node serves (idempotent on every node: any one suffices).
            ProcessSpec(name=f"{name}-roles", argv=[python(), "-m", "contrail_ha.services.cassandra_roles", str(roles)],
                        env={"PYTHONUNBUFFERED": "1"}, stop_signal=signal.SIGTERM, stop_timeout=5.0),
        ],
    )
