"""The topology file: hosts with roles, plus cluster-wide settings.

Parsing is strict (unknown keys are refused with their path); cross-field rules live in
``topology.validate`` so that every problem is reported at once, each naming its key.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Role(StrEnum):
    """The seed's four container roles."""

    LB = "lb"
    CONTROLLER = "controller"
    ANALYTICS = "analytics"
    ANALYTICSDB = "analyticsdb"


class LbProtocol(StrEnum):
    """How each lb announces the VIP to the upstream router."""

    BGP = "bgp"
    BABEL = "babel"


class LbBind(StrEnum):
    """Where HAProxy's frontends listen: only on the VIP, or on every address of the lb host."""

    VIP = "vip"
    ANY = "any"


class Jit(StrEnum):
    """How much JIT compiling the JVMs do."""

    C1 = "c1"  # the client compiler only: far less compile work at start, for small shared machines
    FULL = "full"  # tiered C1 + C2: the JVM's default, for production hosts


HOSTNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,10}$")
IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
CLUSTER_ID_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(_Strict):
    """A host's identities in the clustered stores, which its data belongs to.

    Unset, each is assigned once (file order for a new cluster, the next unused number for a host
    added later) and recorded with the running cluster, so removing or reordering hosts never
    renumbers a member; set, it pins the value (a change of a recorded one is refused)."""

    zookeeper_myid: int | None = Field(None, ge=1, le=255, description="ZooKeeper server id (controllers)")
    kafka_broker_id: int | None = Field(None, ge=0, le=65535, description="Kafka broker.id (analyticsdb hosts)")
    config_db_seed: bool | None = Field(None, description="a seed of the config-DB Cassandra ring (controllers)")
    analytics_db_seed: bool | None = Field(None, description="a seed of the analytics-DB ring (analyticsdb hosts)")


class Host(_Strict):
    """One machine of the cluster (locally: one network namespace)."""

    name: str = Field(description="short host name, also its hostname inside the namespace")
    ip: ipaddress.IPv4Address
    roles: list[Role] = Field(min_length=1)
    interface: str = Field("eth0", description="the interface that carries ip (BIRD's Babel and BFD run on it)")
    cpus: int | None = Field(None, ge=1, le=1024, description="CPUs the host's JVMs size for (default jvm.cpus)")
    identity: Identity = Identity()

    @field_validator("interface")
    @classmethod
    def _iface(cls, v: str) -> str:
        if not IFACE_RE.match(v):
            raise ValueError("must be a network interface name: 1-15 letters, digits or . _ : -")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not HOSTNAME_RE.match(v):
            raise ValueError(
                "must be 1-11 characters of lowercase letters, digits or '-', starting with a letter"
            )
        return v

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, v: list[Role]) -> list[Role]:
        if len(set(v)) != len(v):
            raise ValueError("a role is listed twice")
        return v

    def has(self, role: Role) -> bool:
        return role in self.roles


class Replication(_Strict):
    """Replication factors of the clustered stores."""

    config_db: int = Field(3, ge=1, description="config-DB Cassandra keyspace RF")
    analytics_db: int = Field(3, ge=1, description="analytics-DB Cassandra keyspace RF")
    kafka: int = Field(3, ge=1, description="Kafka default.replication.factor")
    kafka_min_insync: int = Field(2, ge=1, description="Kafka min.insync.replicas")


class Heap(_Strict):
    """Explicit JVM heap sizes in MiB (2 cores and many JVMs share one machine)."""

    config_db: int = Field(512, ge=128, le=8192)
    analytics_db: int = Field(512, ge=128, le=8192)
    zookeeper: int = Field(256, ge=64, le=4096)
    kafka: int = Field(384, ge=128, le=8192)


class Jvm(_Strict):
    """How the JVMs (Cassandra, ZooKeeper, Kafka) size themselves. The defaults suit this project's
    local cluster, every JVM on two shared cores; on production hosts give their CPU count (per
    host: ``hosts[].cpus``) and the full JIT."""

    cpus: int = Field(2, ge=1, le=1024, description="CPUs a JVM sizes its GC and thread pools for")
    jit: Jit = Jit.C1


