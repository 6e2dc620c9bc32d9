"""contrail-collector (port 8086 on every analytics host): generator batches -> Kafka, acks=all.

``POST /generator/records`` (see ``protocol``) answers 200 only once every record of the batch
is acknowledged by Kafka (``acks=all``, idempotent producer, ``min.insync.replicas`` from the
topology), so a generator that got 200 knows the batch survives the loss of a broker; 400 names
the bad field and 413 refuses an oversize batch (nothing produced); 503 when Kafka cannot take
it. ``GET /generators`` lists the generators heard from; ``GET /health`` is what status reads.

Run as ``python -m contrail_ha.services.analytics.collector service.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaException, Producer
from pydantic import ValidationError

from contrail_ha.services import base
from contrail_ha.services.analytics import topics
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.nodestatus import NodeStatusReporter
from contrail_ha.services.analytics.protocol import (
    MAX_BATCH_BYTES,
    UVE_TABLES,
    Batch,
    Origin,
    UveRecord,
    encode,
    messages_topic,
    uve_kafka_key,
    uve_partition,
    uve_topic,
)
from contrail_ha.services.deps import Dependency, Kafka

log = logging.getLogger("collector")

PRODUCE_TIMEOUT_S = 12.0  # librdkafka retries within this (a leader election after a broker loss is ~6 s)


class KafkaProducer:
    """A confluent-kafka producer whose deliveries resolve asyncio futures; a thread polls it."""

    def __init__(self, servers: str) -> None:
        self.producer = Producer({
            "bootstrap.servers": servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": int(PRODUCE_TIMEOUT_S * 1000),
            "socket.timeout.ms": 5000,
            "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 5000,
            "queue.buffering.max.messages": 200000,
            "logger": logging.getLogger("contrail_ha.rdkafka"),
        })
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    def produce(self, topic: str, key: str, value: bytes, partition: int | None = None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def settle(err: Any) -> None:
            if fut.done():
                return
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(KafkaException(err))

        def delivered(err: Any, _msg: Any) -> None:
            try:
                loop.call_soon_threadsafe(settle, err)
            except RuntimeError:
                pass

        kwargs: dict[str, Any] = {"key": key.encode(), "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        self.producer.produce(topic, **kwargs)
        return fut

    def close(self, timeout: float = 5.0) -> None:
        self.producer.flush(timeout)
        self._stop.set()


class Collector:
    """The HTTP side: validate, produce every record, answer once Kafka acknowledged them all."""

    def __init__(self, cfg: base.ServiceConfig) -> None:
        self.cfg = cfg
        self.kafka: KafkaProducer | None = None
        self.topics_ready = False
        self.generators: dict[str, dict[str, Any]] = {}
        self.stats = {"batches": 0, "records": 0, "refused": 0, "failed": 0}

    def route(self, origin: Origin, r: Any) -> tuple[str, str, int | None]:
        """(topic, key, partition) of one record."""
        if isinstance(r, UveRecord):
            p = uve_partition(r.table, r.key, self.cfg.uve_partitions)
            return uve_topic(self.cfg.cluster_id, p), uve_kafka_key(r, origin), 0
        return messages_topic(self.cfg.cluster_id), str(origin), None

    @staticmethod
    def _refuse(status: int, text: str) -> web.Response:
        return web.Response(status=status, text=text, content_type="text/plain")

    async def h_records(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BATCH_BYTES:
            self.stats["refused"] += 1
            return self._refuse(413, f"batch of {request.content_length} bytes is over the limit of "
                                     f"{MAX_BATCH_BYTES} bytes; send smaller batches")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as e:
            self.stats["refused"] += 1
            return self._refuse(400, f"malformed JSON: {e}")
        try:
            batch = Batch.model_validate(body)
        except ValidationError as e:
            self.stats["refused"] += 1
            errs = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
            return self._refuse(400, f"invalid batch: {errs}")
        for i, r in enumerate(batch.records):
            if isinstance(r, UveRecord) and r.table not in UVE_TABLES:
                self.stats["refused"] += 1
                return self._refuse(400, f"invalid batch: records.{i}.table: unknown UVE table {r.table!r} "
                                         f"(known: {', '.join(sorted(UVE_TABLES))})")
        if self.kafka is None:
            return self._refuse(503, "collector not connected to Kafka yet")
        try:
            futs = [self.kafka.produce(*self._produce_args(batch.origin, r)) for r in batch.records]
        except (BufferError, KafkaException) as e:
            self.stats["failed"] += 1
            return self._refuse(503, f"Kafka cannot take the batch: {e}")
        try:
            await asyncio.wait_for(asyncio.gather(*futs), PRODUCE_TIMEOUT_S + 3)
        except (TimeoutError, KafkaException) as e:
            self.stats["failed"] += 1
            return self._refuse(503, f"Kafka did not acknowledge the batch: {e or 'timeout'}")
        origin = str(batch.origin)
        g = self.generators.setdefault(origin, {"origin": batch.origin.model_dump(), "records": 0, "batches": 0})
        g["records"] += len(batch.records)
        g["batches"] += 1
        g["last_seen"] = time.time()
        self.stats["batches"] += 1
        self.stats["records"] += len(batch.records)
        return web.json_response({"accepted": len(batch.records)})

    def _produce_args(self, origin: Origin, r: Any) -> tuple[str, str, bytes, int | None]:
        topic, key, partition = self.route(origin, r)
        return topic, key, encode(origin, r), partition

    async def h_generators(self, request: web.Request) -> web.Response:
        now = time.time()
        return web.json_response({o: {**g, "seconds_ago": round(now - g.get("last_seen", now), 1)}
                                  for o, g in sorted(self.generators.items())})


class TopicsReady(Dependency):
    """Healthy once every analytics topic exists with a leader for each partition."""

    name = "topics"

    def __init__(self, cfg: base.ServiceConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._set(False, "checking the analytics topics")
        threading.Thread(target=self._run, name="topics", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                created = topics.ensure(self.cfg.kafka, self.cfg.cluster_id, self.cfg.uve_partitions,
                                        self.cfg.kafka_rf, self.cfg.kafka_min_insync)
                self._set(True, f"{self.cfg.uve_partitions} UVE topics and the message topic ready"
                                + (f" ({len(created)} created)" if created else ""))
                return
            except Exception as e:
                self._set(False, f"{e.__class__.__name__}: {e}"[:200])
                time.sleep(1)


def origin_of(cfg: base.ServiceConfig, node_type: str, module: str) -> Origin:
    return Origin(source=cfg.host, node_type=node_type, module=module, instance_id=cfg.name)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = base.ServiceConfig.load(args[0])
    collector = Collector(cfg)
    kafka_dep = Kafka(cfg.kafka)
    deps: list[Dependency] = [kafka_dep, TopicsReady(cfg)]
    gen = Generator(origin_of(cfg, "Analytics", "contrail-collector"), cfg.collectors)

    def routes(app: web.Application) -> None:
        app.router.add_post("/generator/records", collector.h_records)
        app.router.add_get("/generators", collector.h_generators)

        async def started(app: web.Application) -> None:
            collector.kafka = KafkaProducer(cfg.kafka)
            gen.start()
            NodeStatusReporter(gen, deps, extra_structs=lambda: {"CollectorStatus": {
                "collector": f"{cfg.listen_ip}:{cfg.listen_port}", "generators": len(collector.generators)}}).start()

        async def stopping(app: web.Application) -> None:
            await gen.stop(1.0)
            if collector.kafka is not None:
                await asyncio.to_thread(collector.kafka.close)

        app.on_startup.append(started)
        app.on_cleanup.append(stopping)

    base.run(args[0], deps, routes, client_max_size=MAX_BATCH_BYTES + 1)


if __name__ == "__main__":
    main()
