"""The node agent (the original's contrail-nodemgr): one per host, reporting its processes and components.

Run inside the host's namespaces as ``python -m contrail_ha.services.analytics.node_agent agent.json``.

Every ``interval`` it reads the ``state.json`` of each role supervisor of its host and sends, per UVE
table the host has (``config-node``, ``config-database-node``, ``analytics-node``, ``database-node``,
``lb-node``; key = host name), a ``NodeStatus`` with the ``process_info`` of that table's processes
and the agent's own ``process_status``. Every ``probe_interval`` (``rabbitmq_interval`` for
``rabbitmqctl``, which starts an Erlang VM) it asks the host's components for their state, as the
local node sees it: ``ZookeeperStatus``, ``RabbitmqStatus``, ``CassandraStatus`` (config DB and
analytics DB), ``KafkaStatus``, ``HaproxyStatus``, ``LbAgentStatus``, ``BirdStatus``.

A struct is handed to the generator only when it changed (the generator re-sends the whole state
as heartbeat). Probes that block run in threads, one at a time each, under their own timeouts, so
a hung component never delays the process states. A failing probe is reported in its struct
(``detail``) and logged once per new error.

``GET /health`` answers 200 once the processes were collected once; ``GET /status`` returns the
structs last sent, per UVE table.

The pure parts (state.json -> ``process_info``, component -> table, the struct builders) are plain
functions, tested with literal inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contrail_ha.probes import bird as bird_probe
from contrail_ha.probes import cassandra as cassandra_probe
from contrail_ha.probes import haproxy as haproxy_probe
from contrail_ha.probes import kafka as kafka_probe
from contrail_ha.probes import rabbitmq as rabbitmq_probe
from contrail_ha.probes import services as services_probe
from contrail_ha.probes import zookeeper as zookeeper_probe
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.bird import LB_PROTO, socket_path
from contrail_ha.rendering.cassandra import cluster_of
from contrail_ha.rendering.haproxy import BACKENDS, stats_socket
from contrail_ha.rendering.kafka import broker_id
from contrail_ha.runtime import pids
from contrail_ha.services.analytics import nodestatus
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.protocol import (
    PROCESS_BACKOFF,
    PROCESS_EXITED,
    PROCESS_RUNNING,
    PROCESS_STARTING,
    PROCESS_STOPPED,
    UVE_TYPES,
    Origin,
)
from contrail_ha.services.deps import Dependency
from contrail_ha.topology.model import LbProtocol, Role, Topology
from contrail_ha.topology.plan import (
    ANALYTICS_DB,
    BIRD,
    CONFIG_DB,
    HAPROXY,
    KAFKA,
    LB_AGENT,
    RABBITMQ,
    ZOOKEEPER,
    Plan,
)

log = logging.getLogger("node-agent")

NODE_TYPE = "NodeAgent"
MODULE = "contrail-node-agent"
AGENT_PROCESS = "node-agent"  # the agent's own process (group ``node``): never in process_info
DEFAULT_PORT = 8100

# UVE tables (by their REST type, so a typo cannot slip through)
CONFIG_NODE = UVE_TYPES["config-node"]  # ObjectConfigNode
CONFIG_DATABASE_NODE = UVE_TYPES["config-database-node"]  # ObjectConfigDatabaseInfo
ANALYTICS_NODE = UVE_TYPES["analytics-node"]  # ObjectCollectorInfo
DATABASE_NODE = UVE_TYPES["database-node"]  # ObjectDatabaseInfo
LB_NODE = UVE_TYPES["lb-node"]  # ObjectLbNode

# Component (process name without its ``-<n>`` replica suffix) -> the UVE table of its process_info.
COMPONENT_TABLE: dict[str, str] = {
    "config-api": CONFIG_NODE,
    "zookeeper": CONFIG_DATABASE_NODE,
    "rabbitmq": CONFIG_DATABASE_NODE,
    "epmd": CONFIG_DATABASE_NODE,
    "config-db": CONFIG_DATABASE_NODE,
    "analytics-api": ANALYTICS_NODE,
    "collector": ANALYTICS_NODE,
    "aggregator": ANALYTICS_NODE,
    "analytics-db": DATABASE_NODE,
    "kafka": DATABASE_NODE,
    "haproxy": LB_NODE,
    "bird": LB_NODE,
    "lb-agent": LB_NODE,
}
# A process of a role that the table above does not name still gets reported, in its role's table.
ROLE_TABLE: dict[str, str] = {Role.CONTROLLER.value: CONFIG_NODE, Role.ANALYTICS.value: ANALYTICS_NODE,
                              Role.ANALYTICSDB.value: DATABASE_NODE, Role.LB.value: LB_NODE}
ROLES = tuple(ROLE_TABLE)  # the supervisor groups whose state.json the agent reads
# Each table's processes belong to one role (the supervisor group that runs them).
TABLE_ROLE: dict[str, str] = {CONFIG_NODE: Role.CONTROLLER.value, CONFIG_DATABASE_NODE: Role.CONTROLLER.value,
                              ANALYTICS_NODE: Role.ANALYTICS.value, DATABASE_NODE: Role.ANALYTICSDB.value,
                              LB_NODE: Role.LB.value}

# Supervisor state (runtime.supervisor._write_state) -> process state.
SUPERVISOR_STATE: dict[str, str] = {
    "running": PROCESS_RUNNING,
    "held": PROCESS_STOPPED,
    "backoff": PROCESS_BACKOFF,
    "starting": PROCESS_STARTING,
    "disabled": PROCESS_STOPPED,
}

# Struct names
NODE_STATUS = "NodeStatus"
ZOOKEEPER_STATUS = "ZookeeperStatus"
RABBITMQ_STATUS = "RabbitmqStatus"
CASSANDRA_STATUS = "CassandraStatus"
KAFKA_STATUS = "KafkaStatus"
HAPROXY_STATUS = "HaproxyStatus"
LB_AGENT_STATUS = "LbAgentStatus"
BIRD_STATUS = "BirdStatus"

# Timeouts (each probe's own) and cadences
ZK_TIMEOUT = 2.0
RABBITMQ_TIMEOUT = 20.0
CQL_CONNECT_TIMEOUT = 2.0
CQL_REQUEST_TIMEOUT = 3.0
KAFKA_TIMEOUT = 3.0
HAPROXY_TIMEOUT = 2.0
BIRD_TIMEOUT = 3.0
PROBE_HARD_TIMEOUT = 30.0  # a probe thread still busy after this is reported as hung (and not restarted)
HEARTBEAT_STALE_S = 12.0  # a peer whose gossip heartbeat has not moved for this long is down (Cassandra: ~10-18 s)
LB_AGENT_STALE_S = 10.0  # the lb agent rewrites its state every 0.2 s
VOLATILE_REFRESH_S = 60.0  # a struct whose only change is volatile (uptimes) is re-sent at most this often
VOLATILE_FIELDS = frozenset({"uptime_s"})

_REPLICA = re.compile(r"^(?P<component>.+)-\d+$")
_LOG_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d+)?\s+")


# --- configuration ----------------------------------------------------------------------------------
class AgentConfig(BaseModel):
    """``agent.json``: what one host's agent reports and where it sends it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    listen_ip: str
    listen_port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    state_root: Path  # the cluster's Layout root, e.g. /var/lib/contrail-ha/contrail
    cache: Path  # the Layout cache (jar classpaths)
    topology: dict[str, Any]  # Topology.model_dump(mode="json")
    collectors: list[str] = Field(min_length=1)  # ["ip:8086", ...]
    interval: float = Field(1.0, gt=0)  # process states
    probe_interval: float = Field(5.0, gt=0)  # ZooKeeper, Cassandra, Kafka, HAProxy, BIRD, lb agent
    rabbitmq_interval: float = Field(5.0, gt=0)  # the local node's management API

    @classmethod
    def load(cls, path: str | Path) -> AgentConfig:
        return cls.model_validate(json.loads(Path(path).read_text()))