class Ports(_Strict):
    """Service ports; defaults are the original Contrail ports."""

    config_api: int = Field(8082, ge=1, le=65535)
    analytics_api: int = Field(8081, ge=1, le=65535)
    collector: int = Field(8086, ge=1, le=65535)
    aggregator: int = Field(5995, ge=1, le=65535)  # the original alarm-gen's introspect port
    node_agent: int = Field(8100, ge=1, le=65535)  # the original nodemgrs' first port
    haproxy_stats: int = Field(5937, ge=1, le=65535)
    zookeeper: int = Field(2181, ge=1, le=65535)
    zookeeper_peer: int = Field(2888, ge=1, le=65535)
    zookeeper_election: int = Field(3888, ge=1, le=65535)
    rabbitmq: int = Field(5673, ge=1, le=65535)
    config_db_cql: int = Field(9041, ge=1, le=65535)
    config_db_storage: int = Field(7012, ge=1, le=65535)
    analytics_db_cql: int = Field(9042, ge=1, le=65535)
    analytics_db_storage: int = Field(7010, ge=1, le=65535)
    kafka: int = Field(9092, ge=1, le=65535)


class Lb(_Strict):
    """contrail-lb settings: VIP announcement and HAProxy binding."""

    protocol: LbProtocol = LbProtocol.BGP
    bind: LbBind = LbBind.VIP
    router_ip: ipaddress.IPv4Address | None = Field(
        None, description="the upstream router the lbs peer with, on cluster.network (default: its first address)")
    router_asn: int = Field(64512, ge=1, le=4294967294)
    lb_asn: int = Field(64513, ge=1, le=4294967294)
    bfd_interval_ms: int = Field(100, ge=10, le=10000)
    bfd_multiplier: int = Field(3, ge=1, le=255)
    babel_hello_ms: int = Field(50, ge=10, le=60000)
    babel_update_ms: int = Field(200, ge=10, le=60000)


class Services(_Strict):
    """Our stateless services: replicas per host carrying their role."""

    config_api_replicas: int = Field(1, ge=1, le=5, description="contrail-api instances per controller host")
    analytics_api_replicas: int = Field(
        1, ge=1, le=5, description="contrail-analytics-api instances per analytics host"
    )


class Cluster(_Strict):
    """Cluster-wide settings."""

    id: str = Field("contrail", description="cluster id: prefixes keyspaces, ZooKeeper paths, Kafka topics")
    vip: ipaddress.IPv4Address
    network: ipaddress.IPv4Network = Field(description="the hosts' network; the router takes its first address")
    client_network: ipaddress.IPv4Network = Field(
        ipaddress.IPv4Network("10.250.0.0/30"), description="link between the router and the client"
    )
    uve_partitions: int = Field(30, ge=1, le=256, description="Kafka partitions for UVEs")

    @field_validator("id")
    @classmethod
    def _cid(cls, v: str) -> str:
        if not CLUSTER_ID_RE.match(v):
            raise ValueError("must be 1-8 lowercase letters or digits, starting with a letter")
        return v


class Tls(_Strict):
    """TLS on the VIP: HAProxy terminates it for both APIs with the cluster CA's certificate (made
    by contrail-ha) or the site's own ``cert`` and ``key``; clients verify it with the CA."""

    vip: bool = Field(True, description="the VIP's API ports speak TLS only (plain HTTP is refused)")
    names: list[Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9*.-]+$")]] = Field(
        default_factory=list, description="DNS names clients reach the VIP by (the VIP's address is always in)")
    cert: str | None = Field(None, description="the site's certificate chain (PEM file) for the VIP")
    key: str | None = Field(None, description="its private key (PEM file, unencrypted)")
    ca: str | None = Field(None, description="the CA file contrail-ha's own clients (drills, status, UI) verify "
                                             "the site's certificate with (default: the system's)")


class Topology(_Strict):
    """A whole contrail-ha deployment."""

    cluster: Cluster
    replication: Replication = Replication()
    heap: Heap = Heap()
    jvm: Jvm = Jvm()
    ports: Ports = Ports()
    lb: Lb = Lb()
    services: Services = Services()
    tls: Tls = Tls()
    hosts: Annotated[list[Host], Field(min_length=1)]

    def with_role(self, role: Role) -> list[Host]:
        """Hosts carrying ``role``, in file order."""
        return [h for h in self.hosts if h.has(role)]

    def cpus(self, host: Host) -> int:
        """CPUs the JVMs on ``host`` size themselves for."""
        return host.cpus or self.jvm.cpus

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)
