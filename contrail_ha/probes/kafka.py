"""Kafka probes: broker registration in ZooKeeper (kazoo) and partition health (AdminClient).

Also the explicit topic management the brokers rely on (``auto.create.topics.enable=false``):
``ensure_topic`` (any topic, as the tests use it; the analytics topics are created by
``services.analytics.topics``) and ``describe_topic``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from contrail_ha.probes.base import Check, read_login
from contrail_ha.rendering import kafka as render
from contrail_ha.rendering.base import Layout
from contrail_ha.services.kafka_login import PROTOCOL, client_config
from contrail_ha.topology.plan import KAFKA, Instance, Plan

log = logging.getLogger(__name__)
# kazoo logs every refused connection; the checks report the outcome, so keep it quiet.
_kazoo_log = logging.getLogger("contrail_ha.probes.kazoo")
_kazoo_log.setLevel(logging.CRITICAL)

ZK_TIMEOUT = 3.0
ADMIN_TIMEOUT = 5.0
CHECK_TIMEOUT = 3.0
MIN_ISR = "min.insync.replicas"


@contextmanager
def _zk(plan: Plan, timeout: float = ZK_TIMEOUT) -> Iterator[KazooClient]:
    """A short-lived kazoo client on the controllers' ZooKeeper (no chroot)."""
    zk = KazooClient(hosts=plan.zookeeper_servers, timeout=max(timeout, 2.0), logger=_kazoo_log)
    try:
        zk.start(timeout=timeout)
        yield zk
    finally:
        zk.stop()
        zk.close()


def _ids_path(plan: Plan) -> str:
    return f"{plan.kafka_chroot}/brokers/ids"


def _registration(zk: KazooClient, plan: Plan, inst: Instance) -> tuple[bool, str]:
    """Whether ``inst``'s broker id is registered with the expected endpoint."""
    bid = plan.broker_id(inst.host)
    path = f"{_ids_path(plan)}/{bid}"
    try:
        raw, _ = zk.get(path)
    except NoNodeError:
        return False, f"broker {bid} not registered"
    want = f"{PROTOCOL}://{inst.address}"
    try:
        endpoints = json.loads(raw.decode()).get("endpoints", [])
    except (ValueError, AttributeError):
        return False, f"broker {bid}: unreadable registration"
    if want not in endpoints:
        return False, f"broker {bid} registered with {endpoints}, expected {want}"
    return True, f"broker {bid} registered ({inst.address})"


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    """Whether the broker of ``inst`` is registered under ``<chroot>/brokers/ids/<id>``."""
    try:
        with _zk(plan) as zk:
            return _registration(zk, plan, inst)
    except (KazooTimeoutError, KazooException) as e:
        return False, f"zookeeper: {e or type(e).__name__}"


Login = tuple[str, str] | None  # a Kafka user and password (SASL/SCRAM); None: no login


def monitor_login(layout: Layout, inst: Instance) -> tuple[str, str]:
    """The monitor user's login, as rendered for ``inst``'s host (readable there only)."""
    return read_login(render.monitor_file(layout, inst), "Kafka monitor login")


def cluster_login(plan: Plan, layout: Layout) -> Login:
    """The monitor's login from the first broker's files (None where none is rendered)."""
    insts = plan.of(KAFKA)
    try:
        return monitor_login(layout, insts[0]) if insts else None
    except RuntimeError:
        return None


def admin(plan: Plan, bootstrap: str | None = None, auth: Login = None) -> AdminClient:
    """An AdminClient bootstrapped from every broker (or only from ``bootstrap``), logged in as ``auth``."""
    return AdminClient({"bootstrap.servers": bootstrap or plan.kafka_servers,
                        "socket.timeout.ms": int(ADMIN_TIMEOUT * 1000), **client_config(auth)},
                       logger=logging.getLogger("contrail_ha.rdkafka"))


def _partition_health(plan: Plan, auth: Login = None) -> Check:
    try:
        md = admin(plan, auth=auth).list_topics(timeout=CHECK_TIMEOUT)
    except KafkaException as e:
        return Check(KAFKA, "cluster", False, f"metadata unavailable: {e}")
    under: list[str] = []
    offline: list[str] = []
    count = 0
    for t in md.topics.values():
        if t.error is not None:
            continue
        for p in t.partitions.values():
            count += 1
            if p.leader < 0:
                offline.append(f"{t.topic}/{p.id}")
            if len(p.isrs) < len(p.replicas):
                under.append(f"{t.topic}/{p.id}")
    data: dict[str, Any] = {"brokers": sorted(md.brokers), "controller": md.controller_id,
                            "topics": len(md.topics), "partitions": count,
                            "under_replicated": under[:50], "offline": offline[:50]}
    ok = not under and not offline
    if ok:
        detail = f"{count} partitions, none under-replicated"
    else:
        detail = f"{len(under)} under-replicated, {len(offline)} offline of {count} partitions"
    return Check(KAFKA, "cluster", ok, detail, data)


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """Per-broker registration checks followed by the under-replicated-partitions check."""
    insts = plan.of(KAFKA)
    out: list[Check] = []
    try:
        with _zk(plan) as zk:
            for inst in insts:
                ok, detail = _registration(zk, plan, inst)
                out.append(Check(KAFKA, inst.host.name, ok, detail,
                                 {"broker_id": plan.broker_id(inst.host), "address": inst.address}))
    except (KazooTimeoutError, KazooException) as e:
        out = [Check(KAFKA, i.host.name, False, f"zookeeper: {e or type(e).__name__}",
                     {"broker_id": plan.broker_id(i.host), "address": i.address}) for i in insts]
    out.append(_partition_health(plan, cluster_login(plan, layout)))
    return out