def config_for(plan: Plan, layout: Layout, host: str, **overrides: Any) -> AgentConfig:
    """The agent configuration of ``host`` (what the renderer writes as ``agent.json``), with ``overrides``."""
    h = plan.topology.host(host)
    d: dict[str, Any] = {
        "host": host, "listen_ip": str(h.ip), "listen_port": getattr(plan.ports, "node_agent", DEFAULT_PORT),
        "state_root": str(layout.root), "cache": str(layout.cache), "topology": plan.topology.model_dump(mode="json"),
        "collectors": [f"{ip}:{plan.ports.collector}" for ip in plan.ips(plan.analytics)]}
    return AgentConfig.model_validate({**d, **overrides})


# --- processes: state.json -> process_info ------------------------------------------------------------
def component_of(process: str) -> str:
    """``config-api-2`` -> ``config-api``; names without a replica suffix are their component."""
    m = _REPLICA.match(process)
    return m.group("component") if m else process


def table_of(process: str, role: str | None = None) -> str | None:
    """The UVE table of a process's ``process_info`` (None for the agent itself or an unknown process)."""
    if process == AGENT_PROCESS:
        return None
    return COMPONENT_TABLE.get(component_of(process)) or (ROLE_TABLE.get(role) if role else None)


def process_state(supervisor_state: str) -> str:
    """A supervisor state (running, held, backoff, starting, disabled) as a ProcessState name."""
    return SUPERVISOR_STATE.get(supervisor_state, PROCESS_EXITED)


