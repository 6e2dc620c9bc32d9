"""contrail-collector (port 8086 on every analytics host): generator batches -> Kafka, acks=all.

``POST /generator/records`` (see ``protocol``) answers 200 only once every record of the batch
is acknowledged by Kafka (``acks=all``, idempotent producer, ``min.insync.replicas`` from the
topology), so a generator that got 200 knows the batch survives the loss of a broker. A bad
envelope gets 400 (malformed JSON, origin, records not a list) or 413 (body over
``MAX_BATCH_BYTES``), nothing produced. Records are judged one by one: an invalid one (400), one
over ``MAX_RECORD_BYTES`` or refused by Kafka as too large (413) is listed in the 200's
``refused`` and the others are produced; 400/413 when no record was any good; 503 when Kafka
cannot take it (transient: the generator retries elsewhere). ``GET /generators`` lists the
generators heard from; ``GET /health`` is what status reads.

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
from confluent_kafka import KafkaError, KafkaException, Producer
from pydantic import TypeAdapter, ValidationError

from contrail_ha.errors import ContrailHaError
from contrail_ha.services import base
from contrail_ha.services.analytics import topics
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.nodestatus import NodeStatusReporter
from contrail_ha.services.analytics.protocol import (
    KAFKA_MESSAGE_MAX_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    UVE_TABLES,
    Origin,
    Record,
    UveRecord,
    encode,
    messages_topic,
    record_json,
    uve_kafka_key,
    uve_partition,
    uve_topic,
)
from contrail_ha.services.deps import Dependency, Kafka
from contrail_ha.services.kafka_login import client_config

log = logging.getLogger("collector")

PRODUCE_TIMEOUT_S = 12.0  # librdkafka retries within this (a leader election after a broker loss is ~6 s)
RECORD: TypeAdapter[Any] = TypeAdapter(Record)


class KafkaProducer:
    """A confluent-kafka producer whose deliveries resolve asyncio futures; a thread polls it."""

    def __init__(self, servers: str, max_message_bytes: int = KAFKA_MESSAGE_MAX_BYTES, *,
                 auth: tuple[str, str] | None = None) -> None:
        self.producer = Producer({
            "bootstrap.servers": servers,
            **client_config(auth),
            # produce() refuses a bigger message at once (MSG_SIZE_TOO_LARGE), so the broker never sees one
            "message.max.bytes": max_message_bytes,
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


class _Refused(ContrailHaError):
    """One record the collector will not produce, and the HTTP status that says why (400 bad, 413 too big)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _errors(e: ValidationError, prefix: str = "") -> str:
    return "; ".join(f"{prefix}{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()[:5])


_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE}
# Errors about the record itself: produce the others, refuse this one (re-sending it cannot succeed).
_RECORD_ERRORS = _TOO_LARGE | {KafkaError.INVALID_RECORD, KafkaError._INVALID_ARG}


def _too_large(e: KafkaException) -> bool:
    err = e.args[0] if e.args else None
    return isinstance(err, KafkaError) and err.code() in _TOO_LARGE


def _permanent(e: KafkaException) -> bool:
    err = e.args[0] if e.args else None
    return isinstance(err, KafkaError) and err.code() in _RECORD_ERRORS