def _topic_min_isr(a: AdminClient, name: str) -> int:
    res = ConfigResource(ResourceType.TOPIC, name)
    entries = a.describe_configs([res], request_timeout=ADMIN_TIMEOUT)[res].result(ADMIN_TIMEOUT)
    return int(entries[MIN_ISR].value)


def _topic_ready(md: Any, name: str, partitions: int) -> bool:
    t = md.topics.get(name)
    return (t is not None and t.error is None and len(t.partitions) >= partitions
            and all(p.leader >= 0 for p in t.partitions.values()))


def _wait_topic(plan: Plan, name: str, partitions: int, timeout: float, auth: Login = None) -> None:
    """Wait until every live broker's metadata has every partition of ``name`` with a leader.

    The controller updates the brokers' metadata caches asynchronously, so each live broker is
    asked through a client bootstrapped from it alone (its first request goes to that broker).
    """
    deadline = time.monotonic() + timeout
    pending: set[str] | None = None
    while True:
        try:
            if pending is None:
                md = admin(plan, auth=auth).list_topics(timeout=ADMIN_TIMEOUT)
                pending = {f"{b.host}:{b.port}" for b in md.brokers.values()}
            for addr in sorted(pending):
                one = admin(plan, bootstrap=addr, auth=auth)
                if _topic_ready(one.list_topics(topic=name, timeout=ADMIN_TIMEOUT), name, partitions):
                    pending.discard(addr)
            if not pending:
                return
        except KafkaException as e:
            log.debug("waiting for topic %s: %s", name, e)
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} not in every broker's metadata after {timeout}s "
                               f"(missing on {sorted(pending or [])})")
        time.sleep(0.2)


_TRANSIENT = frozenset({KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError.NOT_CONTROLLER,
                        KafkaError.REQUEST_TIMED_OUT, KafkaError.BROKER_NOT_AVAILABLE})


def _wait_controller(plan: Plan, deadline: float, auth: Login = None) -> None:
    """Wait until the metadata names a controller (CreateTopics is sent to it)."""
    while True:
        try:
            if admin(plan, auth=auth).list_topics(timeout=ADMIN_TIMEOUT).controller_id >= 0:
                return
        except KafkaException as e:
            log.debug("waiting for a controller: %s", e)
        if time.monotonic() > deadline:
            raise TimeoutError("no Kafka controller in the cluster metadata")
        time.sleep(0.2)


def ensure_topic(plan: Plan, name: str, partitions: int, rf: int | None = None,
                 min_insync: int | None = None, timeout: float = 30.0, auth: Login = None) -> bool:
    """Create ``name`` with ``rf`` replicas and ``min.insync.replicas`` unless it exists, as
    ``auth`` (the brokers' user, ``rendering.kafka.login(layout, BROKER_USER)``, for a topic
    outside the analytics ones).

    Defaults come from the topology. An existing topic keeps its partitions and replicas but
    gets ``min.insync.replicas`` aligned. Returns True if this call created the topic. Waits until
    every live broker knows every partition's leader.
    """
    r = plan.topology.replication
    rf = rf or r.kafka
    min_insync = min(min_insync or r.kafka_min_insync, rf)
    deadline = time.monotonic() + timeout
    _wait_controller(plan, deadline, auth)
    created = False
    while True:
        a = admin(plan, auth=auth)
        left = max(deadline - time.monotonic(), 1.0)
        fut = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf,
                                        config={MIN_ISR: str(min_insync)})],
                              operation_timeout=left, request_timeout=left)[name]
        try:
            fut.result(left + 5)
            created = True
            break
        except KafkaException as e:
            code = e.args[0].code()
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                break
            if code not in _TRANSIENT or time.monotonic() > deadline:
                raise
            log.info("creating topic %s: %s; retrying", name, e)
            time.sleep(0.5)
    _wait_topic(plan, name, partitions if created else 1, max(deadline - time.monotonic(), 5.0), auth)
    if not created and _topic_min_isr(a, name) != min_insync:
        res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
            ConfigEntry(MIN_ISR, str(min_insync), incremental_operation=AlterConfigOpType.SET)])
        a.incremental_alter_configs([res], request_timeout=ADMIN_TIMEOUT)[res].result(ADMIN_TIMEOUT + 5)
        log.info("topic %s: %s set to %d", name, MIN_ISR, min_insync)
    return created


def describe_topic(plan: Plan, name: str, auth: Login = None) -> dict[str, Any]:
    """Partitions (leader, replicas, isr), replication factor and ``min.insync.replicas`` of ``name``.

    Raises KeyError when the topic does not exist.
    """
    a = admin(plan, auth=auth)
    t = a.list_topics(topic=name, timeout=ADMIN_TIMEOUT).topics.get(name)
    if t is None or t.error is not None:
        raise KeyError(f"topic {name}: {t.error if t is not None else 'unknown'}")
    ps = sorted(t.partitions.values(), key=lambda p: p.id)
    return {
        "name": name,
        "partitions": [{"id": p.id, "leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)}
                       for p in ps],
        "replication_factor": max((len(p.replicas) for p in ps), default=0),
        MIN_ISR: _topic_min_isr(a, name),
    }
