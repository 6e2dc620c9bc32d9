"""The component structs (``ZookeeperStatus``, ``RabbitmqStatus``, ``CassandraStatus``, ``KafkaStatus``,
``HaproxyStatus``, ``LbAgentStatus``, ``BirdStatus``) from what each probe answered: pure builders.

As in every struct of the agent, ``detail`` says what is wrong, and is empty when nothing is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from contrail_ha.probes import bird as bird_probe
from contrail_ha.probes import cassandra as cassandra_probe
from contrail_ha.probes import haproxy as haproxy_probe
from contrail_ha.probes import zookeeper as zookeeper_probe
from contrail_ha.rendering.bird import LB_PROTO
from contrail_ha.rendering.haproxy import BACKENDS
from contrail_ha.topology.model import LbProtocol

# Struct names
NODE_STATUS = "NodeStatus"
ZOOKEEPER_STATUS = "ZookeeperStatus"
RABBITMQ_STATUS = "RabbitmqStatus"
CASSANDRA_STATUS = "CassandraStatus"
KAFKA_STATUS = "KafkaStatus"
HAPROXY_STATUS = "HaproxyStatus"
LB_AGENT_STATUS = "LbAgentStatus"
BIRD_STATUS = "BirdStatus"

HEARTBEAT_STALE_S = 12.0  # a peer whose gossip heartbeat has not moved for this long is down (Cassandra: ~10-18 s)
LB_AGENT_STALE_S = 10.0  # the lb agent rewrites its state every 0.2 s

_LOG_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d+)?\s+")


def zookeeper_status(address: str, answer: str | None, error: str = "") -> dict[str, Any]:
    """``ZookeeperStatus`` from a ``srvr`` answer (``None``: the server did not answer, ``error`` says why).

    As in every struct of the agent, ``detail`` says what is wrong, and is empty when nothing is.
    """
    if answer is None:
        return {"address": address, "mode": "down", "serving": False, "detail": error or "no answer"}
    if zookeeper_probe.NOT_SERVING in answer:
        return {"address": address, "mode": "not serving", "serving": False,
                "detail": "not currently serving requests (no quorum)"}
    fields = zookeeper_probe.parse_srvr(answer)
    mode = fields.get("Mode", "")
    if mode not in zookeeper_probe.SERVING_MODES:
        return {"address": address, "mode": "not serving", "serving": False,
                "detail": f"unexpected srvr answer: {answer.strip()[:120]!r}"}
    return {"address": address, "mode": mode, "serving": True, "detail": ""}


def rabbitmq_status(node: str, cluster_status: Mapping[str, Any] | None, expected: Iterable[str] = (),
                    error: str = "") -> dict[str, Any]:
    """``RabbitmqStatus`` from the local node's ``cluster_status`` (``probes.rabbitmq.cluster_status``).

    When the node does not answer (``None``), nothing runs as far as it can tell: ``running_nodes``
    is empty and ``cluster_nodes`` the expected members (the plan's controllers).
    """
    if cluster_status is None:
        error = _LOG_TIME.sub("", error)  # the CLI's log lines start with a time: keep the detail stable
        return {"node": node, "running_nodes": [], "cluster_nodes": sorted(expected), "partitions": [],
                "detail": error or "no answer"}
    running = sorted(cluster_status.get("running_nodes") or [])
    members = sorted(set(cluster_status.get("disk_nodes") or []) | set(cluster_status.get("ram_nodes") or []))
    raw = cluster_status.get("partitions") or []
    if isinstance(raw, Mapping):
        partitions: list[Any] = [{"node": n, "unreachable": sorted(peers)} for n, peers in sorted(raw.items()) if peers]
    else:
        partitions = list(raw)
    alarms = cluster_status.get("alarms") or []
    detail = f"alarms: {alarms}" if alarms else ("" if node in running else f"{node} is not running")
    return {"node": node, "running_nodes": running, "cluster_nodes": members or running, "partitions": partitions,
            "detail": detail}


class HeartbeatTracker:
    """When each endpoint's gossip heartbeat last moved, as the local node's gossip shows it."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}

    def update(self, endpoints: Mapping[str, cassandra_probe.Gossip], now: float) -> dict[str, float]:
        """Seconds since each endpoint's (generation, heartbeat) last changed (0 when first seen)."""
        ages: dict[str, float] = {}
        for ip, g in endpoints.items():
            beat = (g.generation, g.heartbeat)
            prev = self._seen.get(ip)
            if prev is None or prev[0] != beat:
                self._seen[ip] = (beat, now)
                ages[ip] = 0.0
            else:
                ages[ip] = now - prev[1]
        return ages


def cassandra_status(cluster: str, local_ip: str, members: Iterable[str],
                     endpoints: Mapping[str, cassandra_probe.Gossip] | None, ages: Mapping[str, float] | None = None,
                     stale_s: float = HEARTBEAT_STALE_S, error: str = "") -> dict[str, Any]:
    """``CassandraStatus``: the ring as the local node's gossip shows it (``None``: the node does not answer).

    The local node is up when it answers. A peer is down when it announced shutdown, left, is not in
    the gossip at all, or its heartbeat has not moved for ``stale_s`` (``ages``, from HeartbeatTracker).
    """
    if endpoints is None:
        return {"cluster": cluster, "address": local_ip,
                "nodes": [{"address": local_ip, "status": "D", "state": "N"}], "detail": error or "no answer"}
    ages = ages or {}
    members = list(members)
    strangers = sorted(a for a, g in endpoints.items() if a not in members and g.status not in cassandra_probe.GONE)
    nodes: list[dict[str, str]] = []
    problems: list[str] = []
    for ip in [*members, *strangers]:
        g = endpoints.get(ip)
        state = cassandra_probe.STATE_LETTER.get(g.status, "N") if g is not None else "N"
        why = ""
        if ip == local_ip:
            pass  # it answered
        elif g is None:
            why = "not in the gossip"
        elif g.status in cassandra_probe.GONE:
            why = f"left the ring ({g.status})"
        elif g.status == "shutdown":
            why = "announced shutdown"
        elif not g.status:
            why = "no gossip status yet"
        elif ages.get(ip, 0.0) > stale_s:
            why = "gossip heartbeat stalled"
        if why:
            problems.append(f"{ip} {why}")
        if ip in strangers:
            problems.append(f"{ip} not in the topology")
        nodes.append({"address": ip, "status": "D" if why else "U", "state": state})
    return {"cluster": cluster, "address": local_ip, "nodes": nodes, "detail": "; ".join(problems)}


def kafka_status(broker: int, address: str, brokers: Mapping[int, str] | None,
                 partitions: Iterable[tuple[int, list[int], list[int]]] = (), error: str = "") -> dict[str, Any]:
    """``KafkaStatus`` from the cluster metadata: live brokers (id -> ``host:port``) and every partition as
    ``(leader, replicas, isr)``; ``brokers`` None when the metadata could not be read."""
    if brokers is None:
        return {"broker_id": broker, "address": address, "registered": False, "brokers": [],
                "under_replicated_partitions": 0, "offline_partitions": 0,
                "detail": f"metadata unavailable: {error}" if error else "metadata unavailable"}
    under = offline = 0
    for leader, replicas, isr in partitions:
        offline += leader < 0
        under += len(isr) < len(replicas)
    registered = brokers.get(broker) == address
    if registered:
        detail = ""
    elif broker in brokers:
        detail = f"broker {broker} registered as {brokers[broker]}, expected {address}"
    else:
        detail = f"broker {broker} not registered"
    return {"broker_id": broker, "address": address, "registered": registered, "brokers": sorted(brokers),
            "under_replicated_partitions": under, "offline_partitions": offline, "detail": detail}


def haproxy_status(rows: list[dict[str, str]] | None, error: str = "") -> dict[str, Any]:
    """``HaproxyStatus`` from ``show stat`` rows: every backend (the APIs', and any with servers) and its servers."""
    if rows is None:
        return {"backends": [], "detail": error or "no answer"}
    bes = haproxy_probe.backends(rows)
    out = [{"name": name, "servers": [{"name": s, "status": v["status"]} for s, v in sorted(b["servers"].items())]}
           for name, b in sorted(bes.items()) if name in BACKENDS or b["servers"]]
    missing = [n for n in BACKENDS if n not in bes]
    return {"backends": out, "detail": f"backend(s) missing: {', '.join(missing)}" if missing else ""}


def lb_agent_status(state: Mapping[str, Any] | None, now: float, error: str = "",
                    stale_s: float = LB_AGENT_STALE_S) -> dict[str, Any]:
    """``LbAgentStatus`` from the lb agent's state file (``None``: no state yet)."""
    if not state:
        return {"announced": False, "reason": error or "no state yet"}
    reason = str(state.get("reason", ""))
    at = state.get("at")
    if isinstance(at, int | float) and now - at > stale_s:
        reason = f"state not updated for more than {stale_s:.0f}s (lb agent not running?); last: {reason}"
    return {"announced": bool(state.get("announced")), "reason": reason}


def bird_status(protocol: str, protocols: Mapping[str, Mapping[str, Any]] | None,
                neighbours: list[dict[str, Any]] | None = None, error: str = "") -> dict[str, Any]:
    """``BirdStatus`` from ``show protocols`` (parsed) and, for Babel, ``show babel neighbors`` (parsed).

    BGP: one session per BGP protocol, its BGP state (``Established``...). Babel: one per neighbour,
    ``up`` or ``unreachable`` (infinite metric).
    """
    if protocols is None:
        return {"protocol": protocol, "sessions": [], "detail": error or "no answer"}
    problems: list[str] = []
    sessions: list[dict[str, str]] = []
    if protocol == LbProtocol.BGP.value:
        bgp = {n: p for n, p in protocols.items() if p.get("proto") == "BGP"}
        sessions = [{"name": n, "state": bird_probe.bgp_state(dict(p))} for n, p in sorted(bgp.items())]
        problems += [f"{s['name']} {s['state']}" for s in sessions if s["state"] != "Established"]
        if not sessions:
            problems.append(f"protocol {LB_PROTO} missing")
    else:
        babel = {n: p for n, p in protocols.items() if p.get("proto") == "Babel"}
        problems += [f"{n} {p.get('state')}" for n, p in sorted(babel.items()) if p.get("state") != "up"]
        sessions = [{"name": str(nb["address"]),
                     "state": "up" if int(nb.get("metric", 0)) < bird_probe.BABEL_INFINITY else "unreachable"}
                    for nb in neighbours or []]
        if not any(s["state"] == "up" for s in sessions):
            problems.append("no reachable Babel neighbour")
        if not babel:
            problems.append(f"protocol {LB_PROTO} missing")
    return {"protocol": protocol, "sessions": sessions, "detail": "; ".join(problems)}

