"""Config-change notifications between contrail-api replicas over RabbitMQ (§1c), with aio-pika.

Wire contract, as the original: a fanout exchange ``vnc_config.object-update`` (durable=False)
and one queue per replica, ``vnc_config.<replica_id>``, bound to it. A message is the JSON
``{"request-id", "oper", "type", "uuid", "fq_name", "obj_dict"}`` (``extra_dict`` when given)
plus ``replica`` (the publisher's replica id): fields the original's consumers ignore.
Cluster-wide HA comes from the ``ha`` policy (ha-mode all) that contrail-ha applies.

Decisions:

* **Connection.** One connection at a time to one of ``servers`` (the controllers' brokers,
  never the VIP), tried in turn from the first; on loss the next one is tried at once, and a
  full round of failures waits :data:`RETRY_DELAY` (doubling up to :data:`RETRY_MAX`). AMQP
  heartbeat 10 s; besides, a round trip on a channel of its own every 5 s must answer within
  10 s (aiormq alone would wait 33 s for a frozen broker), and setting up a connection must
  finish within :data:`SETUP_TIMEOUT_S`. ``ok`` is true while the connection, its channels
  and the consumer are up. (A frozen node stalls every classic mirrored queue with a master
  or mirror on it, cluster-wide, until it thaws or ``net_ticktime`` expels it: then nothing
  gets confirmed anywhere and publishes follow the bounded-wait rule below.)
* **Queue.** Non-durable, neither exclusive nor auto-delete (as the original's kombu queue),
  with ``x-expires`` (:data:`QUEUE_EXPIRES_S`) so the queue of a replica gone for good does
  not collect notifications forever. It is deleted and recreated at the replica's first
  connection (as the original). On a reconnect it is *kept*: mirrored by the policy, it
  survives the loss of our broker or of its master node and holds what was published
  meanwhile, so fail-over loses nothing. Deliveries are acknowledged after ``on_message``;
  unacknowledged ones are redelivered and de-duplicated by request-id.
* **Resync.** ``on_resync()`` is called whenever messages may have been missed: at the first
  connection (queue recreated), on a reconnect that finds the queue gone (expired, or lost
  with its node when unmirrored), when the broker cancels our consumer (queue deleted), and
  after ``on_message`` raised. It runs in the same task as ``on_message``, in order: the
  queue is bound before the resync, so nothing between the two is lost.
* **Publisher confirms.** Every message stays in a buffer until the broker confirmed it
  (for a mirrored queue: once every mirror has it) and is republished, in order, after a
  reconnect. ``publish`` waits for the confirm up to ``confirm_timeout``, then returns with
  the message still buffered (the write is already in Cassandra; the notification follows
  the reconnect); while the broker has been unreachable for longer than that it does not
  wait at all. ``publish`` before ``start`` just buffers. When ``max_pending`` (4096, the
  original's ``rabbit_max_pending_updates``) messages are unconfirmed, ``publish`` raises
  :class:`~objects.Unavailable` (HTTP 503); ``check_capacity`` tells it before a write.
  A republish may duplicate a message whose confirm was lost: consumers drop duplicates
  by the (publisher instance, sequence) in ``request-id`` =
  ``<replica_id>:<random instance token>:<sequence>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid as uuidlib
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aio_pika
import aiormq
from aiormq.abc import DeliveredMessage
from yarl import URL

from contrail_ha.services.config_api.objects import Unavailable
from contrail_ha.services.config_api.seen import SeenSequences

log = logging.getLogger(__name__)

EXCHANGE = "vnc_config.object-update"
QUEUE_PREFIX = "vnc_config."
OPERS = ("CREATE", "UPDATE", "DELETE", "UPDATE-IMPLICIT")
HEARTBEAT_S = 10
MAX_PENDING = 4096  # the original's rabbit_max_pending_updates
CONFIRM_TIMEOUT_S = 1.0  # the original does not wait at all; this bounds a write while a mirror is cut off
CONNECT_TIMEOUT_S = 3.0
SETUP_TIMEOUT_S = 10.0  # channels, exchange, queue after the connection is open
RETRY_DELAY = 0.5  # after a whole round of servers failed, doubling up to RETRY_MAX
RETRY_MAX = 2.0
QUEUE_EXPIRES_S = 600.0  # an unused queue (no consumer, no redeclare) is removed after this
PREFETCH = 256
WATCH_INTERVAL = 0.5  # how often the consumer's registration is checked
SEEN_PUBLISHERS = 1024  # publisher instances remembered for de-duplication
FULL = "Too many pending updates to RabbitMQ"

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]
OnResync = Callable[[], Awaitable[None]]


@dataclass
class _Pending:
    """A published message not yet confirmed by the broker."""

    seq: int
    body: bytes
    done: asyncio.Future[None]


_Seen = SeenSequences


class _Resync:
    """Marker in the inbox: call ``on_resync`` here."""


_RESYNC = _Resync()


class Notifier:
    """Publishes this replica's config changes and feeds the other replicas' to ``on_message``.

    Health: ``ok`` (connection and channels open, the queue consumed) and ``reason``,
    as :class:`contrail_ha.services.deps.Dependency`; ``server`` is the broker in use.
    """

    def __init__(self, servers: list[str], replica_id: str, on_message: OnMessage, on_resync: OnResync,
                 *, user: str, password: str, max_pending: int = MAX_PENDING,
                 confirm_timeout: float = CONFIRM_TIMEOUT_S, heartbeat: int = HEARTBEAT_S,
                 queue_expires: float = QUEUE_EXPIRES_S) -> None:
        if not servers:
            raise ValueError("no RabbitMQ servers")
        self.servers, self.replica_id = list(servers), replica_id
        self.on_message, self.on_resync = on_message, on_resync
        self.user, self.password = user, password
        self.max_pending, self.confirm_timeout = max_pending, confirm_timeout
        self.heartbeat, self.queue_expires = heartbeat, queue_expires
        self.queue_name = QUEUE_PREFIX + replica_id
        self.ok = False
        self.reason = "not connected yet"
        self.since = time.monotonic()
        self.server: str | None = None
        self.stats: dict[str, int] = {"published": 0, "confirmed": 0, "republished": 0, "late": 0,
                                      "received": 0, "duplicates": 0, "resyncs": 0, "connects": 0}
        self._token = uuidlib.uuid4().hex[:12]  # this process's publisher instance
        self._seq = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._unsent: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._gen = 0  # connection generation: confirms from an older connection are ignored
        self._sent_on: dict[int, int] = {}  # seq -> generation it was last sent on
        self._inbox: asyncio.Queue[DeliveredMessage | _Resync] = asyncio.Queue()
        self._resync_queued = False
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._queue_created = False
        self._up = asyncio.Event()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._conn: aio_pika.abc.AbstractConnection | None = None

    # --- health --------------------------------------------------------------------------------
    def _set(self, ok: bool, reason: str) -> None:
        if ok != self.ok or reason != self.reason:
            log.info("rabbitmq notifications: %s (%s)", "up" if ok else "down", reason)
            if ok != self.ok:
                self.since = time.monotonic()
        self.ok, self.reason = ok, reason
        if ok:
            self._up.set()
        else:
            self._up.clear()

    def status(self) -> dict[str, object]:
        return {"ok": self.ok, "reason": self.reason, "for_s": round(time.monotonic() - self.since, 1),
                "server": self.server, "pending": self.pending, **self.stats}

    @property
    def pending(self) -> int:
        """Messages published but not confirmed by the broker yet."""
        return len(self._pending)

    def check_capacity(self) -> None:
        """Raise Unavailable if ``publish`` would (call before a write to refuse it up front)."""
        if self._closed:
            raise Unavailable("RabbitMQ notifier is closed")
        if len(self._pending) >= self.max_pending:
            raise Unavailable(FULL)

    # --- life cycle ----------------------------------------------------------------------------
    async def start(self, wait: float = 10.0) -> None:
        """Connect in the background; return once connected or after ``wait`` seconds."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(), name=f"notify-{self.replica_id}"),
                           asyncio.create_task(self._worker(), name=f"notify-worker-{self.replica_id}")]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), wait)

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until ``ok``; False on timeout."""
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop; unconfirmed messages are dropped and their ``publish`` calls get Unavailable."""
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        for p in self._pending.values():
            if not p.done.done():
                p.done.set_exception(Unavailable("RabbitMQ notifier closed before the broker confirmed"))
                p.done.exception()  # retrieved: no "never retrieved" warning if nobody waits
        self._pending.clear()
        self._unsent.clear()
        self._set(False, "closed")

    # --- publishing ----------------------------------------------------------------------------
    async def publish(self, oper: str, obj_type: str, uuid: str, fq_name: list[str],
                      obj_dict: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        """Send one notification; see the module doc for when this returns and raises."""
        if oper not in OPERS:
            raise ValueError(f"unknown oper {oper!r}")
        self.check_capacity()
        self._seq += 1
        seq = self._seq
        msg: dict[str, Any] = {"request-id": f"{self.replica_id}:{self._token}:{seq}", "oper": oper,
                               "type": obj_type, "uuid": uuid, "fq_name": list(fq_name), "obj_dict": obj_dict,
                               "replica": self.replica_id}
        if extra is not None:
            msg["extra_dict"] = extra
        body = json.dumps(msg, separators=(",", ":"), default=str).encode()
        p = _Pending(seq, body, asyncio.get_running_loop().create_future())
        self._pending[seq] = p
        self._unsent.append(p)
        self._wake.set()
        self.stats["published"] += 1
        down_for = 0.0 if self.ok else time.monotonic() - self.since
        timeout = self.confirm_timeout - down_for
        if timeout <= 0:
            self.stats["late"] += 1
            return
        try:
            await asyncio.wait_for(asyncio.shield(p.done), timeout)
        except TimeoutError:
            self.stats["late"] += 1
            log.warning("notification %s not confirmed after %.1fs: kept for republish (%d pending)",
                        msg["request-id"], timeout, len(self._pending))

    async def _sender(self, ch: aiormq.abc.AbstractChannel, gen: int) -> None:
        """Publish buffered messages in order on ``ch``, pipelined (confirms are awaited per message)."""
        while True:
            while self._unsent:
                p = self._unsent.popleft()
                if p.seq not in self._pending:
                    continue
                if p.seq in self._sent_on:
                    self.stats["republished"] += 1
                self._sent_on[p.seq] = gen
                # each task takes the channel's (FIFO) lock before any other await: frames go out in order
                t = asyncio.ensure_future(ch.basic_publish(
                    p.body, exchange=EXCHANGE, routing_key="",
                    properties=aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=1)))
                t.add_done_callback(functools.partial(self._confirmed, p, gen))
            self._wake.clear()
            await self._wake.wait()

    def _confirmed(self, p: _Pending, gen: int, t: asyncio.Future[Any]) -> None:
        if t.cancelled() or t.exception() is not None:
            return  # the channel went away: the message stays buffered for the next connection
        frame = t.result()
        if isinstance(frame, aiormq.spec.Basic.Ack):
            if self._pending.pop(p.seq, None) is not None:
                self._sent_on.pop(p.seq, None)
                self.stats["confirmed"] += 1
            if not p.done.done():
                p.done.set_result(None)
        elif gen == self._gen and p.seq in self._pending:  # nack: the broker could not take it, resend
            log.warning("broker refused notification %d (%s): resending", p.seq, type(frame).__name__)
            asyncio.get_running_loop().call_later(RETRY_DELAY, self._resend, p, gen)

    def _resend(self, p: _Pending, gen: int) -> None:
        if gen == self._gen and p.seq in self._pending:
            self._unsent.append(p)
            self._wake.set()

    # --- connection ----------------------------------------------------------------------------
    async def _run(self) -> None:
        i = 0
        failures = 0
        while not self._closed:
            server = self.servers[i % len(self.servers)]
            try:
                await self._session(server)
                i += 1  # connection lost: next server at once
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._set(False, f"{server}: {e.__class__.__name__}: {e}"[:200])
                i += 1
                failures += 1
                if failures % len(self.servers) == 0:
                    rounds = failures // len(self.servers)
                    await asyncio.sleep(min(RETRY_DELAY * 2 ** (rounds - 1), RETRY_MAX))
            finally:
                await self._teardown()

    async def _teardown(self) -> None:
        conn, self._conn = self._conn, None
        self._gen += 1
        if conn is not None and not conn.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def _session(self, server: str) -> None:
        """One connection to ``server``: set up, then run until it is lost."""
        host, _, port = server.rpartition(":")
        # aio-pika takes the heartbeat and the connection name from the URL only
        url = URL.build(scheme="amqp", host=host, port=int(port), user=self.user, password=self.password, path="/",
                        query={"heartbeat": str(self.heartbeat), "name": f"contrail-api {self.replica_id}"})
        conn = await asyncio.wait_for(aio_pika.connect(url, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S + 1)
        self._conn = conn
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_close(what: str) -> Callable[..., None]:
            def closed(*args: Any) -> None:
                if not lost.done():
                    lost.set_result(f"{what} closed ({args[-1] if args else ''})")

            return closed

        conn.close_callbacks.add(on_close("connection"))

        async def setup() -> tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractChannel,
                                   aiormq.abc.AbstractChannel, str]:
            pub = await conn.channel(publisher_confirms=True)
            sub = await conn.channel(publisher_confirms=False)
            ping = await conn.channel(publisher_confirms=False)
            for ch, what in ((pub, "publish"), (sub, "consume"), (ping, "liveness")):
                ch.close_callbacks.add(on_close(f"{what} channel"))
            await sub.set_qos(prefetch_count=PREFETCH)
            await pub.declare_exchange(EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=False)
            tag = await self._open_queue(conn, sub, await sub.get_underlay_channel())
            return pub, sub, await ping.get_underlay_channel(), tag

        pub, sub, ping, tag = await asyncio.wait_for(setup(), SETUP_TIMEOUT_S)
        sub_raw = await sub.get_underlay_channel()
        gen = self._gen
        self._sent_on = {s: g for s, g in self._sent_on.items() if s in self._pending}
        self._unsent = deque(self._pending.values())  # unconfirmed ones first, in order
        tasks = [asyncio.create_task(self._sender(await pub.get_underlay_channel(), gen)),
                 asyncio.create_task(self._liveness(ping))]
        self.server = server
        self.stats["connects"] += 1
        self._set(True, f"connected to {server}")
        watched: list[asyncio.Future[Any]] = [lost, *tasks]
        try:
            while not lost.done():
                await asyncio.wait(watched, timeout=WATCH_INTERVAL, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    if t.done():
                        t.result()  # raises what stopped it
                if not lost.done() and tag not in cast(aiormq.Channel, sub_raw).consumers:
                    log.warning("consumer of %s cancelled by the broker: queue deleted", self.queue_name)
                    tag = await asyncio.wait_for(self._open_queue(conn, sub, sub_raw, lost=True), SETUP_TIMEOUT_S)
            self._set(False, f"{server}: {lost.result()}"[:200])
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t

    async def _liveness(self, ping: aiormq.abc.AbstractChannel) -> None:
        """A round trip every heartbeat/2: a broker that stops answering (frozen, black-holed) is left
        after ``heartbeat`` seconds (aiormq's own heartbeat check waits 3 x (heartbeat + 1))."""
        while True:
            await asyncio.sleep(self.heartbeat / 2)
            try:
                await asyncio.wait_for(ping.exchange_declare(exchange=EXCHANGE, passive=True), self.heartbeat)
            except TimeoutError:
                raise ConnectionError(f"broker did not answer for {self.heartbeat}s") from None

    async def _open_queue(self, conn: aio_pika.abc.AbstractConnection, sub: aio_pika.abc.AbstractChannel,
                          sub_raw: aiormq.abc.AbstractChannel, lost: bool = False) -> str:
        """Make sure our queue exists and is bound, consume it; queue a resync if it was (re)created."""
        recreate = lost or not self._queue_created
        if not recreate:
            probe = await conn.channel(publisher_confirms=False)
            try:
                await probe.declare_queue(self.queue_name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                log.warning("queue %s is gone: recreating it, resync", self.queue_name)
                recreate = True
            finally:
                if not probe.is_closed:
                    await probe.close()
        if not self._queue_created:
            await sub.queue_delete(self.queue_name)  # as the original: a fresh queue at start
        queue = await sub.declare_queue(self.queue_name, durable=False, exclusive=False, auto_delete=False,
                                        arguments={"x-expires": int(self.queue_expires * 1000)})
        await queue.bind(EXCHANGE)
        self._queue_created = True
        if recreate:
            self._queue_resync()
        ok = await sub_raw.basic_consume(self.queue_name, self._deliver, no_ack=False)
        assert ok.consumer_tag is not None
        return ok.consumer_tag

    # --- consuming -----------------------------------------------------------------------------
    async def _deliver(self, message: DeliveredMessage) -> None:
        self._inbox.put_nowait(message)  # aiormq calls this in delivery order

    def _queue_resync(self) -> None:
        if not self._resync_queued:
            self._resync_queued = True
            self._inbox.put_nowait(_RESYNC)

    async def _worker(self) -> None:
        """Hand messages to ``on_message`` and resyncs to ``on_resync``, one at a time, in order."""
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Resync):
                self._resync_queued = False
                await self._resync()
                continue
            try:
                await self._handle(item)
            finally:
                await self._ack(item)

    @staticmethod
    async def _ack(message: DeliveredMessage) -> None:
        """Acknowledge on the channel it came from, if still open (else the broker redelivers it)."""
        tag = message.delivery_tag
        if tag is None or message.channel.is_closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(message.channel.basic_ack(tag), 2)

    async def _resync(self) -> None:
        delay = 0.5
        while True:
            try:
                self.stats["resyncs"] += 1
                await self.on_resync()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("resync failed, retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _fresh(self, request_id: str) -> bool:
        """False for a message seen before (a redelivery or a republish)."""
        publisher, _, seq = str(request_id).rpartition(":")
        if not publisher or not seq.isdigit():
            return True
        n = int(seq)
        seen = self._seen.get(publisher)
        if seen is None:
            self._seen[publisher] = _Seen(n)
            if len(self._seen) > SEEN_PUBLISHERS:
                self._seen.popitem(last=False)
            return True
        self._seen.move_to_end(publisher)
        return seen.add(n)

    async def _handle(self, message: DeliveredMessage) -> None:
        try:
            msg = json.loads(message.body)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError as e:
            log.warning("dropping an unparsable notification: %s", e)
            return
        if msg.get("replica") == self.replica_id:
            return
        if not self._fresh(msg.get("request-id", "")):
            self.stats["duplicates"] += 1
            return
        self.stats["received"] += 1
        try:
            await self.on_message(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_message failed for %s: resync", msg.get("request-id"))
            self._queue_resync()
