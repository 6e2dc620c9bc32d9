"""Issue 13, as an outsider on the client network sees the cluster: what is closed and what
refuses anonymous or default credentials. Grows as each part is locked down (docs/security.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from contrail_ha.rendering import rabbitmq as rmq
from contrail_ha.topology.plan import ANALYTICS_DB, CONFIG_DB
from tests.e2e.conftest import Cluster
from tests.helpers.rabbitmq import listening


def _connects(ip: str, port: int) -> bool:
    return listening(ip, port, timeout=3)  # across the router: more than loopback's half second


def test_the_lbs_stats_pages_are_not_on_the_network(cluster: Cluster) -> None:
    plan = cluster.plan
    assert _connects(plan.vip, plan.ports.config_api)  # the client network does reach the lbs' VIP
    for lb in plan.lbs:
        assert not _connects(str(lb.ip), plan.ports.haproxy_stats), lb.name


def test_the_vip_speaks_tls_only(cluster: Cluster) -> None:
    """Both APIs on the VIP: a plain-HTTP client gets no answer, a client that does not trust the
    cluster CA refuses the certificate, one that does is answered (and the hrefs are https)."""
    import ssl

    import httpx

    plan = cluster.plan
    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, trusts no CA (SSL_CERT_FILE is the cluster's here)
    for port in (plan.ports.config_api, plan.ports.analytics_api):
        with pytest.raises(httpx.TransportError):  # the port speaks TLS: no HTTP answer comes back
            httpx.get(f"http://{plan.vip}:{port}/", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://{plan.vip}:{port}/", timeout=5, verify=stranger)
    home = httpx.get(f"{cluster.api}/", timeout=5, verify=cluster.verify)
    assert home.status_code == 200 and home.json()["href"] == f"https://{plan.vip}:{plan.ports.config_api}"
    assert httpx.get(f"{cluster.analytics}/analytics", timeout=5, verify=cluster.verify).status_code == 200


def test_rabbitmq_refuses_guest_and_guesses_from_the_client_network(cluster: Cluster) -> None:
    pika = pytest.importorskip("pika")
    plan = cluster.plan
    for inst in plan.of("rabbitmq"):
        for user, pw in (("guest", "guest"), (rmq.API_USER, "guest"), (rmq.API_USER, rmq.API_USER)):
            params = pika.ConnectionParameters(inst.ip, inst.port, credentials=pika.PlainCredentials(user, pw),
                                               socket_timeout=5, connection_attempts=1)
            with pytest.raises((pika.exceptions.AuthenticationError, pika.exceptions.ProbableAuthenticationError)):
                pika.BlockingConnection(params).close()


@contextmanager
def _anonymous_zookeeper(cluster: Cluster) -> Iterator[KazooClient]:
    """A ZooKeeper session from the client network that never authenticates."""
    anon = KazooClient(hosts=cluster.plan.zookeeper_servers, timeout=4.0)
    anon.start(15)
    try:
        yield anon
    finally:
        anon.stop()
        anon.close()


def test_the_cluster_znodes_refuse_anonymous_clients(cluster: Cluster) -> None:
    """ZooKeeper answers the client network (its clients need the controllers' list), but the
    cluster's znodes (fq-name locks, id allocators) are the API replicas' digest identity's only."""
    cid = cluster.plan.cluster_id
    with _anonymous_zookeeper(cluster) as anon:
        for call, args in ((anon.exists, (f"/{cid}",)), (anon.get_children, (f"/{cid}",)), (anon.get, (f"/{cid}",)),
                           (anon.create, (f"/{cid}/planted", b"x")), (anon.set_acls, (f"/{cid}", OPEN_ACL_UNSAFE)),
                           (anon.create, ("/planted", b"x")), (anon.set_acls, ("/", OPEN_ACL_UNSAFE))):
            with pytest.raises(NoAuthError):
                call(*args)


def test_kafkas_znodes_refuse_anonymous_writers(cluster: Cluster) -> None:
    """Kafka's chroot (topics, partitions, ACLs, SCRAM credentials) is the brokers' SASL identity's:
    from the client network nobody else can grant itself an ACL, move a partition or read a credential."""
    from contrail_ha.rendering import kafka as krender

    root = cluster.plan.kafka_chroot
    with _anonymous_zookeeper(cluster) as anon:
        assert anon.get_children(f"{root}/brokers/ids")  # public, as Kafka makes it
        for call, args in ((anon.create, (f"{root}/kafka-acl/Topic/planted", b"{}")),
                           (anon.create, (f"{root}/admin/reassign_partitions", b"{}")),
                           (anon.set_acls, (root, OPEN_ACL_UNSAFE)),
                           (anon.delete, (f"{root}/controller",)),
                           (anon.get, (f"{root}/config/users/{krender.MONITOR_USER}",))):
            with pytest.raises(NoAuthError):
                call(*args)


def test_both_cassandra_clusters_refuse_anonymous_and_default_logins(cluster: Cluster) -> None:
    """Every node of both rings, from the client network: no anonymous session, Cassandra's default
    superuser is gone, and a client role's name does not open it with a guess."""
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    from contrail_ha.probes import cassandra as cprobe
    from contrail_ha.rendering import cassandra as crender

    plan = cluster.plan
    for component in (CONFIG_DB, ANALYTICS_DB):
        role = crender.CLIENT_ROLE[component]
        for inst in plan.of(component):
            for login in (None, ("cassandra", "cassandra"), (role, "cassandra"), (crender.ADMIN_ROLE, role)):
                with pytest.raises(NoHostAvailable) as info, \
                        cprobe.connected(plan, component, [inst.ip], timeout=5.0, auth=login):
                    pass
                errors = list(info.value.errors.values())
                assert errors and all(isinstance(e, AuthenticationFailed) for e in errors), (inst.name, login, errors)


def test_kafka_refuses_anonymous_and_wrong_logins(cluster: Cluster) -> None:
    """The brokers, from the client network: no plaintext client, no guessed password; a user with
    no ACL for it is refused creating a topic."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    from contrail_ha.rendering import kafka as krender
    from contrail_ha.services.kafka_login import client_config

    plan = cluster.plan
    for conf in ({}, client_config((krender.COLLECTOR_USER, "guess")), client_config((krender.BROKER_USER, "kafka"))):
        a = AdminClient({"bootstrap.servers": plan.kafka_servers, "socket.timeout.ms": 3000, **conf})
        with pytest.raises(KafkaException):
            a.list_topics(timeout=5)
    monitor = client_config(krender.login(cluster.layout, krender.MONITOR_USER))
    a = AdminClient({"bootstrap.servers": plan.kafka_servers, **monitor})
    assert a.list_topics(timeout=10).brokers  # the monitor describes the cluster
    fut = a.create_topics([NewTopic("planted", num_partitions=1, replication_factor=1)], request_timeout=15)["planted"]
    with pytest.raises(KafkaException, match="AUTHORIZATION"):
        fut.result(20)
