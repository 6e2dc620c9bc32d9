"""Cassandra probes: node readiness and each cluster's ring, read over CQL (no JVM per call).

Every node is asked directly (one short-lived driver connection per node, in parallel, 2 s
connect timeout) for its ``system_views.gossip_info``. Cassandra exposes no failure-detector
state over CQL, so liveness is derived from gossip: a peer *hears* a node when it holds a STATUS
for it, of the node's current generation, not ``shutdown``, with a heartbeat version at most
``HEARTBEAT_LAG_DOWN`` behind the node's own. A node that answers is up unless most of the
other answering nodes do not hear it; it is healthy only if all of them do. A node that does not
answer CQL is down, unless CQL is refused while its storage port accepts (joining or starting).
The state letter (N, J, L, M) is the node's gossip STATUS, as it reports it itself or, when it
cannot be asked, as the others see it."""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy, WhiteListRoundRobinPolicy

from contrail_ha.probes.base import Check, read_login
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.cassandra import cluster_of, monitor_file
from contrail_ha.services.cql import auth_provider
from contrail_ha.topology.plan import ANALYTICS_DB, CONFIG_DB, Instance, Plan

CONNECT_TIMEOUT = 2.0
REQUEST_TIMEOUT = 3.0
# Heartbeat versions grow about once a second; Cassandra's failure detector convicts after ~18 s.
HEARTBEAT_LAG_DOWN = 12
STATE_LETTER = {
    "NORMAL": "N",
    "BOOT": "J",
    "BOOT_REPLACE": "J",
    "hibernate": "J",
    "LEAVING": "L",
    "removing": "L",
    "MOVING": "M",
    "shutdown": "N",
}
GONE = ("LEFT", "removed")  # no longer members: nodetool status does not list them


def _cluster(ips: list[str], port: int, *, whitelist: bool, timeout: float,
             consistency: int = ConsistencyLevel.ONE, request_timeout: float = REQUEST_TIMEOUT,
             auth: tuple[str, str] | None = None) -> Cluster:
    policy = WhiteListRoundRobinPolicy(ips) if whitelist else RoundRobinPolicy()
    profile = ExecutionProfile(load_balancing_policy=policy, consistency_level=consistency,
                               request_timeout=request_timeout)
    return Cluster(ips, port=port, protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                   connect_timeout=timeout, control_connection_timeout=timeout,
                   schema_metadata_enabled=False, token_metadata_enabled=False, auth_provider=auth_provider(auth))


def session(plan: Plan, component: str, ips: list[str] | None = None, *, keyspace: str | None = None,
            consistency: int = ConsistencyLevel.QUORUM, timeout: float = CONNECT_TIMEOUT,
            request_timeout: float = 10.0, auth: tuple[str, str] | None = None) -> Session:
    """A driver session to the ``config-db`` or ``analytics-db`` cluster (its node IPs by default),
    logged in as ``auth`` (e.g. ``rendering.cassandra.login(layout, component, ADMIN_ROLE)``).

    Schema metadata is not loaded (faster connect). Close it with ``session.cluster.shutdown()``
    (or use :func:`connected`).
    """
    c = cluster_of(plan, component)
    ips = ips or [str(h.ip) for h in c.hosts]
    cl = _cluster(ips, c.cql_port, whitelist=False, timeout=timeout, consistency=consistency,
                  request_timeout=request_timeout, auth=auth)
    try:
        return cl.connect(keyspace)
    except Exception:
        cl.shutdown()
        raise


@contextmanager
def connected(plan: Plan, component: str, ips: list[str] | None = None, **kw: Any) -> Iterator[Session]:
    """:func:`session` as a context manager that shuts the driver down."""
    s = session(plan, component, ips, **kw)
    try:
        yield s
    finally:
        s.cluster.shutdown()