class Collector:
    """The HTTP side: validate, produce every record, answer once Kafka acknowledged them all.

    Records are judged one by one: one that is invalid, over ``MAX_RECORD_BYTES`` or refused by
    Kafka for its own sake (message too large) is named in the answer's ``refused`` and the others
    are produced, so one poisoned record never blocks a generator.
    """

    def __init__(self, cfg: base.ServiceConfig) -> None:
        self.cfg = cfg
        self.kafka: KafkaProducer | None = None
        self.topics_ready = False
        self.generators: dict[str, dict[str, Any]] = {}
        self.stats = {"batches": 0, "records": 0, "refused": 0, "refused_records": 0, "failed": 0}

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
        """Validate the envelope (bad: 400/413, nothing produced), then judge and produce record by record."""
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
            origin, raw_records = self._envelope(body)
        except ValueError as e:
            self.stats["refused"] += 1
            return self._refuse(400, f"invalid batch: {e}")
        good: list[tuple[int, Any, tuple[str, str, bytes, int | None]]] = []
        refused: list[dict[str, Any]] = []  # index, id, status, error
        # the Kafka value is {"origin":O,"record":R}: R's size (what MAX_RECORD_BYTES bounds) without re-encoding
        envelope = len(json.dumps({"origin": origin.model_dump(), "record": None}, separators=(",", ":"))) - 4
        for i, raw_record in enumerate(raw_records):
            try:
                r, args = self._judge(i, origin, raw_record, envelope)
            except _Refused as e:
                rid = raw_record.get("id") if isinstance(raw_record, dict) else None
                refused.append({"index": i, "id": rid if isinstance(rid, str) else None, "status": e.status,
                                "error": str(e)})
                continue
            good.append((i, r, args))
        kafka = self.kafka
        if good and kafka is None:
            return self._refuse(503, "collector not connected to Kafka yet")
        futs: list[tuple[int, Any, asyncio.Future[None]]] = []
        try:
            for i, r, args in good:
                assert kafka is not None
                try:
                    futs.append((i, r, kafka.produce(*args)))
                except KafkaException as e:
                    if not _permanent(e):
                        raise
                    refused.append(self._kafka_refusal(i, r, e))
        except (BufferError, KafkaException) as e:
            self.stats["failed"] += 1
            return self._refuse(503, f"Kafka cannot take the batch: {e}")
        try:
            results = await asyncio.wait_for(asyncio.gather(*(f for _, _, f in futs), return_exceptions=True),
                                             PRODUCE_TIMEOUT_S + 3)
        except TimeoutError:
            self.stats["failed"] += 1
            return self._refuse(503, "Kafka did not acknowledge the batch: timeout")
        for (i, r, _), res in zip(futs, results, strict=True):
            if isinstance(res, KafkaException) and _permanent(res):
                refused.append(self._kafka_refusal(i, r, res))
            elif isinstance(res, BaseException):  # transient (no leader, not enough replicas...): all again
                self.stats["failed"] += 1
                return self._refuse(503, f"Kafka did not acknowledge the batch: {res}")
        refused.sort(key=lambda x: x["index"])
        accepted = len(raw_records) - len(refused)
        self.stats["refused_records"] += len(refused)
        for x in refused[:5]:
            log.warning("%s: refused %s", origin, x["error"][:300])
        if refused and not accepted:  # nothing of it was any good: refuse the batch
            self.stats["refused"] += 1
            status = 413 if all(x["status"] == 413 for x in refused) else 400
            errs = "; ".join(x["error"] for x in refused[:5])
            return web.json_response({"error": f"invalid batch: {errs}"[:4000], "accepted": 0, "refused": refused},
                                     status=status)
        key = str(origin)
        g = self.generators.setdefault(key, {"origin": origin.model_dump(), "records": 0, "batches": 0})
        g["records"] += accepted
        g["batches"] += 1
        g["last_seen"] = time.time()
        if refused:
            g["refused"] = g.get("refused", 0) + len(refused)
        self.stats["batches"] += 1
        self.stats["records"] += accepted
        out: dict[str, Any] = {"accepted": accepted}
        if refused:
            out["refused"] = refused
        return web.json_response(out)

    @staticmethod
    def _envelope(body: Any) -> tuple[Origin, list[Any]]:
        """The batch's origin and its raw records; ValueError/ValidationError when the envelope itself is bad."""
        if not isinstance(body, dict):
            raise ValueError("the body must be an object with 'origin' and 'records'")
        extra = sorted(set(body) - {"origin", "records"})
        if extra:
            raise ValueError(f"{extra[0]}: extra inputs are not permitted")
        if "origin" not in body:
            raise ValueError("origin: field required")
        try:
            origin = Origin.model_validate(body["origin"])
        except ValidationError as e:
            raise ValueError(f"origin: {_errors(e)}") from None
        records = body.get("records")
        if not isinstance(records, list):
            raise ValueError("records: a list is required")
        if len(records) > MAX_BATCH_RECORDS:
            raise ValueError(f"records: more than {MAX_BATCH_RECORDS} records; send smaller batches")
        return origin, records

    def _judge(self, i: int, origin: Origin, raw_record: Any,
               envelope: int | None = None) -> tuple[Any, tuple[str, str, bytes, int | None]]:
        """Record ``i``, validated and bounded, with its produce arguments; _Refused names what is wrong."""
        try:
            r = RECORD.validate_python(raw_record)
        except ValidationError as e:
            raise _Refused(400, _errors(e, f"records.{i}.")) from None
        if isinstance(r, UveRecord) and r.table not in UVE_TABLES:
            raise _Refused(400, f"records.{i}.table: unknown UVE table {r.table!r} "
                                f"(known: {', '.join(sorted(UVE_TABLES))})")
        args = self._produce_args(origin, r)
        size = len(args[2]) - envelope if envelope is not None else len(record_json(r))
        if size > MAX_RECORD_BYTES:
            raise _Refused(413, f"records.{i}: record {r.id} of {size} bytes is over the limit of "
                                f"{MAX_RECORD_BYTES} bytes (generators truncate records to fit)")
        if len(args[1]) + len(args[2]) > KAFKA_MESSAGE_MAX_BYTES:
            raise _Refused(413, f"records.{i}: record {r.id}: Kafka message of {len(args[1]) + len(args[2])} "
                                f"bytes is over message.max.bytes {KAFKA_MESSAGE_MAX_BYTES}")
        return r, args

    @staticmethod
    def _kafka_refusal(i: int, r: Any, e: KafkaException) -> dict[str, Any]:
        return {"index": i, "id": r.id, "status": 413 if _too_large(e) else 400,
                "error": f"records.{i}: Kafka refused record {r.id}: {e}"}

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
                                        self.cfg.kafka_rf, self.cfg.kafka_min_insync, auth=self.cfg.kafka_login())
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
    kafka_dep = Kafka(cfg.kafka, auth=cfg.kafka_login())
    deps: list[Dependency] = [kafka_dep, TopicsReady(cfg)]
    gen = Generator(origin_of(cfg, "Analytics", "contrail-collector"), cfg.collectors)

    def routes(app: web.Application) -> None:
        app.router.add_post("/generator/records", collector.h_records)
        app.router.add_get("/generators", collector.h_generators)

        async def started(app: web.Application) -> None:
            collector.kafka = KafkaProducer(cfg.kafka, auth=cfg.kafka_login())
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
