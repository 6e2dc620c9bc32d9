"""From a topology to a plan: every service instance, where it runs and what it binds.

The plan is the single source the renderers, the runtime and the status checks read;
nothing downstream looks at the raw topology file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property

from contrail_ha.topology.identity import resolve
from contrail_ha.topology.model import Host, LbBind, Role, Topology

ANY = "0.0.0.0"

# Components, in start order (waves); the runtime and status use these names.
ZOOKEEPER = "zookeeper"
RABBITMQ = "rabbitmq"
CONFIG_DB = "config-db"
ANALYTICS_DB = "analytics-db"
KAFKA = "kafka"
CONFIG_API = "config-api"
ANALYTICS_API = "analytics-api"
COLLECTOR = "collector"
AGGREGATOR = "aggregator"
NODE_AGENT = "node-agent"
HAPROXY = "haproxy"
BIRD = "bird"
LB_AGENT = "lb-agent"

ROLE_OF = {
    ZOOKEEPER: Role.CONTROLLER,
    RABBITMQ: Role.CONTROLLER,
    CONFIG_DB: Role.CONTROLLER,
    CONFIG_API: Role.CONTROLLER,
    ANALYTICS_API: Role.ANALYTICS,
    COLLECTOR: Role.ANALYTICS,
    AGGREGATOR: Role.ANALYTICS,
    ANALYTICS_DB: Role.ANALYTICSDB,
    KAFKA: Role.ANALYTICSDB,
    HAPROXY: Role.LB,
    BIRD: Role.LB,
    LB_AGENT: Role.LB,
}
NODE_GROUP = "node"  # every host's own supervisor group: the node agent (not one of the seed's roles)
# component -> the supervisor group that runs it on its host
GROUP_OF: dict[str, str] = {**{c: r.value for c, r in ROLE_OF.items()}, NODE_AGENT: NODE_GROUP}


def local_only(host_ip: str) -> str:
    """The address of a port only its own host may reach: the loopback. A host that is a loopback
    address itself (several hosts in one namespace, in tests) keeps its own."""
    return host_ip if ipaddress.ip_address(host_ip).is_loopback else "127.0.0.1"


def group_of_process(proc: str) -> str:
    """The role group whose supervisor runs the process named ``proc`` (e.g. ``config-api-1``)."""
    component = proc.rsplit("-", 1)[0] if proc.rsplit("-", 1)[-1].isdigit() else proc
    return GROUP_OF.get(component, Role.CONTROLLER.value)  # epmd lives with rabbitmq

# Fixed ports that the topology does not expose (protocol constants or derived).
EPMD_PORT = 4369
RABBITMQ_DIST_OFFSET = 20000  # Erlang distribution port = AMQP port + 20000 (25673), as in Contrail
RABBITMQ_MGMT_OFFSET = 10000  # management HTTP API = AMQP port + 10000 (15673), as in Contrail
BGP_PORT = 179
CONFIG_DB_JMX = 7201
ANALYTICS_DB_JMX = 7200
REPLICA_PORT_STEP = 10000  # replica i of a stateless API listens on base + i * step (8082, 18082, ...)


@dataclass(frozen=True)
class Binding:
    """One listening socket: ``ip`` is ANY for a wildcard bind."""

    ip: str
    port: int
    owner: str
    proto: str = "tcp"

    def clashes(self, other: Binding) -> bool:
        return (
            self.proto == other.proto
            and self.port == other.port
            and (self.ip == other.ip or ANY in (self.ip, other.ip))
        )

    def __str__(self) -> str:
        return f"{'*' if self.ip == ANY else self.ip}:{self.port}/{self.proto} ({self.owner})"


@dataclass(frozen=True)
class Instance:
    """One running service instance on one host."""

    component: str
    host: Host
    index: int  # 0-based position among the instances of this component, cluster-wide
    replica: int = 0  # 0-based replica number on its host (stateless APIs only)
    port: int = 0  # main service port
    bindings: tuple[Binding, ...] = field(default=())

    @property
    def name(self) -> str:
        """Process name on its host, e.g. ``config-api-1`` or ``zookeeper``."""
        if self.component in (CONFIG_API, ANALYTICS_API):
            return f"{self.component}-{self.replica + 1}"
        return self.component

    @property
    def ip(self) -> str:
        return str(self.host.ip)

    @property
    def address(self) -> str:
        return f"{self.host.ip}:{self.port}"


class Plan:
    """Derived facts about a validated topology.

    The topology is kept with every member's identity set (``topology.identity``): pass one
    resolved against the running cluster's record (``identity.with_record``); an unresolved one
    gets the identities a new cluster would."""

    def __init__(self, topology: Topology) -> None:
        topology = resolve(topology)[0]
        self.topology = topology
        self.cluster_id = topology.cluster.id
        self.vip = str(topology.cluster.vip)
        self.ports = topology.ports
        self.controllers = topology.with_role(Role.CONTROLLER)
        self.lbs = topology.with_role(Role.LB)
        self.analytics = topology.with_role(Role.ANALYTICS)
        self.analyticsdb = topology.with_role(Role.ANALYTICSDB)

    # --- network -----------------------------------------------------------------------------
    @cached_property
    def network(self) -> ipaddress.IPv4Network:
        return self.topology.cluster.network

    @cached_property
    def router_ip(self) -> str:
        """The upstream router's address on the hosts' network (``lb.router_ip``, else its first address)."""
        return str(self.topology.lb.router_ip or next(self.network.hosts()))

    @cached_property
    def client_link(self) -> tuple[str, str]:
        """(router side, client side) addresses of the client's own link to the router."""
        hosts = list(self.topology.cluster.client_network.hosts())
        return str(hosts[0]), str(hosts[1])

    # --- the VIP, as users reach it ----------------------------------------------------------
    @cached_property
    def config_api_url(self) -> str:
        """The config API on the VIP (``https`` with ``tls.vip``)."""
        return f"{self.vip_scheme}://{self.vip}:{self.ports.config_api}"

    @cached_property
    def analytics_api_url(self) -> str:
        """The analytics API on the VIP (``https`` with ``tls.vip``)."""
        return f"{self.vip_scheme}://{self.vip}:{self.ports.analytics_api}"

    @cached_property
    def vip_scheme(self) -> str:
        return "https" if self.topology.tls.vip else "http"

    # --- node lists (what clients get: the list of IPs, not the VIP) --------------------------
    def ips(self, hosts: list[Host]) -> list[str]:
        return [str(h.ip) for h in hosts]

    @cached_property
    def zookeeper_servers(self) -> str:
        return ",".join(f"{ip}:{self.ports.zookeeper}" for ip in self.ips(self.controllers))

    @cached_property
    def kafka_chroot(self) -> str:
        return f"/{self.cluster_id}-kafka"

    @cached_property
    def kafka_zookeeper_connect(self) -> str:
        return self.zookeeper_servers + self.kafka_chroot

    @cached_property
    def kafka_servers(self) -> str:
        return ",".join(f"{ip}:{self.ports.kafka}" for ip in self.ips(self.analyticsdb))

    @cached_property
    def rabbitmq_servers(self) -> list[str]:
        return [f"{ip}:{self.ports.rabbitmq}" for ip in self.ips(self.controllers)]

    def rabbitmq_node_name(self, host: Host) -> str:
        return f"rabbit@{host.ip}"

    @cached_property
    def config_db_name(self) -> str:
        return "contrail_database"

    @cached_property
    def analytics_db_name(self) -> str:
        return "contrail_analytics"

    @staticmethod
    def myid(host: Host) -> int:
        """The ZooKeeper server id of a controller."""
        if host.identity.zookeeper_myid is None:
            raise KeyError(f"{host.name} is not a ZooKeeper server")
        return host.identity.zookeeper_myid

    @staticmethod
    def broker_id(host: Host) -> int:
        """The Kafka broker.id of an analyticsdb host."""
        if host.identity.kafka_broker_id is None:
            raise KeyError(f"{host.name} is not a Kafka broker")
        return host.identity.kafka_broker_id

    def seeds(self, component: str) -> list[Host]:
        """The seeds of a Cassandra ring (``config-db`` or ``analytics-db``), in file order."""
        if component == CONFIG_DB:
            return [h for h in self.controllers if h.identity.config_db_seed]
        if component == ANALYTICS_DB:
            return [h for h in self.analyticsdb if h.identity.analytics_db_seed]
        raise ValueError(f"not a Cassandra component: {component}")

    # --- instances -------------------------------------------------------------------------
    @cached_property
    def instances(self) -> list[Instance]:
        p = self.ports
        out: list[Instance] = []
        any_bind = self.topology.lb.bind == LbBind.ANY
        lb_ip = ANY if any_bind else self.vip
        for i, h in enumerate(self.lbs):
            ip = str(h.ip)
            out.append(
                Instance(
                    HAPROXY,
                    h,
                    i,
                    port=p.config_api,
                    bindings=(
                        Binding(lb_ip, p.config_api, "haproxy config-api frontend"),
                        Binding(lb_ip, p.analytics_api, "haproxy analytics-api frontend"),
                        Binding(local_only(ip), p.haproxy_stats, "haproxy stats (loopback only)"),
                    ),
                )
            )
            out.append(Instance(BIRD, h, i, port=BGP_PORT, bindings=(Binding(ANY, BGP_PORT, "bird bgp"),)))
            out.append(Instance(LB_AGENT, h, i))
        for i, h in enumerate(self.controllers):
            ip = str(h.ip)
            out.append(
                Instance(
                    ZOOKEEPER,
                    h,
                    i,
                    port=p.zookeeper,
                    bindings=(
                        Binding(ip, p.zookeeper, "zookeeper client"),
                        Binding(ip, p.zookeeper_peer, "zookeeper peer"),
                        Binding(ip, p.zookeeper_election, "zookeeper election"),
                    ),
                )
            )
            out.append(
                Instance(
                    RABBITMQ,
                    h,
                    i,
                    port=p.rabbitmq,
                    bindings=(
                        Binding(ip, p.rabbitmq, "rabbitmq amqp"),
                        Binding(ip, EPMD_PORT, "rabbitmq epmd"),
                        Binding(ip, p.rabbitmq + RABBITMQ_DIST_OFFSET, "rabbitmq distribution"),
                        Binding(ip, p.rabbitmq + RABBITMQ_MGMT_OFFSET, "rabbitmq management"),
                    ),
                )
            )
            out.append(
                Instance(
                    CONFIG_DB,
                    h,
                    i,
                    port=p.config_db_cql,
                    bindings=(
                        Binding(ip, p.config_db_cql, "config-db cql"),
                        Binding(ip, p.config_db_storage, "config-db storage"),
                        Binding("127.0.0.1", CONFIG_DB_JMX, "config-db jmx"),
                    ),
                )
            )
        out += self._replicas(CONFIG_API, self.controllers, p.config_api, self.topology.services.config_api_replicas)
        out += self._replicas(ANALYTICS_API, self.analytics, p.analytics_api,
                              self.topology.services.analytics_api_replicas)
        for comp, port, what in ((COLLECTOR, p.collector, "collector"), (AGGREGATOR, p.aggregator, "aggregator")):
            for i, h in enumerate(self.analytics):
                out.append(Instance(comp, h, i, port=port, bindings=(Binding(str(h.ip), port, what),)))
        for i, h in enumerate(self.analyticsdb):
            ip = str(h.ip)
            out.append(
                Instance(
                    ANALYTICS_DB,
                    h,
                    i,
                    port=p.analytics_db_cql,
                    bindings=(
                        Binding(ip, p.analytics_db_cql, "analytics-db cql"),
                        Binding(ip, p.analytics_db_storage, "analytics-db storage"),
                        Binding("127.0.0.1", ANALYTICS_DB_JMX, "analytics-db jmx"),
                    ),
                )
            )
            out.append(
                Instance(KAFKA, h, i, port=p.kafka, bindings=(Binding(ip, p.kafka, "kafka"),))
            )
        for i, h in enumerate(self.topology.hosts):
            out.append(Instance(NODE_AGENT, h, i, port=p.node_agent,
                                bindings=(Binding(str(h.ip), p.node_agent, "node agent"),)))
        return out

    @staticmethod
    def _replicas(component: str, hosts: list[Host], base_port: int, per_host: int) -> list[Instance]:
        """``per_host`` replicas of a stateless API on each host: ports base, base + step, ..."""
        out: list[Instance] = []
        for h in hosts:
            for r in range(per_host):
                port = base_port + r * REPLICA_PORT_STEP
                out.append(Instance(component, h, len(out), replica=r, port=port,
                                    bindings=(Binding(str(h.ip), port, f"{component}-{r + 1}"),)))
        return out

    def of(self, component: str) -> list[Instance]:
        """Every instance of ``component``, cluster-wide, in index order."""
        return [i for i in self.instances if i.component == component]

    def on(self, host: Host | str) -> list[Instance]:
        """Every instance on ``host``."""
        name = host if isinstance(host, str) else host.name
        return [i for i in self.instances if i.host.name == name]

    def instance(self, component: str, host: Host | str) -> Instance:
        name = host if isinstance(host, str) else host.name
        for i in self.of(component):
            if i.host.name == name:
                return i
        raise KeyError(f"{component} on {name}")