class _Quiet:
    """Mutes the driver's logging while probing: an unreachable node is an answer, not an error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = logging.NOTSET

    def __enter__(self) -> None:
        log = logging.getLogger("cassandra")
        with self._lock:
            if self._depth == 0:
                self._saved = log.level
                log.setLevel(logging.CRITICAL)
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                logging.getLogger("cassandra").setLevel(self._saved)


_quiet = _Quiet()


def monitor_login(layout: Layout, inst: Instance) -> tuple[str, str]:
    """The monitor role's login, as rendered for ``inst``'s host (readable there only)."""
    return read_login(monitor_file(layout, inst), "Cassandra monitor login")


def cluster_login(plan: Plan, layout: Layout, component: str) -> tuple[str, str] | None:
    """The monitor login of ``component``'s cluster (from its first node's files); None if none is rendered."""
    nodes = plan.of(component)
    try:
        return monitor_login(layout, nodes[0]) if nodes else None
    except RuntimeError:
        return None


@contextmanager
def node_session(ip: str, port: int, timeout: float = CONNECT_TIMEOUT,
                 auth: tuple[str, str] | None = None) -> Iterator[Session]:
    """A session that talks to the node at ``ip`` only (virtual tables are node-local)."""
    with _quiet:
        cl = _cluster([ip], port, whitelist=True, timeout=timeout, auth=auth)
        try:
            yield cl.connect()
        finally:
            cl.shutdown()


def _short(e: BaseException) -> str:
    """A one-line reason from a driver error (NoHostAvailable nests the real one)."""
    errors = getattr(e, "errors", None)
    if isinstance(errors, dict) and errors:
        e = next(iter(errors.values()))
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "Last error: " in text:  # "Tried connecting to [...]. Last error: Connection refused"
        text = text.rsplit("Last error: ", 1)[1]
    text = text.removeprefix("errors=").split(", last_host=")[0]
    return text[:200]


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    """The node answers a CQL query and has finished bootstrapping."""
    port = cluster_of(plan, inst.component).cql_port
    try:
        with node_session(inst.ip, port, auth=monitor_login(layout, inst)) as s:
            row = s.execute("SELECT release_version, bootstrapped FROM system.local").one()
    except Exception as e:  # any failure means not ready
        return False, f"cql {inst.ip}:{port}: {_short(e)}"
    if row.bootstrapped != "COMPLETED":
        return False, f"cql {inst.ip}:{port} answers but bootstrap is {row.bootstrapped}"
    return True, f"cql {inst.ip}:{port} answers (Cassandra {row.release_version})"


@dataclass
class Gossip:
    """One endpoint as a node's gossiper knows it."""

    generation: int
    heartbeat: int
    status: str  # first field of STATUS_WITH_PORT, e.g. NORMAL, BOOT, shutdown
    host_id: str | None = None
    schema: str | None = None
    release: str | None = None
    load: float | None = None
    rpc_ready: bool = False


@dataclass
class View:
    """What one node answered (``error`` set when it could not be asked)."""

    ip: str
    error: str = ""
    endpoints: dict[str, Gossip] = field(default_factory=dict)  # by IP

    @property
    def ok(self) -> bool:
        return not self.error


def _gossip(row: Any) -> Gossip:
    status = (row.status_with_port or row.status or "").split(",")[0]
    try:
        load = float(row.load) if row.load is not None else None
    except ValueError:
        load = None
    return Gossip(generation=row.generation or 0, heartbeat=row.heartbeat or 0, status=status,
                  host_id=row.host_id, schema=row.schema, release=row.release_version, load=load,
                  rpc_ready=row.rpc_ready == "true")


def view(ip: str, port: int, timeout: float = CONNECT_TIMEOUT, auth: tuple[str, str] | None = None) -> View:
    """Ask the node at ``ip`` for its gossip state of every endpoint."""
    try:
        with node_session(ip, port, timeout, auth) as s:
            rows = s.execute(
                "SELECT address, generation, heartbeat, status, status_with_port, host_id, \"schema\", "
                "release_version, load, rpc_ready FROM system_views.gossip_info"
            )
            return View(ip, endpoints={r.address: _gossip(r) for r in rows})
    except Exception as e:  # unreachable nodes are reported, not raised
        return View(ip, error=_short(e))


