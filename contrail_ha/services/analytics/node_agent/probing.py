"""The blocking probes: a persistent Cassandra session, rabbitmqctl run in place, and what the agent
schedules (``Probe``: one struct, its cadence and its own hard timeout)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contrail_ha.probes import cassandra as cassandra_probe
from contrail_ha.probes import rabbitmq as rabbitmq_probe
from contrail_ha.services.analytics.node_agent.structs import HeartbeatTracker, cassandra_status
from contrail_ha.topology.plan import Plan

# Timeouts (each probe's own)
ZK_TIMEOUT = 2.0
RABBITMQ_TIMEOUT = 20.0
CQL_CONNECT_TIMEOUT = 2.0
CQL_REQUEST_TIMEOUT = 3.0
KAFKA_TIMEOUT = 3.0
HAPROXY_TIMEOUT = 2.0
BIRD_TIMEOUT = 3.0
PROBE_HARD_TIMEOUT = 30.0  # a probe thread still busy after this is reported as hung (and not restarted)


class CassandraWatcher:
    """One persistent driver session to the local Cassandra node (reconnected after a failure)."""

    QUERY = "SELECT address, generation, heartbeat, status, status_with_port, host_id, \"schema\", " \
            "release_version, load, rpc_ready FROM system_views.gossip_info"

    def __init__(self, cluster: str, ip: str, port: int, members: list[str], stale_s: float,
                 login: Callable[[], tuple[str, str]] | None = None) -> None:
        self.cluster_name, self.ip, self.port, self.members, self.stale_s = cluster, ip, port, members, stale_s
        self.login = login  # the monitor role's login, read when (re)connecting
        self.tracker = HeartbeatTracker()
        self._cluster: Any = None
        self._session: Any = None

    def _connect(self) -> None:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import ConstantReconnectionPolicy, WhiteListRoundRobinPolicy

        from contrail_ha.services.cql import auth_provider

        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([self.ip]),
                                   consistency_level=ConsistencyLevel.ONE, request_timeout=CQL_REQUEST_TIMEOUT)
        cl = Cluster([self.ip], port=self.port, protocol_version=5,
                     execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=CQL_CONNECT_TIMEOUT,
                     control_connection_timeout=CQL_CONNECT_TIMEOUT, schema_metadata_enabled=False,
                     token_metadata_enabled=False, reconnection_policy=ConstantReconnectionPolicy(2.0, None),
                     auth_provider=auth_provider(self._login()))
        try:
            self._session = cl.connect()
        except Exception:
            cl.shutdown()
            raise
        self._cluster = cl

    def _login(self) -> tuple[str, str] | None:
        """The monitor's login; None where it is not rendered (the node then says why it cannot be
        asked: refused, or requires authentication)."""
        try:
            return self.login() if self.login else None
        except RuntimeError:
            return None

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