def process_entry(name: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """One ``process_info`` entry from a process of ``state.json``."""
    restarts = int(p.get("restarts") or 0)
    started = p.get("pid") is not None or restarts > 0 or bool(p.get("last_exit"))
    return {"process_name": name, "process_state": process_state(str(p.get("state", ""))), "pid": p.get("pid"),
            "start_count": restarts + 1 if started else 0, "last_exit": str(p.get("last_exit") or ""),
            "uptime_s": float(p.get("uptime") or 0)}


def expected_processes(plan: Plan, host: str) -> list[str]:
    """The processes the plan puts on ``host`` that the agent reports (rabbitmq brings epmd)."""
    out: list[str] = []
    for inst in plan.on(host):
        if inst.component == RABBITMQ:
            out.append("epmd")
        if table_of(inst.name) is not None:
            out.append(inst.name)
    return out


def host_tables(plan: Plan, host: str) -> list[str]:
    """The UVE tables ``host`` reports to, sorted."""
    return sorted({t for p in expected_processes(plan, host) if (t := table_of(p)) is not None})


def process_infos(states: Mapping[str, Mapping[str, Any] | None], expected: Iterable[str] = (),
                  alive: Callable[[int], bool] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{table: [process_info entry, ...]}`` from each role's ``state.json`` (``None``: missing).

    A process the plan expects but no supervisor reports is PROCESS_STATE_STOPPED. With ``alive``,
    the processes of a role whose supervisor is gone are checked one by one: still running
    (unsupervised), or PROCESS_STATE_EXITED.
    """
    entries: dict[str, dict[str, Any]] = {}
    tables: dict[str, str] = {}
    for role, state in states.items():
        if not state:
            continue
        spid = state.get("supervisor_pid")
        gone = alive is not None and not (isinstance(spid, int) and alive(spid))
        for name, p in (state.get("processes") or {}).items():
            table = table_of(name, role)
            if table is None:
                continue
            e = process_entry(name, p)
            if gone:
                pid = p.get("pid")
                why = f"supervisor {spid} not running"
                if p.get("state") == "running" and isinstance(pid, int) and alive is not None and alive(pid):
                    e["last_exit"] = f"{why} (unsupervised)"
                else:
                    e.update(process_state=PROCESS_EXITED, pid=None, uptime_s=0.0,
                             last_exit=f"{why}; {e['last_exit']}" if e["last_exit"] else why)
            entries[name], tables[name] = e, table
    for name in expected:
        table = table_of(name)
        if name not in entries and table is not None:
            entries[name] = {"process_name": name, "process_state": PROCESS_STOPPED, "pid": None, "start_count": 0,
                             "last_exit": "no supervisor reports it", "uptime_s": 0.0}
            tables[name] = table
    out: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(entries):
        out.setdefault(tables[name], []).append(entries[name])
    return out


def read_state(layout: Layout, host: str, role: str) -> dict[str, Any] | None:
    """``<root>/hosts/<host>/supervisor/<role>/state.json``, None when missing or unreadable."""
    try:
        d = json.loads((layout.host_dir(host) / "supervisor" / role / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


# --- component structs ----------------------------------------------------------------------------------
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


# --- sending on change -----------------------------------------------------------------------------------
def stable(data: Any) -> Any:
    """``data`` without what changes on its own: uptimes, and the collector link's wording."""
    if isinstance(data, dict):
        return {k: stable(v) for k, v in data.items()
                if k not in VOLATILE_FIELDS and not (k == "description" and data.get("type") == "Collector")}
    if isinstance(data, list):
        return [stable(x) for x in data]
    return data


class UveSink(Protocol):
    """What the publisher sends through (a Generator)."""

    def uve(self, table: str, key: str, struct: str, data: dict[str, Any] | None) -> None: ...


class Publisher:
    """Hands a struct to the generator only when it changed (volatile fields alone: at most every ``refresh`` s)."""

    def __init__(self, gen: UveSink, key: str, refresh: float = VOLATILE_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gen, self.key, self.refresh, self.clock = gen, key, refresh, clock
        self.sent: dict[str, dict[str, Any]] = {}  # table -> struct -> data last sent
        self._stable: dict[tuple[str, str], Any] = {}
        self._at: dict[tuple[str, str], float] = {}

    def publish(self, table: str, struct: str, data: dict[str, Any]) -> bool:
        """Send ``data`` if it differs from what was last sent; True if sent."""
        k, s, now = (table, struct), stable(data), self.clock()
        if k in self._stable:
            last = self.sent[table][struct]
            if data == last or (s == self._stable[k] and now - self._at[k] < self.refresh):
                return False
        self.gen.uve(table, self.key, struct, data)
        self.sent.setdefault(table, {})[struct] = data
        self._stable[k], self._at[k] = s, now
        return True


# --- the blocking probes -----------------------------------------------------------------------------------
class CassandraWatcher:
    """One persistent driver session to the local Cassandra node (reconnected after a failure)."""

    QUERY = "SELECT address, generation, heartbeat, status, status_with_port, host_id, \"schema\", " \
            "release_version, load, rpc_ready FROM system_views.gossip_info"

    def __init__(self, cluster: str, ip: str, port: int, members: list[str], stale_s: float) -> None:
        self.cluster_name, self.ip, self.port, self.members, self.stale_s = cluster, ip, port, members, stale_s
        self.tracker = HeartbeatTracker()
        self._cluster: Any = None
        self._session: Any = None

    def _connect(self) -> None:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import ConstantReconnectionPolicy, WhiteListRoundRobinPolicy

        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([self.ip]),
                                   consistency_level=ConsistencyLevel.ONE, request_timeout=CQL_REQUEST_TIMEOUT)
        cl = Cluster([self.ip], port=self.port, protocol_version=5,
                     execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=CQL_CONNECT_TIMEOUT,
                     control_connection_timeout=CQL_CONNECT_TIMEOUT, schema_metadata_enabled=False,
                     token_metadata_enabled=False, reconnection_policy=ConstantReconnectionPolicy(2.0, None))
        try:
            self._session = cl.connect()
        except Exception:
            cl.shutdown()
            raise
        self._cluster = cl

    def probe(self) -> dict[str, Any]:
        try:
            if self._session is None:
                self._connect()
            rows = self._session.execute(self.QUERY, timeout=CQL_REQUEST_TIMEOUT)
            endpoints = {str(r.address): cassandra_probe._gossip(r) for r in rows}
        except Exception as e:
            self.close()
            return self.failed(f"cql {self.ip}:{self.port}: {cassandra_probe._short(e)}")
        ages = self.tracker.update(endpoints, time.monotonic())
        return cassandra_status(self.cluster_name, self.ip, self.members, endpoints, ages, self.stale_s)

    def failed(self, error: str) -> dict[str, Any]:
        return cassandra_status(self.cluster_name, self.ip, self.members, None, error=error)

    def close(self) -> None:
        cl, self._cluster, self._session = self._cluster, None, None
        if cl is not None:
            with contextlib.suppress(Exception):
                cl.shutdown()


def local_runner(plan: Plan, host: Any, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run rabbitmqctl right here: the agent already runs inside its host's namespaces."""
    # a CLI that cannot start (e.g. no cookie yet) must not leave an erl_crash.dump behind, every time
    full_env = {"PATH": os.environ.get("PATH", rabbitmq_probe.DEFAULT_PATH), "ERL_CRASH_DUMP_SECONDS": "0", **env}
    home = env.get("HOME")
    try:
        return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=RABBITMQ_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False,
                              cwd=home if home and os.path.isdir(home) else "/")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {RABBITMQ_TIMEOUT:.0f}s")


@dataclass
class Probe:
    """One component struct, refreshed every ``interval`` by a blocking ``run`` (``fail`` builds it from an error)."""

    name: str
    table: str
    struct: str
    interval: float
    run: Callable[[], dict[str, Any]]
    fail: Callable[[str], dict[str, Any]]
    timeout: float = PROBE_HARD_TIMEOUT


class _Fact(Dependency):
    """A fixed (ok, reason), to fold the agent's own problems into its process_status."""

    def __init__(self, name: str, ok: bool, reason: str) -> None:
        super().__init__()
        self.name, self.ok, self.reason = name, ok, reason

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass


# --- the agent ------------------------------------------------------------------------------------------------
class Agent:
    """Collects this host's process states and component structs and sends them on change."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.plan = Plan(Topology.model_validate(cfg.topology))
        self.layout = Layout(Path(cfg.state_root), Path(cfg.cache))
        self.host = self.plan.topology.host(cfg.host)  # KeyError: not a host of the topology
        self.roles = [r.value for r in self.host.roles if r.value in ROLES]
        self.expected = expected_processes(self.plan, cfg.host)
        self.origin = Origin(source=cfg.host, node_type=NODE_TYPE, module=MODULE, instance_id=cfg.host)
        self.gen: Generator | None = None
        self.publisher: Publisher | None = None
        self.collected = 0
        self.collected_at = 0.0
        self._states: dict[str, str] = {}  # process -> last process_state (for the log)
        self._errors: dict[str, str] = {}  # probe -> last error (logged once)
        self._admin: Any = None
        self._watchers: list[CassandraWatcher] = []
        self.probes = self._make_probes()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.probes)), thread_name_prefix="probe")
        self._tasks: list[asyncio.Task[None]] = []

    # --- probes of the components this host runs ------------------------------------------------------
    def _has(self, component: str) -> bool:
        return any(i.component == component for i in self.plan.on(self.host.name))

    def _make_probes(self) -> list[Probe]:
        cfg, plan, name = self.cfg, self.plan, self.host.name
        out: list[Probe] = []
        if self._has(ZOOKEEPER):
            zk = plan.instance(ZOOKEEPER, name)
            out.append(Probe(ZOOKEEPER, CONFIG_DATABASE_NODE, ZOOKEEPER_STATUS, cfg.probe_interval,
                             self.zookeeper, lambda e: zookeeper_status(zk.address, None, e)))
        if self._has(RABBITMQ):
            node = plan.rabbitmq_node_name(self.host)
            expected = [plan.rabbitmq_node_name(h) for h in plan.controllers]
            out.append(Probe(RABBITMQ, CONFIG_DATABASE_NODE, RABBITMQ_STATUS, cfg.rabbitmq_interval,
                             self.rabbitmq, lambda e: rabbitmq_status(node, None, expected, e),
                             timeout=RABBITMQ_TIMEOUT + 10))
        for component, table in ((CONFIG_DB, CONFIG_DATABASE_NODE), (ANALYTICS_DB, DATABASE_NODE)):
            if self._has(component):
                c = cluster_of(plan, component)
                w = CassandraWatcher(c.cluster_name, str(self.host.ip), c.cql_port, [str(h.ip) for h in c.hosts],
                                     max(HEARTBEAT_STALE_S, 2.5 * cfg.probe_interval))
                self._watchers.append(w)
                out.append(Probe(component, table, CASSANDRA_STATUS, cfg.probe_interval, w.probe, w.failed))
        if self._has(KAFKA):
            k = plan.instance(KAFKA, name)
            bid = broker_id(plan, k)
            out.append(Probe(KAFKA, DATABASE_NODE, KAFKA_STATUS, cfg.probe_interval, self.kafka,
                             lambda e: kafka_status(bid, k.address, None, error=e)))
        if self._has(HAPROXY):
            out.append(Probe(HAPROXY, LB_NODE, HAPROXY_STATUS, cfg.probe_interval, self.haproxy,
                             lambda e: haproxy_status(None, e)))
        if self._has(LB_AGENT):
            out.append(Probe(LB_AGENT, LB_NODE, LB_AGENT_STATUS, cfg.probe_interval, self.lb_agent,
                             lambda e: lb_agent_status(None, time.time(), e)))
        if self._has(BIRD):
            proto = plan.topology.lb.protocol.value
            out.append(Probe(BIRD, LB_NODE, BIRD_STATUS, cfg.probe_interval, self.bird,
                             lambda e: bird_status(proto, None, error=e)))
        return out

    def zookeeper(self) -> dict[str, Any]:
        inst = self.plan.instance(ZOOKEEPER, self.host.name)
        try:
            answer = zookeeper_probe.four_letter(inst.ip, inst.port, "srvr", ZK_TIMEOUT)
        except OSError as e:
            return zookeeper_status(inst.address, None, f"unreachable: {e.strerror or e.__class__.__name__}")
        return zookeeper_status(inst.address, answer)

    def rabbitmq(self) -> dict[str, Any]:
        inst = self.plan.instance(RABBITMQ, self.host.name)
        node = self.plan.rabbitmq_node_name(self.host)
        expected = [self.plan.rabbitmq_node_name(h) for h in self.plan.controllers]
        try:
            st = rabbitmq_probe.cluster_status(self.plan, self.layout, inst)
        except RuntimeError as e:
            return rabbitmq_status(node, None, expected, str(e))
        if not isinstance(st, dict):
            return rabbitmq_status(node, None, expected, f"unexpected cluster_status: {str(st)[:120]}")
        return rabbitmq_status(node, st, expected)

    def kafka(self) -> dict[str, Any]:
        inst = self.plan.instance(KAFKA, self.host.name)
        if self._admin is None:  # one AdminClient for the life of the agent
            self._admin = kafka_probe.admin(self.plan)
        try:
            md = self._admin.list_topics(timeout=KAFKA_TIMEOUT)
        finally:
            self._admin.poll(0)  # serves the client's log queue
        brokers = {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}
        parts = [(p.leader, list(p.replicas), list(p.isrs)) for t in md.topics.values() if t.error is None
                 for p in t.partitions.values()]
        return kafka_status(broker_id(self.plan, inst), inst.address, brokers, parts)

    def haproxy(self) -> dict[str, Any]:
        sock = stats_socket(self.layout, self.host.name)
        try:
            rows = haproxy_probe.parse_stat(haproxy_probe.command(sock, "show stat", HAPROXY_TIMEOUT))
        except (OSError, ValueError) as e:
            return haproxy_status(None, f"stats socket {sock}: {e}")
        return haproxy_status(rows)

    def lb_agent(self) -> dict[str, Any]:
        _ok, detail, st = services_probe.agent(self.layout, self.host.name)
        return lb_agent_status(st or None, time.time(), detail)

    def bird(self) -> dict[str, Any]:
        sock, proto = socket_path(self.layout, self.host.name), self.plan.topology.lb.protocol.value
        try:
            protos = bird_probe.parse_protocols(bird_probe.birdc(sock, "show", "protocols", LB_PROTO,
                                                                 timeout=BIRD_TIMEOUT))
            neighbours = None
            if proto == LbProtocol.BABEL.value:
                neighbours = bird_probe.parse_babel_neighbors(
                    bird_probe.birdc(sock, "show", "babel", "neighbors", LB_PROTO, timeout=BIRD_TIMEOUT))
        except bird_probe.BirdError as e:
            return bird_status(proto, None, error=f"BIRD not answering: {e}")
        return bird_status(proto, protos, neighbours)

    # --- process states -------------------------------------------------------------------------------
    def read_states(self) -> dict[str, dict[str, Any] | None]:
        return {role: read_state(self.layout, self.host.name, role) for role in self.roles}

    def own_status(self, table: str, states: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
        """The agent's ``process_status`` in ``table``: its collector link; Non-Functional while the
        supervisor of the table's role is not running."""
        role = TABLE_ROLE.get(table)
        st = states.get(role) if role else None
        spid = st.get("supervisor_pid") if st else None
        if role is None or role not in states:
            facts: list[Dependency] = []
        elif st is None:
            facts = [_Fact("supervisor", False, f"{role}: no state.json")]
        elif not (isinstance(spid, int) and pids.alive(spid)):
            facts = [_Fact("supervisor", False, f"{role}: supervisor {spid} not running")]
        else:
            facts = [_Fact("supervisor", True, "")]
        return nodestatus.process_status(self.origin, facts, self.gen)

    def collect_processes(self) -> None:
        """Read every role's state.json and publish each table's NodeStatus (when it changed)."""
        assert self.publisher is not None
        states = self.read_states()
        infos = process_infos(states, self.expected, alive=pids.alive)
        for table, entries in sorted(infos.items()):
            for e in entries:
                before = self._states.get(e["process_name"])
                if before != e["process_state"]:
                    log.info("%s: %s -> %s%s", e["process_name"], before or "(unknown)", e["process_state"],
                             f" ({e['last_exit']})" if e["last_exit"] and e["process_state"] != PROCESS_RUNNING
                             else "")
                    self._states[e["process_name"]] = e["process_state"]
            self.publisher.publish(table, NODE_STATUS, {"process_info": entries,
                                                        "process_status": [self.own_status(table, states)]})
        self.collected += 1
        self.collected_at = time.time()

    # --- loops ------------------------------------------------------------------------------------------
    async def _process_loop(self) -> None:
        while True:
            try:
                self.collect_processes()
            except Exception:
                log.exception("collecting process states")
            await asyncio.sleep(self.cfg.interval)

    async def _probe_loop(self, probe: Probe) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] | None = None
        while True:
            if fut is None or fut.done():
                if fut is not None and not fut.cancelled():
                    fut.exception()  # a result nobody waited for (it outlived its timeout)
                fut = loop.run_in_executor(self._pool, probe.run)
            err, data = "", None
            try:
                data = await asyncio.wait_for(asyncio.shield(fut), probe.timeout)
            except TimeoutError:
                err = f"probe still running after {probe.timeout:.0f}s"
                data = probe.fail(err)
            except Exception as e:  # a probe must never stop the loop
                err = f"{e.__class__.__name__}: {e}"[:300]
                with contextlib.suppress(Exception):
                    data = probe.fail(err)
            if not err:
                err = str(data.get("detail") or "") if isinstance(data, dict) else ""
            if err != self._errors.get(probe.name, ""):
                if err:
                    log.warning("%s: %s", probe.name, err)
                else:
                    log.info("%s: ok", probe.name)
                self._errors[probe.name] = err
            if self.publisher is not None and isinstance(data, dict):
                self.publisher.publish(probe.table, probe.struct, data)
            await asyncio.sleep(probe.interval)

    def start(self) -> None:
        """Start the generator and the loops (in the running event loop)."""
        self.gen = Generator(self.origin, self.cfg.collectors)
        self.gen.start()
        self.publisher = Publisher(self.gen, self.host.name)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._process_loop(), name="processes")]
        self._tasks += [loop.create_task(self._probe_loop(p), name=p.name) for p in self.probes]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.gen is not None:
            await self.gen.stop(1.0)
        closing: Future[None] = self._pool.submit(self._close_clients)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(closing), 10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _close_clients(self) -> None:
        for w in self._watchers:
            w.close()

    # --- HTTP -------------------------------------------------------------------------------------------
    async def h_health(self, request: web.Request) -> web.Response:
        gen = self.gen
        body = {"ok": self.collected > 0, "host": self.host.name, "collections": self.collected,
                "collected_s_ago": round(time.time() - self.collected_at, 1) if self.collected else None,
                "collector": gen.connection_info() if gen is not None else None,
                "probes": {p.name: self._errors.get(p.name) or "ok" for p in self.probes}}
        return web.json_response(body, status=200 if self.collected else 503)

    async def h_status(self, request: web.Request) -> web.Response:
        return web.json_response(self.publisher.sent if self.publisher is not None else {})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.h_health)
        app.router.add_get("/status", self.h_status)
        return app

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        self.start()
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.cfg.listen_ip, self.cfg.listen_port, reuse_address=True).start()
        log.info("%s: reporting %s (%s) to %s; listening on %s:%s", self.host.name,
                 ", ".join(host_tables(self.plan, self.host.name)), ", ".join(p.name for p in self.probes) or "-",
                 ", ".join(self.cfg.collectors), self.cfg.listen_ip, self.cfg.listen_port)
        stop: asyncio.Future[None] = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        await stop
        log.info("stopping")
        await runner.cleanup()
        await self.stop()


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.stderr.write("usage: python -m contrail_ha.services.analytics.node_agent agent.json\n")
        sys.exit(2)
    cfg = AgentConfig.load(args[0])
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s {AGENT_PROCESS}@{cfg.host} %(levelname)s %(name)s: %(message)s")
    # Unreachable components are reported in the structs; the clients' own reconnect chatter is noise.
    for name in ("cassandra", "contrail_ha.rdkafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    rabbitmq_probe.runner = local_runner  # already inside the host's namespaces
    asyncio.run(Agent(cfg).serve())


if __name__ == "__main__":
    main()
