"""ZooKeeper 3.8 ensemble member on a controller host (Contrail's zookeeper container).

``myid`` is the host's recorded identity (``topology.identity``) and every controller is a
``server.N=<ip>:<peer>:<election>`` line, as in Contrail's entrypoint. Timers are tuned for
fast fail-over: with tickTime 500 and syncLimit 4 a partitioned leader is replaced in ~2.5 s
(10 s with the stock 2000/5). The JVM is started directly (no distribution scripts), logging
through logback, which is on the resolved classpath.
"""

from __future__ import annotations

from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered, jvm_heap_flags
from contrail_ha.topology.plan import ZOOKEEPER, Instance, Plan

JAVA = "java"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

TICK_MS = 500
INIT_LIMIT = 20  # ticks a follower has to connect and sync to a new leader (10 s)
SYNC_LIMIT = 4  # ticks a follower may lag / go silent before it is dropped (2 s)
CNX_TIMEOUT_MS = 1000  # election connection timeout (stock 5 s) for unreachable peers
MIN_SESSION_MS = 2 * TICK_MS
MAX_SESSION_MS = 30000  # do not clamp clients asking for up to 30 s (stock would be 20 ticks)
FOUR_LETTER_WORDS = "srvr,stat,mntr,ruok,conf"
API_USER = "contrail-api"  # the digest identity that owns the cluster's znodes (/<cluster-id>)
# Kafka's ZooKeeper client authenticates only with SASL: the brokers (and their launcher) log in
# with DIGEST-MD5 as this user, which the servers know from their JAAS file, and every znode of
# Kafka's chroot is that identity's (zookeeper.set.acl).
KAFKA_USER = "contrail-kafka"
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
DIGEST_LOGIN = "org.apache.zookeeper.server.auth.DigestLoginModule"


def password(layout: Layout, user: str) -> str:
    """``user``'s ZooKeeper digest password: the cluster's random secret, made once."""
    return layout.secret(f"zookeeper-{user}")


def jaas_client(layout: Layout, user: str) -> str:
    """A client's JAAS file (section ``Client``, which ZooKeeper's client library reads): ``user``'s login."""
    return (f'Client {{\n  {DIGEST_LOGIN} required\n  username="{user}"\n'
            f'  password="{password(layout, user)}";\n}};\n')


def jaas_server(layout: Layout) -> str:
    """The servers' JAAS file: every SASL user's password (DIGEST-MD5 needs the server to know it)."""
    return (f"Server {{\n  {DIGEST_LOGIN} required\n"
            f'  user_{KAFKA_USER}="{password(layout, KAFKA_USER)}";\n}};\n')


# ZooKeeper's pom marks Dropwizard metrics-core and snappy-java "provided", yet the server loads
# both at start-up (NoClassDefFoundError com/codahale/metrics/Reservoir, then
# org/xerial/snappy/SnappyInputStream while taking the first snapshot). java/zookeeper/pom.xml
# should list them; until the cached classpath has them, add the jars from the project's Maven
# repository (versions as in ZooKeeper 3.8.4's parent pom).
def classpath(layout: Layout) -> str:
    """The resolved ZooKeeper classpath (java/zookeeper/pom.xml)."""
    return layout.classpath("zookeeper")


def myid(plan: Plan, inst: Instance) -> int:
    """The ZooKeeper server id of the instance's host."""
    return plan.myid(inst.host)


def zoo_cfg(plan: Plan, inst: Instance, layout: Layout) -> str:
    """The text of zoo.cfg for ``inst``."""
    p = plan.ports
    data = layout.data(inst.host.name, inst.name)
    lines = [
        "# Rendered by contrail-ha: do not edit.",
        f"tickTime={TICK_MS}",
        f"initLimit={INIT_LIMIT}",
        f"syncLimit={SYNC_LIMIT}",
        f"cnxTimeout={CNX_TIMEOUT_MS}",
        f"minSessionTimeout={MIN_SESSION_MS}",
        f"maxSessionTimeout={MAX_SESSION_MS}",
        f"dataDir={data}",
        f"clientPort={p.zookeeper}",
        f"clientPortAddress={inst.ip}",
        "maxClientCnxns=0",
        "preAllocSize=4096",  # KiB: 4 MiB transaction log chunks instead of 64 MiB
        "snapCount=10000",
        "autopurge.snapRetainCount=3",
        "autopurge.purgeInterval=1",
        f"4lw.commands.whitelist={FOUR_LETTER_WORDS}",
        "admin.enableServer=false",
        "reconfigEnabled=false",
        "quorumListenOnAllIPs=false",
        f"authProvider.sasl={SASL_PROVIDER}",  # SASL logins (Kafka's), next to the digest scheme
    ]
    for h in plan.controllers:
        lines.append(f"server.{plan.myid(h)}={h.ip}:{p.zookeeper_peer}:{p.zookeeper_election}")
    return "\n".join(lines) + "\n"


def logback_xml(log_dir: str) -> str:
    """Logback configuration: a size-rolled file, warnings also on stdout."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Rendered by contrail-ha: do not edit. -->
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{log_dir}/zookeeper.log</file>
    <encoder>
      <pattern>%d{{ISO8601}} [myid:%X{{myid}}] %-5level [%thread] %logger{{1}} - %msg%n</pattern>
    </encoder>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{log_dir}/zookeeper.log.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>10MB</maxFileSize>
    </triggeringPolicy>
  </appender>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%d{{ISO8601}} %-5level [%thread] %logger{{1}} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
    <appender-ref ref="CONSOLE"/>
  </root>
</configuration>
"""


def render(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    """zoo.cfg, myid, logback.xml and the QuorumPeerMain process for one controller."""
    if inst.component != ZOOKEEPER:
        raise ValueError(f"not a zookeeper instance: {inst.component}")
    host = inst.host.name
    conf = layout.conf(host, inst.name)
    data = layout.data(host, inst.name)
    logs = layout.logs(host, inst.name)
    cfg = conf / "zoo.cfg"
    logback = conf / "logback.xml"
    jaas = conf / "jaas.conf"
    argv = [
        JAVA,
        *jvm_heap_flags(plan.topology.heap.zookeeper, plan.topology, inst.host),
        "-Djava.awt.headless=true",
        f"-Dlogback.configurationFile={logback}",
        f"-Dzookeeper.log.dir={logs}",
        "-Dzookeeper.jmx.log4j.disable=true",
        f"-Djava.security.auth.login.config={jaas}",
        "-cp",
        classpath(layout),
        MAIN_CLASS,
        str(cfg),
    ]
    return Rendered(
        files={
            cfg: zoo_cfg(plan, inst, layout),
            data / "myid": f"{myid(plan, inst)}\n",
            logback: logback_xml(str(logs)),
            jaas: jaas_server(layout),
        },
        modes={jaas: 0o600},  # the SASL users' passwords
        dirs=[conf, data, logs],
        processes=[ProcessSpec(name=inst.name, argv=argv, cwd=str(logs), stop_timeout=15.0,
                               health=f"zk://{inst.address}")],
    )