def _port_open(ip: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def heard(peer: Gossip | None, own: Gossip) -> bool:
    """Does a peer that holds ``peer`` for a node hear it as a member (the node's own state: ``own``)?"""
    if peer is None or not peer.status or peer.status == "shutdown":
        return False
    if peer.generation != own.generation:
        return peer.generation > own.generation
    return own.heartbeat - peer.heartbeat <= HEARTBEAT_LAG_DOWN


@dataclass
class NodeState:
    """One node of a ring, as ``nodetool status`` would print it (``UN``, ``DN``, ``UJ``...)."""

    ip: str
    up: bool
    state: str  # N, J, L, M or ? (unknown)
    cql: bool  # answers CQL
    reason: str = ""  # why it is not healthy; empty when it is
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return ("U" if self.up else "D") + self.state

    @property
    def healthy(self) -> bool:
        """UN, answering CQL, and heard by every node that answered."""
        return self.code == "UN" and self.cql and not self.reason


def assess(ip: str, views: dict[str, View], storage_open: bool | None = None,
           names: dict[str, str] | None = None) -> NodeState:
    """The state of node ``ip`` from every node's answer (``views``, by IP, may include ``ip``).

    Up/down follows the majority of the other answering nodes; a node that some of them do not
    hear is still up but not healthy (a ring that has not converged, or a partial partition).
    """
    names = names or {}
    me = views.get(ip)
    peers = [v for k, v in views.items() if k != ip and v.ok]
    seen = {v.ip: v.endpoints.get(ip) for v in peers}
    data: dict[str, Any] = {"ip": ip}
    if me is not None and me.ok and ip in me.endpoints:
        own = me.endpoints[ip]
        data.update(host_id=own.host_id, schema=own.schema, release=own.release, load=own.load,
                    generation=own.generation, heartbeat=own.heartbeat, status=own.status)
        state = STATE_LETTER.get(own.status, "?")
        deaf = sorted(p for p, g in seen.items() if not heard(g, own))
        data["not_heard_by"] = deaf
        who = ", ".join(names.get(p, p) for p in deaf)
        if peers and len(deaf) * 2 > len(peers):
            return NodeState(ip, False, state, True, f"answers CQL but {who} do not hear it", data)
        return NodeState(ip, True, state, True, f"not heard by {who}" if deaf else "", data)
    statuses = Counter(g.status for g in seen.values() if g is not None and g.status)
    status = statuses.most_common(1)[0][0] if statuses else ""
    data["status_seen_by_peers"] = status or None
    state = STATE_LETTER.get(status, "N")  # a member nobody has heard of yet counts as DN
    reason = me.error if me is not None and me.error else "not in its own gossip"
    if storage_open and "refused" in reason.lower():  # alive, CQL not started yet (joining, starting)
        return NodeState(ip, True, state, False, f"storage port open, CQL not answering: {reason}", data)
    if status == "shutdown":
        reason = f"stopped (announced shutdown); {reason}"
    return NodeState(ip, False, state, False, reason, data)


def ring(plan: Plan, component: str, timeout: float = CONNECT_TIMEOUT,
         auth: tuple[str, str] | None = None) -> list[NodeState]:
    """Every node of the ``config-db`` or ``analytics-db`` cluster, in topology order (asked as ``auth``)."""
    c = cluster_of(plan, component)
    names = {str(h.ip): h.name for h in c.hosts}
    ips = list(names)
    with ThreadPoolExecutor(max_workers=max(1, len(ips))) as pool:
        views = dict(zip(ips, pool.map(lambda ip: view(ip, c.cql_port, timeout, auth), ips), strict=True))
        down = [ip for ip in ips if not views[ip].ok]
        opened = dict(zip(down, pool.map(lambda ip: _port_open(ip, c.storage_port, timeout), down),
                          strict=True))
    out = [assess(ip, views, opened.get(ip), names) for ip in ips]
    # Endpoints the ring still holds but the topology does not name (e.g. a replaced node).
    strangers = sorted({a for v in views.values() if v.ok for a, g in v.endpoints.items()
                        if a not in names and g.status not in GONE})
    for a in strangers:
        n = assess(a, views, names=names)
        n.reason = "not in the topology" + (f"; {n.reason}" if n.reason else "")
        n.data["member"] = False
        out.append(n)
    return out


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """One check per node of each Cassandra cluster: detail ``UN``/``DN``/``UJ``... and the reason."""
    components = [c for c in (CONFIG_DB, ANALYTICS_DB) if cluster_of(plan, c).hosts]
    with ThreadPoolExecutor(max_workers=max(1, len(components))) as pool:
        rings = list(pool.map(lambda c: ring(plan, c, auth=cluster_login(plan, layout, c)), components))
    out: list[Check] = []
    for component, nodes in zip(components, rings, strict=True):
        by_ip = {str(h.ip): h.name for h in cluster_of(plan, component).hosts}
        for n in nodes:
            detail = f"{n.code} ({n.reason})" if n.reason else n.code
            out.append(Check(component, by_ip.get(n.ip, n.ip), n.healthy, detail,
                             {"state": n.code, "cql": n.cql, **n.data}))
    return out
