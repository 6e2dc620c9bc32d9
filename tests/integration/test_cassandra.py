"""Real Cassandra 5.0 nodes on 127.0.10.x: a single node, then a ring: formed, joined, degraded, restarted.

JMX stays off (``jmx=False``): in the root namespace every node would want 127.0.0.1:7200/7201.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cassandra import AuthenticationFailed, ConsistencyLevel, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.query import SimpleStatement

from contrail_ha.probes import cassandra as probe
from contrail_ha.rendering import cassandra
from contrail_ha.rendering.base import Layout, ProcessSpec
from contrail_ha.topology.plan import ANALYTICS_DB, CONFIG_DB, Plan
from tests.helpers import proc
from tests.helpers.topo import loopback_plan

pytestmark = pytest.mark.integration

PREFIX = "127.0.10"
START_TIMEOUT = 180.0
QUORUM = ConsistencyLevel.QUORUM


def _states(plan: Plan, layout: Layout, component: str) -> dict[str, str]:
    """``{host: "UN"}`` for healthy nodes; other states keep their code (``UN?`` when not healthy)."""
    out = {}
    for c in probe.checks(plan, layout):
        if c.component == component:
            code = c.detail.split()[0]
            out[c.target] = code if c.ok or code != "UN" else "UN?"
    return out


def _write_read(plan: Plan, layout: Layout, component: str, rf: int, ips: list[str] | None = None,
                rows: int = 20) -> None:
    """Create a keyspace with ``rf`` replicas (as the cluster's admin), write and read it back at QUORUM."""
    admin = cassandra.login(layout, component, cassandra.ADMIN_ROLE)
    with probe.connected(plan, component, ips, timeout=5.0, request_timeout=30.0, auth=admin) as s:
        s.execute(f"CREATE KEYSPACE IF NOT EXISTS ha_test WITH replication = "
                  f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
        s.execute("CREATE TABLE IF NOT EXISTS ha_test.kv (k text PRIMARY KEY, v text)")
        # the role keepers change the schema at the same moment (keyspaces, grants): wait until every
        # node has this table before writing it at QUORUM
        assert s.cluster.control_connection.wait_for_schema_agreement(wait_time=60)
        ins = SimpleStatement("INSERT INTO ha_test.kv (k, v) VALUES (%s, %s)", consistency_level=QUORUM)
        for i in range(rows):
            s.execute(ins, (f"k{i}", f"v{i}"))
        sel = SimpleStatement("SELECT k, v FROM ha_test.kv", consistency_level=QUORUM)
        got = {r.k: r.v for r in s.execute(sel)}
        assert {f"k{i}": f"v{i}" for i in range(rows)}.items() <= got.items()


def test_single_node(tmp_path: Path) -> None:
    plan = loopback_plan(PREFIX, 1)
    layout = Layout(tmp_path / "state")
    inst = plan.instance(CONFIG_DB, "n1")
    t0 = time.monotonic()
    with proc.running(cassandra.render(plan, inst, layout, jmx=False), tmp_path / "out") as (p, keeper):
        proc.wait_for(lambda: p.poll() is None and probe.ready(plan, layout, inst)[0], START_TIMEOUT,
                      "config-db on n1")
        print(f"\nsingle node: CQL ready (roles made) after {time.monotonic() - t0:.1f} s")
        assert keeper.poll() is None  # the role keeper stays, as every process of the container
        assert _states(plan, layout, CONFIG_DB) == {"n1": "UN"}
        _write_read(plan, layout, CONFIG_DB, rf=1)
        _logins_are_locked_down(plan, layout, inst.ip)
        t1 = time.monotonic()
    print(f"single node: stopped in {time.monotonic() - t1:.1f} s")
    assert p.returncode is not None


def _refused(plan: Plan, component: str, ip: str, login: tuple[str, str] | None) -> bool:
    try:
        with probe.connected(plan, component, [ip], timeout=5.0, auth=login):
            return False
    except NoHostAvailable as e:
        return any(isinstance(x, AuthenticationFailed) for x in e.errors.values())


def _logins_are_locked_down(plan: Plan, layout: Layout, ip: str) -> None:
    """Issue 13: no anonymous login, no default superuser; each role can do what it needs and no more."""
    assert _refused(plan, CONFIG_DB, ip, None)  # anonymous
    # the default superuser is gone (nodes may hold its login for their cache time, 2 s)
    proc.wait_for(lambda: _refused(plan, CONFIG_DB, ip, ("cassandra", "cassandra")), 15, "cassandra/cassandra refused")
    api = cassandra.login(layout, CONFIG_DB, cassandra.CLIENT_ROLE[CONFIG_DB])
    assert _refused(plan, CONFIG_DB, ip, (api[0], "guess"))
    with probe.connected(plan, CONFIG_DB, [ip], timeout=5.0, auth=api) as s:
        s.execute('CREATE TABLE IF NOT EXISTS config_db_uuid.probe (k text PRIMARY KEY, v text)')  # its keyspace
        s.execute("INSERT INTO config_db_uuid.probe (k, v) VALUES ('a', 'b')")
        for denied in ("SELECT * FROM system_auth.roles", "SELECT * FROM ha_test.kv",
                       "CREATE KEYSPACE planted WITH replication = "
                       "{'class': 'SimpleStrategy', 'replication_factor': 1}",
                       "CREATE ROLE planted WITH PASSWORD = 'x' AND LOGIN = true",
                       "GRANT ALL PERMISSIONS ON KEYSPACE ha_test TO \"contrail-api\""):
            with pytest.raises(Unauthorized):
                s.execute(denied)
    monitor = probe.monitor_login(layout, plan.instance(CONFIG_DB, "n1"))
    with probe.connected(plan, CONFIG_DB, [ip], timeout=5.0, auth=monitor) as s:
        assert list(s.execute("SELECT address FROM system_views.gossip_info"))  # what the probes read
        for denied in ("SELECT * FROM config_db_uuid.probe",
                       "INSERT INTO config_db_uuid.probe (k, v) VALUES ('x', 'y')"):
            with pytest.raises(Unauthorized):
                s.execute(denied)


class Ring:
    """Nodes of one Cassandra cluster started and stopped by PID (stopped in parallel at the end)."""

    def __init__(self, plan: Plan, component: str, layout: Layout, out: Path) -> None:
        self.plan, self.component, self.layout, self.out = plan, component, layout, out
        self.procs: dict[str, tuple[subprocess.Popen[bytes], ProcessSpec]] = {}
        self.keepers: dict[str, tuple[subprocess.Popen[bytes], ProcessSpec]] = {}

    def start(self, *hosts: str) -> None:
        for h in hosts:
            r = cassandra.render(self.plan, self.plan.instance(self.component, h), self.layout, jmx=False)
            proc.write_files(r)
            spec, keeper = r.processes
            self.procs[h] = (proc.start(spec, self.out / f"{h}-{spec.name}.log"), spec)
            if h not in self.keepers:  # the node's role keeper (as in its container: it outlives a node stop)
                self.keepers[h] = (proc.start(keeper, self.out / f"{h}-{keeper.name}.log"), keeper)

    def wait_ready(self, *hosts: str) -> None:
        def ready(h: str) -> bool:
            p = self.procs[h][0]
            assert p.poll() is None, f"{self.component} on {h} exited with {p.returncode}"
            return probe.ready(self.plan, self.layout, self.plan.instance(self.component, h))[0]

        for h in hosts:
            proc.wait_for(lambda h=h: ready(h), START_TIMEOUT, f"{self.component} on {h}")

    def stop(self, *hosts: str) -> None:
        """SIGTERM all of ``hosts`` at once, then wait for each (SIGKILL after its stop timeout)."""
        live = [(h, *self.procs.pop(h)) for h in hosts if h in self.procs]
        for _, p, spec in live:
            if p.poll() is None:
                os.killpg(p.pid, spec.stop_signal)
        with ThreadPoolExecutor(max_workers=max(1, len(live))) as pool:
            list(pool.map(lambda x: proc.stop(x[1], x[2], timeout=x[2].stop_timeout), live))

    def stop_all(self) -> None:
        self.stop(*self.procs)
        for p, spec in self.keepers.values():
            proc.stop(p, spec, timeout=spec.stop_timeout)
        self.keepers.clear()


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[Ring]:
    # Four hosts: n1..n3 are the seeds, n4 joins later by bootstrapping.
    r = Ring(loopback_plan(PREFIX, 4), ANALYTICS_DB, Layout(tmp_path / "state"), tmp_path / "out")
    try:
        yield r
    finally:
        r.stop_all()


@pytest.mark.timeout(900)
def test_ring_forms_joins_survives_a_node_and_restarts(ring: Ring) -> None:
    plan, layout = ring.plan, ring.layout
    seeds = ["n1", "n2", "n3"]
    t0 = time.monotonic()
    ring.start(*seeds)  # a fresh cluster: all seeds at once
    ring.wait_ready(*seeds)
    print(f"\n3 concurrent seeds: all CQL ready after {time.monotonic() - t0:.1f} s")
    proc.wait_for(lambda: _states(plan, layout, ANALYTICS_DB) == {"n1": "UN", "n2": "UN", "n3": "UN",
                                                                    "n4": "DN"},
                  60, "n1..n3 UN, n4 DN")
    seed_ips = [f"{PREFIX}.{i}" for i in (1, 2, 3)]
    _write_read(plan, layout, ANALYTICS_DB, rf=3, ips=seed_ips)

    t1 = time.monotonic()
    ring.start("n4")  # not a seed: bootstraps into the ring
    ring.wait_ready("n4")
    print(f"n4 joined (bootstrap, CQL ready) after {time.monotonic() - t1:.1f} s")
    proc.wait_for(lambda: set(_states(plan, layout, ANALYTICS_DB).values()) == {"UN"}, 60, "4 nodes UN")

    t2 = time.monotonic()
    ring.stop("n2")
    print(f"n2 stopped in {time.monotonic() - t2:.1f} s")
    states = _states(plan, layout, ANALYTICS_DB)
    assert states == {"n1": "UN", "n2": "DN", "n3": "UN", "n4": "UN"}, states
    _write_read(plan, layout, ANALYTICS_DB, rf=3, ips=[f"{PREFIX}.{i}" for i in (1, 3, 4)], rows=40)

    t3 = time.monotonic()
    ring.start("n2")  # an existing node comes back with its data (hints replay the rows it missed)
    ring.wait_ready("n2")
    print(f"n2 restarted (CQL ready) after {time.monotonic() - t3:.1f} s")
    proc.wait_for(lambda: set(_states(plan, layout, ANALYTICS_DB).values()) == {"UN"}, 60, "4 nodes UN again")

    t4 = time.monotonic()
    ring.stop_all()
    print(f"4 nodes stopped in parallel in {time.monotonic() - t4:.1f} s")
