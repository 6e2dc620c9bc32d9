"""The agent service: its loops (process states, component probes), its HTTP endpoints and ``main``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

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
from contrail_ha.rendering.haproxy import stats_socket
from contrail_ha.rendering.kafka import broker_id
from contrail_ha.runtime import pids
from contrail_ha.services.analytics import nodestatus
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.node_agent.config import AGENT_PROCESS, MODULE, NODE_TYPE, AgentConfig
from contrail_ha.services.analytics.node_agent.probing import (
    BIRD_TIMEOUT,
    HAPROXY_TIMEOUT,
    KAFKA_TIMEOUT,
    RABBITMQ_TIMEOUT,
    ZK_TIMEOUT,
    CassandraWatcher,
    Probe,
    local_runner,
)
from contrail_ha.services.analytics.node_agent.processes import (
    CONFIG_DATABASE_NODE,
    DATABASE_NODE,
    LB_NODE,
    ROLES,
    TABLE_ROLE,
    expected_processes,
    host_tables,
    process_infos,
    read_state,
)
from contrail_ha.services.analytics.node_agent.publisher import Publisher
from contrail_ha.services.analytics.node_agent.structs import (
    BIRD_STATUS,
    CASSANDRA_STATUS,
    HAPROXY_STATUS,
    HEARTBEAT_STALE_S,
    KAFKA_STATUS,
    LB_AGENT_STATUS,
    NODE_STATUS,
    RABBITMQ_STATUS,
    ZOOKEEPER_STATUS,
    bird_status,
    haproxy_status,
    kafka_status,
    lb_agent_status,
    rabbitmq_status,
    zookeeper_status,
)
from contrail_ha.services.analytics.protocol import PROCESS_RUNNING, Origin
from contrail_ha.services.base import until_stopped
from contrail_ha.services.deps import Dependency
from contrail_ha.topology.model import LbProtocol, Topology
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
                inst = plan.instance(component, name)
                w = CassandraWatcher(c.cluster_name, str(self.host.ip), c.cql_port, [str(h.ip) for h in c.hosts],
                                     max(HEARTBEAT_STALE_S, 2.5 * cfg.probe_interval),
                                     login=functools.partial(cassandra_probe.monitor_login, self.layout, inst))
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
            try:
                login: tuple[str, str] | None = kafka_probe.monitor_login(self.layout, inst)
            except RuntimeError:
                login = None  # not rendered here: the broker then says why it refuses
            self._admin = kafka_probe.admin(self.plan, auth=login)
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
        self.start()
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.cfg.listen_ip, self.cfg.listen_port, reuse_address=True).start()
        log.info("%s: reporting %s (%s) to %s; listening on %s:%s", self.host.name,
                 ", ".join(host_tables(self.plan, self.host.name)), ", ".join(p.name for p in self.probes) or "-",
                 ", ".join(self.cfg.collectors), self.cfg.listen_ip, self.cfg.listen_port)
        await until_stopped()
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

