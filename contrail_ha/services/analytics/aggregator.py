"""contrail-alarm-gen's role: aggregate UVEs, evaluate alarms, store everything in the analytics DB.

One aggregator runs on every analytics host. Partition ownership is a Kafka consumer group
(``<cluster>-aggregator``, cooperative-sticky assignment): when an aggregator dies, the group
coordinator notices within the session timeout and hands its partitions to the others; only
the moved partitions change hands.

- UVE topics (compacted, one partition each): on assignment the new owner reads the partition
  from the beginning up to the high watermark seen at assignment ("rebuilding"), then writes
  every UVE of the partition once and goes live; each later record updates the UVE, re-evaluates
  its alarms and writes it when its value or alarms changed. A one-second tick re-aggregates
  (origins going stale) the same way.
- The message topic: messages and object logs are written (idempotent rows keyed by record
  id) before their offsets are stored for commit: at-least-once, never lost, never doubled.

Run as ``python -m contrail_ha.services.analytics.aggregator service.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from contrail_ha.services import base
from contrail_ha.services.analytics import alarms
from contrail_ha.services.analytics.collector import origin_of
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.nodestatus import NodeStatusReporter
from contrail_ha.services.analytics.protocol import (
    MessageRecord,
    ObjectLogRecord,
    UveRecord,
    consumer_group,
    decode,
    messages_topic,
    now_us,
    uve_topics,
)
from contrail_ha.services.analytics.store import AnalyticsStore, StoreUnavailable
from contrail_ha.services.analytics.uve import UveState
from contrail_ha.services.deps import Dependency, Kafka
from contrail_ha.services.kafka_login import client_config

log = logging.getLogger("aggregator")

ORIGIN_EXPIRY_S = 600.0  # an origin silent this long is forgotten (a removed host, a renamed replica)
TICK_S = 1.0


@dataclass
class Partition:
    """One UVE partition this aggregator owns."""

    topic: str
    number: int
    target: int | None = None  # high watermark after assignment: rebuilt once consumed up to here
    rebuilding: bool = True
    uves: dict[tuple[str, str], UveState] = field(default_factory=dict)
    written: dict[tuple[str, str], str] = field(default_factory=dict)  # last written value + alarms (JSON)
    alarms: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)


def agent_age_s(u: UveState, now: int) -> float | None:
    """Seconds since the node agent last reported in this UVE, None if it never did."""
    ts = [p.ts for origin, structs in u.origins.items() if origin.split(":")[2] == alarms.NODE_AGENT
          for p in structs.values()]
    return (now - max(ts)) / 1e6 if ts else None


class Aggregator:
    def __init__(self, cfg: base.ServiceConfig, store: AnalyticsStore) -> None:
        self.cfg = cfg
        self.store = store
        self.uve_topics = uve_topics(cfg.cluster_id, cfg.uve_partitions)
        self.number = {t: i for i, t in enumerate(self.uve_topics)}
        self.messages_topic = messages_topic(cfg.cluster_id)
        self.parts: dict[str, Partition] = {}
        self.message_parts: set[int] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.consumer: Consumer | None = None
        self.joined = False
        self.stopping = threading.Event()
        self.stats = {"records": 0, "messages": 0, "objectlogs": 0, "uve_writes": 0, "rebuilds": 0,
                      "db_retries": 0}
        self.db_ok, self.db_reason = False, "not written yet"

    # --- the consumer thread ---------------------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        """Run a coroutine on the service's loop and wait for it (the consumer thread blocks meanwhile)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    # Rebalance callbacks run inside consume(): they only record the change (no broker round trip,
    # no exception may escape - it would surface from consume() and lose the assignment).
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            for tp in partitions:
                if tp.topic in self.number:
                    tp.offset = OFFSET_BEGINNING  # the compacted UVE topics are replayed to rebuild state
            consumer.incremental_assign(partitions)
            self._call(self._assigned([Partition(tp.topic, self.number[tp.topic]) for tp in partitions
                                       if tp.topic in self.number],
                                      [tp.partition for tp in partitions if tp.topic == self.messages_topic]))
        except Exception:
            log.exception("assigning %s", partitions)

    async def _assigned(self, added: list[Partition], message_parts: list[int]) -> None:
        for p in added:
            self.parts[p.topic] = p
            self.stats["rebuilds"] += 1
            log.info("assigned UVE partition %d: rebuilding", p.number)
        self.message_parts.update(message_parts)
        if message_parts:
            log.info("assigned message partitions %s", sorted(message_parts))
        self.joined = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition], lost: bool = False) -> None:
        # stored offsets are committed by the client itself on revocation (enable.auto.commit)
        try:
            self._call(self._revoked([tp.topic for tp in partitions if tp.topic in self.number],
                                     [tp.partition for tp in partitions if tp.topic == self.messages_topic], lost))
        except Exception:
            log.exception("revoking %s", partitions)

    async def _revoked(self, uve_topics: list[str], message_parts: list[int], lost: bool) -> None:
        how = "lost" if lost else "revoked"
        for t in uve_topics:
            self.parts.pop(t, None)
            log.info("%s UVE partition %d", how, self.number[t])
        self.message_parts.difference_update(message_parts)
        if message_parts:
            log.info("%s message partitions %s", how, sorted(message_parts))

    def _rebuild_targets(self, c: Consumer) -> None:
        """Rebuilding partitions: learn their high watermark; go live once consumed up to it."""
        done: list[str] = []
        for p in [p for p in list(self.parts.values()) if p.rebuilding]:
            tp = TopicPartition(p.topic, 0)
            if p.target is None:
                try:
                    low, high = c.get_watermark_offsets(tp, timeout=2, cached=False)
                except Exception as e:  # the leader is moving: ask again on the next round
                    log.info("watermarks of UVE partition %d: %s", p.number, e)
                    break
                p.target = high if high > low else 0
                log.info("UVE partition %d: rebuilding up to offset %d", p.number, p.target)
            try:
                [pos] = c.position([tp])
            except Exception:
                continue
            if p.target == 0 or (pos.offset >= 0 and pos.offset >= p.target):
                done.append(p.topic)
        if done:
            self._call(self._go_live(done))

    def _consume(self) -> None:
        try:
            self._consume_loop()
        except BaseException:
            log.exception("the consumer thread failed")
        finally:
            if not self.stopping.is_set():
                # never keep running without a consumer: the supervisor restarts the whole aggregator
                log.error("consumer thread ended: exiting for a restart")
                os._exit(3)

    def _consume_loop(self) -> None:
        c = self.consumer
        assert c is not None
        c.subscribe([*self.uve_topics, self.messages_topic], on_assign=self._on_assign,
                    on_revoke=self._on_revoke, on_lost=lambda cons, ps: self._on_revoke(cons, ps, lost=True))
        while not self.stopping.is_set():
            try:
                msgs = c.consume(num_messages=500, timeout=0.2)
            except Exception as e:  # KafkaException, or a KafkaError raised by the client itself
                log.warning("consume: %s", e)
                continue
            good = [m for m in msgs if m.error() is None]
            for m in msgs:
                if m.error() is not None:
                    log.debug("consume error: %s", m.error())
            if good:
                self._call(self.process(good))
                last: dict[tuple[str, int], int] = {}
                for m in good:
                    topic, partition, offset = m.topic(), m.partition(), m.offset()
                    if topic is not None and partition is not None and offset is not None:  # set on every message
                        last[(topic, partition)] = offset
                try:
                    c.store_offsets(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()])
                except Exception as e:  # the partition moved away meanwhile: its new owner re-reads
                    log.info("store offsets: %s", e)
            self._rebuild_targets(c)
        c.close()

    # --- the loop side ---------------------------------------------------------------------------------
    async def _retry(self, what: str, fn: Any) -> None:
        """Write until the analytics DB takes it: nothing is acknowledged to Kafka before."""
        delay = 0.2
        while True:
            try:
                await fn()
                if not self.db_ok:
                    self.db_ok, self.db_reason = True, "writing"
                return
            except StoreUnavailable as e:
                self.db_ok, self.db_reason = False, str(e)[:200]
                self.stats["db_retries"] += 1
                log.warning("%s: %s; retrying in %.1fs", what, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def process(self, msgs: list[Any]) -> None:
        logs: list[Any] = []
        objs: list[Any] = []
        dirty: set[tuple[str, tuple[str, str]]] = set()
        for m in msgs:
            try:
                origin, rec = decode(m.value())
            except Exception as e:
                log.error("undecodable record at %s/%d@%d: %s", m.topic(), m.partition(), m.offset(), e)
                continue
            self.stats["records"] += 1
            if isinstance(rec, UveRecord):
                part = self.parts.get(m.topic())
                if part is None:
                    continue
                u = part.uves.setdefault((rec.table, rec.key), UveState(rec.table, rec.key))
                u.apply(str(origin), rec.struct, rec.data, rec.ts)
                if not part.rebuilding:
                    dirty.add((m.topic(), (rec.table, rec.key)))
            elif isinstance(rec, MessageRecord):
                logs.append((origin, rec))
            elif isinstance(rec, ObjectLogRecord):
                objs.append((origin, rec))
        if logs or objs:
            async def write() -> None:
                await asyncio.gather(self.store.write_messages(logs), self.store.write_objectlogs(objs))
            await self._retry("messages", write)
            self.stats["messages"] += len(logs)
            self.stats["objectlogs"] += len(objs)
        for topic, k in dirty:
            part = self.parts.get(topic)
            if part is not None:
                await self._flush(part, k)

    async def _go_live(self, topics: list[str]) -> None:
        """Partitions whose rebuild is complete go live: every UVE is written once."""
        for t in topics:
            part = self.parts.get(t)
            if part is None or not part.rebuilding:
                continue
            part.rebuilding = False
            log.info("UVE partition %d rebuilt: %d UVEs", part.number, len(part.uves))
            for k in list(part.uves):
                await self._flush(part, k)

    async def _flush(self, part: Partition, k: tuple[str, str]) -> None:
        """Aggregate one UVE, evaluate its alarms, write it if anything changed."""
        u = part.uves.get(k)
        if u is None:
            return
        now = now_us()
        for origin in [o for o, s in u.origins.items()
                       if max(p.ts for p in s.values()) < now - int(ORIGIN_EXPIRY_S * 1e6)]:
            del u.origins[origin]
        if not u.origins:
            del part.uves[k]
            part.alarms.pop(k, None)
            if part.written.pop(k, None) is not None:
                await self._retry("uve delete", lambda: self.store.delete_uve(k[0], k[1], now_us()))
            return
        value = u.aggregate(now)
        found = alarms.evaluate(alarms.Uve(k[0], k[1], value, agent_age_s(u, now)), now, part.alarms.get(k))
        part.alarms[k] = found
        text = json.dumps([value, found], sort_keys=True)
        if part.written.get(k) == text:
            return
        origins = u.origins_json(now)
        await self._retry("uve write", lambda: self.store.write_uve(k[0], k[1], value, origins, found, u.newest(),
                                                                    part.number, now_us()))
        part.written[k] = text
        self.stats["uve_writes"] += 1

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for part in list(self.parts.values()):
                if part.rebuilding:
                    continue
                for k in list(part.uves):
                    if self.parts.get(part.topic) is part:
                        await self._flush(part, k)

    def status(self) -> dict[str, Any]:
        return {"partitions": sorted(p.number for p in self.parts.values()),
                "rebuilding": sorted(p.number for p in self.parts.values() if p.rebuilding),
                "message_partitions": sorted(self.message_parts), "uves": sum(len(p.uves) for p in self.parts.values()),
                **self.stats}

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.consumer = Consumer({
            "bootstrap.servers": self.cfg.kafka,
            **client_config(self.cfg.kafka_login()),
            "group.id": consumer_group(self.cfg.cluster_id),
            "client.id": f"aggregator-{self.cfg.host}",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 4000,
            "heartbeat.interval.ms": 500,
            "max.poll.interval.ms": 300000,
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 5000,
            "reconnect.backoff.max.ms": 1000,
            "allow.auto.create.topics": False,
            "logger": logging.getLogger("contrail_ha.rdkafka"),
        })
        threading.Thread(target=self._consume, name="aggregator-consumer", daemon=True).start()
        loop.create_task(self.tick())

    def stop(self) -> None:
        self.stopping.set()


class Consuming(Dependency):
    """Healthy once the aggregator joined the consumer group and its writes reach the analytics DB."""

    name = "aggregation"

    def __init__(self, agg: Aggregator) -> None:
        super().__init__()
        self.agg = agg

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._set(False, "joining the consumer group")

    def refresh(self) -> None:
        a = self.agg
        if not a.joined:
            self._set(False, "not in the consumer group yet")
        elif not a.db_ok and a.stats["db_retries"]:
            self._set(False, f"analytics DB writes failing: {a.db_reason}")
        else:
            self._set(True, f"{len(a.parts)} UVE partitions, {len(a.message_parts)} message partitions")


CONNECT = web.AppKey("connect", asyncio.Task)


def main(argv: list[str] | None = None) -> None:
    from contrail_ha.services.deps import Cassandra

    args = argv if argv is not None else sys.argv[1:]
    cfg = base.ServiceConfig.load(args[0])
    store = AnalyticsStore(cfg.analytics_db, cfg.analytics_db_port, cfg.analytics_db_rf,
                           auth=cfg.cql_login("analytics_db"))
    agg = Aggregator(cfg, store)
    consuming = Consuming(agg)
    deps: list[Dependency] = [consuming, Kafka(cfg.kafka, auth=cfg.kafka_login()),
                              Cassandra("analytics-db", cfg.analytics_db, cfg.analytics_db_port,
                                        auth=cfg.cql_login("analytics_db"))]
    gen = Generator(origin_of(cfg, "Analytics", "contrail-aggregator"), cfg.collectors)

    def routes(app: web.Application) -> None:
        async def partitions(request: web.Request) -> web.Response:
            return web.json_response(agg.status())

        app.router.add_get("/partitions", partitions)

        async def connect() -> None:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    await store.start()
                    break
                except StoreUnavailable as e:
                    log.warning("%s; retrying", e)
                    await asyncio.sleep(1)
            agg.start(loop)
            gen.start()
            NodeStatusReporter(gen, deps, extra_structs=lambda: {
                "AlarmgenPartition": {"partitions": sorted(p.number for p in agg.parts.values())}}).start()

        async def stopping(app: web.Application) -> None:
            agg.stop()
            await gen.stop(1.0)
            await store.close()

        async def started(app: web.Application) -> None:
            app[CONNECT] = asyncio.get_running_loop().create_task(connect())

        app.on_startup.append(started)
        app.on_cleanup.append(stopping)

    base.run(args[0], deps, routes)


if __name__ == "__main__":
    main()
