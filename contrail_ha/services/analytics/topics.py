"""The analytics topics on Kafka, created explicitly (brokers do not auto-create).

``<cluster>-uve-<p>`` (p < ``uve_partitions``): one partition each, compacted, so the latest
state of every (UVE, struct, origin) survives for a new owner to rebuild from.
``<cluster>-messages``: ``MESSAGE_PARTITIONS`` partitions, time/size retention as the broker's.
Both: RF and ``min.insync.replicas`` from the topology. Idempotent; safe to call concurrently.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from contrail_ha.services.analytics.protocol import MESSAGE_PARTITIONS, messages_topic, uve_topics
from contrail_ha.services.kafka_login import client_config

log = logging.getLogger(__name__)

UVE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),  # compaction only cleans closed segments: bound the rebuild
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(10 * 60 * 1000),
}


def wanted(cluster_id: str, uve_partitions: int) -> dict[str, tuple[int, dict[str, str]]]:
    """topic -> (partitions, config) of every analytics topic."""
    out = {t: (1, dict(UVE_TOPIC_CONFIG)) for t in uve_topics(cluster_id, uve_partitions)}
    out[messages_topic(cluster_id)] = (MESSAGE_PARTITIONS, {})
    return out


def ensure(servers: str, cluster_id: str, uve_partitions: int, rf: int, min_insync: int,
           timeout: float = 60.0, auth: tuple[str, str] | None = None) -> list[str]:
    """Create the missing analytics topics; wait until every partition has a leader. Returns those created."""
    admin = AdminClient({"bootstrap.servers": servers, "socket.timeout.ms": 5000, **client_config(auth)},
                        logger=logging.getLogger("contrail_ha.rdkafka"))
    want = wanted(cluster_id, uve_partitions)
    deadline = time.monotonic() + timeout
    created: list[str] = []
    while True:
        try:
            md = admin.list_topics(timeout=5)
            if md.controller_id < 0:
                raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no controller yet"))
            missing = [t for t in want if t not in md.topics or md.topics[t].error is not None]
            if missing:
                isr = str(min(min_insync, rf))
                futs = admin.create_topics(
                    [NewTopic(t, num_partitions=want[t][0], replication_factor=rf,
                              config={**want[t][1], "min.insync.replicas": isr}) for t in missing],
                    operation_timeout=20, request_timeout=25)
                for t, f in futs.items():
                    try:
                        f.result(30)
                        created.append(t)
                    except KafkaException as e:
                        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                            raise
                log.info("created %d analytics topics", len(created))
                md = admin.list_topics(timeout=5)
            leaderless = [f"{t}/{p.id}" for t in want for p in (md.topics[t].partitions.values()
                                                                if t in md.topics else [])
                          if p.leader < 0]
            if all(t in md.topics and len(md.topics[t].partitions) >= want[t][0] for t in want) and not leaderless:
                return created
            reason = f"partitions without a leader: {leaderless[:5]}"
        except KafkaException as e:
            reason = str(e)
        if time.monotonic() > deadline:
            raise TimeoutError(f"analytics topics not ready after {timeout:.0f}s: {reason}")
        time.sleep(0.5)
