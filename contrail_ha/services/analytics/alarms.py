"""Alarm rules, evaluated by the aggregator on each aggregated UVE (the original's system-defined alarms).

A rule reads the UVE's merged structs (and which origins are stale) and returns zero or one
alarm. Alarms are stored with the UVE as ``UVEAlarms`` and listed by ``/analytics/alarms``.
Severity as in Contrail: 0 critical, 1 major, 2 minor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contrail_ha.services.analytics.protocol import CONN_UP, FUNCTIONAL, PROCESS_RUNNING

PREFIX = "default-global-system-config:system-defined-"
CRITICAL, MAJOR, MINOR = 0, 1, 2
NODE_AGENT = "contrail-node-agent"


@dataclass(frozen=True)
class Uve:
    """What a rule sees: the merged structs, and the node agent's state."""

    table: str
    key: str
    value: dict[str, Any]
    agent_age_s: float | None  # seconds since the node agent last reported; None if it never did


Rule = Callable[[Uve], tuple[int, str] | None]  # (severity, description) or None


def process_status(u: Uve) -> tuple[int, str] | None:
    procs = u.value.get("NodeStatus", {}).get("process_info", [])
    down = [p for p in procs if p.get("process_state") != PROCESS_RUNNING]
    if not down:
        return None
    return CRITICAL, "Process(es) not running: " + ", ".join(
        f"{p.get('process_name')} ({p.get('process_state')}{': ' + p['last_exit'] if p.get('last_exit') else ''})"
        for p in down)


def process_connectivity(u: Uve) -> tuple[int, str] | None:
    bad: list[str] = []
    for ps in u.value.get("NodeStatus", {}).get("process_status", []):
        who = f"{ps.get('module_id')}:{ps.get('instance_id')}"
        conns = [c for c in ps.get("connection_infos", []) if c.get("status") != CONN_UP]
        if conns:
            bad += [f"{who} {c.get('type')}:{c.get('name')} {c.get('status')} ({c.get('description', '')})"
                    for c in conns]
        elif ps.get("state") != FUNCTIONAL:
            bad.append(f"{who} {ps.get('state')} ({ps.get('description', '')})")
    if not bad:
        return None
    return MAJOR, "Process connectivity: " + "; ".join(bad)


def generator_stalled(u: Uve) -> tuple[int, str] | None:
    """A process whose analytics records do not get through (waiting over 30 s, or its queue full and
    dropping): its config logs and messages are late or lost, though the process itself may be fine."""
    bad: list[str] = []
    for ps in u.value.get("NodeStatus", {}).get("process_status", []):
        g = ps.get("generator") or {}
        if g.get("stalled"):
            counts = ", ".join(f"{g[k]} {k}" for k in ("dropped", "refused", "truncated") if g.get(k))
            bad.append(f"{ps.get('module_id')}:{ps.get('instance_id')} ({g.get('reason', '')}"
                       f"{'; ' + counts if counts else ''})")
    if not bad:
        return None
    return MAJOR, "Generator(s) stalled, analytics records not delivered: " + "; ".join(bad)


def clock_skew(u: Uve) -> tuple[int, str] | None:
    """A contrail-api replica refusing writes because its clock cannot be vouched for (off the
    cluster's by more than the bound, unmeasured, or stepped): fix its time source (NTP)."""
    bad = [f"{ps.get('module_id')}:{ps.get('instance_id')} ({ps['clock'].get('reason', '')})"
           for ps in u.value.get("NodeStatus", {}).get("process_status", [])
           if isinstance(ps.get("clock"), dict) and ps["clock"].get("refusing_writes")]
    if not bad:
        return None
    return MAJOR, "Clock skew, writes refused: " + "; ".join(bad)


def node_status(u: Uve, stale_after_s: float = 30.0) -> tuple[int, str] | None:
    if u.agent_age_s is None or u.agent_age_s <= stale_after_s:
        return None
    return CRITICAL, (f"Node failure: NodeStatus of {u.key} not reported for more than {stale_after_s:.0f}s "
                      f"(node agent down or host unreachable)")


def zookeeper_quorum(u: Uve) -> tuple[int, str] | None:
    zk = u.value.get("ZookeeperStatus")
    if not zk or zk.get("serving", True):
        return None
    return CRITICAL, f"ZooKeeper on {u.key} is not serving (no quorum): {zk.get('mode') or zk.get('detail', '')}"


def cassandra_node_down(u: Uve) -> tuple[int, str] | None:
    c = u.value.get("CassandraStatus")
    if not c:
        return None
    down = [n.get("address") for n in c.get("nodes", []) if n.get("status") != "U"]
    if not down:
        return None
    return MAJOR, f"Cassandra {c.get('cluster', '')}: node(s) down as seen from {u.key}: {', '.join(map(str, down))}"


def kafka_under_replicated(u: Uve) -> tuple[int, str] | None:
    k = u.value.get("KafkaStatus")
    if not k:
        return None
    under, offline = k.get("under_replicated_partitions", 0), k.get("offline_partitions", 0)
    if not under and not offline:
        return None
    return MAJOR, f"Kafka: {under} under-replicated and {offline} offline partition(s)"


def rabbitmq_cluster(u: Uve) -> tuple[int, str] | None:
    r = u.value.get("RabbitmqStatus")
    if not r:
        return None
    if r.get("partitions"):
        return CRITICAL, f"RabbitMQ partitioned as seen from {r.get('node', u.key)}: {r['partitions']}"
    missing = sorted(set(r.get("cluster_nodes", [])) - set(r.get("running_nodes", [])))
    if missing:
        return MAJOR, f"RabbitMQ nodes not running as seen from {r.get('node', u.key)}: {', '.join(missing)}"
    return None


def lb_backends(u: Uve) -> tuple[int, str] | None:
    h = u.value.get("HaproxyStatus")
    if not h:
        return None
    down = [f"{b['name']}/{s['name']} {s['status']}" for b in h.get("backends", []) for s in b.get("servers", [])
            if not str(s.get("status", "")).startswith("UP")]
    if not down:
        return None
    return MAJOR, "HAProxy backend server(s) out of rotation: " + ", ".join(down)


def lb_vip(u: Uve) -> tuple[int, str] | None:
    a = u.value.get("LbAgentStatus")
    if not a or a.get("announced", True):
        return None
    return MAJOR, f"lb {u.key} withdrew the VIP: {a.get('reason', '')}"


RULES: dict[str, Rule] = {
    "process-status": process_status,
    "process-connectivity": process_connectivity,
    "node-status": node_status,
    "generator-stalled": generator_stalled,
    "clock-skew": clock_skew,
    "zookeeper-quorum": zookeeper_quorum,
    "cassandra-node-down": cassandra_node_down,
    "kafka-under-replicated": kafka_under_replicated,
    "rabbitmq-partitioned": rabbitmq_cluster,
    "lb-backend-down": lb_backends,
    "lb-vip-withdrawn": lb_vip,
}


def evaluate(u: Uve, now_us: int, previous: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The UVE's alarms. An alarm still raised keeps its first timestamp (and acknowledgement)."""
    before = {a["type"]: a for a in previous or []}
    out: list[dict[str, Any]] = []
    for name, rule in RULES.items():
        hit = rule(u)
        if hit is None:
            continue
        severity, description = hit
        kind = PREFIX + name
        old = before.get(kind)
        out.append({"type": kind, "severity": severity, "description": description,
                    "timestamp": old["timestamp"] if old else now_us, "ack": bool(old and old.get("ack"))})
    return out
