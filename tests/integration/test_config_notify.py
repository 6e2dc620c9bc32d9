"""Config-change notifications between contrail-api replicas over a real 3-node RabbitMQ cluster.

The nodes run on 127.0.60.1-3 in the root namespace, rendered with ``shared_netns`` as in
``test_rabbitmq.py``, with the ``ha`` mirroring policy applied by ``probes.rabbitmq.configure``.
Broker nodes are killed with SIGKILL by the PID of the Erlang VM we started, then restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contrail_ha.probes import rabbitmq as probe
from contrail_ha.rendering import rabbitmq as rmq
from contrail_ha.rendering.base import Layout
from contrail_ha.services.config_api.notify import EXCHANGE, QUEUE_PREFIX, Notifier
from contrail_ha.services.config_api.objects import Unavailable
from tests.helpers.rabbitmq import Cluster, listening, loopback_cluster
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PREFIX = "127.0.60"
EPMD_BASE = 14360  # node i's epmd port is 14360 + i (epmd also binds 127.0.0.1: ports unique per test module)
DEAD = f"{PREFIX}.9:5673"  # nothing listens there


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("needs root (rabbitmq-server from /usr/lib/rabbitmq/bin)")
    if not Path(rmq.SERVER).exists():
        pytest.skip("rabbitmq-server is not installed")
    dead_ip, dead_port = DEAD.split(":")
    assert not listening(dead_ip, int(dead_port)), f"already in use: {DEAD}"
    plan = loopback_plan(PREFIX, 3)
    with loopback_cluster(plan, Layout(tmp_path_factory.mktemp("rabbitmq-notify")), EPMD_BASE,
                          configure=True) as c:
        CREDS.update(user=rmq.API_USER, password=rmq.password(c.layout, rmq.API_USER))
        yield c
        print("\nnotify timings: " + ", ".join(f"{k} {v:.3f}" for k, v in c.timings.items()))


# --- helpers ---------------------------------------------------------------------------------------
CREDS: dict[str, str] = {}  # contrail-api's RabbitMQ user and the cluster's password for it (the fixture's)


def admin_url(address: str) -> str:
    """The API user's AMQP URL (it may declare, delete and read the notification queues)."""
    return f"amqp://{CREDS['user']}:{CREDS['password']}@{address}/"


class Replica:
    """A Notifier with recording callbacks."""

    def __init__(self, name: str, servers: list[str], **kw: Any) -> None:
        self.name = name
        self.got: list[dict[str, Any]] = []
        self.resyncs = 0
        self.resync_at: list[int] = []  # len(got) at each resync
        self.n = Notifier(servers, name, self.on_message, self.on_resync, **{**CREDS, **kw})

    async def on_message(self, msg: dict[str, Any]) -> None:
        self.got.append(msg)

    async def on_resync(self) -> None:
        self.resyncs += 1
        self.resync_at.append(len(self.got))

    def uuids(self) -> list[str]:
        return [m["uuid"] for m in self.got]


async def until(pred: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.02)


async def started(*replicas: Replica) -> None:
    await asyncio.gather(*(r.n.start(wait=15) for r in replicas))
    for r in replicas:
        assert r.n.ok, (r.name, r.n.reason)
    await until(lambda: all(r.resyncs >= 1 for r in replicas), 10, "initial resync")


async def closed(*replicas: Replica) -> None:
    for r in replicas:
        await r.n.close()


def uid(tag: str, k: int) -> str:
    return f"{tag}-{k:06d}"


async def publish(r: Replica, tag: str, k: int) -> None:
    await r.n.publish("CREATE", "virtual_network", uid(tag, k), ["default-domain", "p", f"vn{k}"],
                      obj_dict={"uuid": uid(tag, k), "k": k})


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 240))  # type: ignore[arg-type]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# --- tests -----------------------------------------------------------------------------------------
def test_fanout_in_order_not_to_self(cluster: Cluster) -> None:
    async def main() -> None:
        a = Replica("a-8082", cluster.servers(0, 1, 2))
        b = Replica("b-8082", cluster.servers(1, 2, 0))
        c = Replica("c-8082", cluster.servers(2, 0, 1))
        try:
            await started(a, b, c)
            assert [r.n.server for r in (a, b, c)] == cluster.servers(0, 1, 2)
            assert a.n.reason == f"connected to {cluster.address(0)}" and a.n.status()["ok"] is True
            assert (a.resyncs, b.resyncs, c.resyncs) == (1, 1, 1)  # fresh queue at start
            n = 300
            lat: list[float] = []
            for k in range(n):
                t = time.monotonic()
                await publish(a, "seq", k)
                lat.append(time.monotonic() - t)
                assert a.n.pending == 0  # returned only once confirmed
            cluster.timings["publish+confirm p50 ms"] = statistics.median(lat) * 1000
            cluster.timings["publish+confirm p99 ms"] = pct(lat, 0.99) * 1000
            # concurrent callers: pipelined on the channel, still in call order
            m = 1000
            t = time.monotonic()
            await asyncio.gather(*(publish(a, "par", k) for k in range(m)))
            cluster.timings[f"{m} concurrent publishes /s"] = m / (time.monotonic() - t)
            want = [uid("seq", k) for k in range(n)] + [uid("par", k) for k in range(m)]
            await until(lambda: len(b.got) >= n + m and len(c.got) >= n + m, 30, "fan-out")
            assert b.uuids() == want and c.uuids() == want
            first = b.got[0]
            assert first["oper"] == "CREATE" and first["type"] == "virtual_network"
            assert first["fq_name"] == ["default-domain", "p", "vn0"] and first["obj_dict"]["k"] == 0
            assert first["replica"] == "a-8082" and first["request-id"].startswith("a-8082:")
            assert len({x["request-id"] for x in b.got}) == n + m
            await b.n.publish("UPDATE", "project", "p-1", ["default-domain", "p"], extra={"x": 1})
            await until(lambda: len(a.got) == 1 and len(c.got) == n + m + 1, 10, "b's update")
            assert a.got[0]["oper"] == "UPDATE" and a.got[0]["extra_dict"] == {"x": 1}
            assert a.got[0]["obj_dict"] is None
            await asyncio.sleep(0.3)
            assert len(a.got) == 1 and len(b.got) == n + m  # nobody gets its own
            assert (a.resyncs, b.resyncs, c.resyncs) == (1, 1, 1)
            assert b.n.stats["duplicates"] == 0 and a.n.stats["confirmed"] == n + m
            with pytest.raises(ValueError):
                await a.n.publish("RENAME", "project", "x", ["x"])
        finally:
            await closed(a, b, c)

    run(main())


def test_consumer_broker_killed_fails_over_without_loss(cluster: Cluster) -> None:
    """B's broker (and its queue's master) is killed: B moves on, the mirrored queue kept every message."""

    async def main() -> None:
        a = Replica("a2-8082", cluster.servers(0, 2, 1))
        b = Replica("b2-8082", cluster.servers(1, 2, 0))
        try:
            await started(a, b)
            victim = cluster.index(b.n.server)
            assert victim == 1 and a.n.server == cluster.address(0)
            sent: list[str] = []
            stop = asyncio.Event()

            async def stream() -> None:
                k = 0
                while not stop.is_set():
                    await publish(a, "s2", k)
                    sent.append(uid("s2", k))
                    k += 1
                    await asyncio.sleep(0.002)

            task = asyncio.create_task(stream())
            await until(lambda: len(b.got) >= 100, 10, "first messages")
            t = time.monotonic()
            await asyncio.to_thread(cluster.kill, victim)
            await until(lambda: not b.n.ok or b.n.server != cluster.address(victim), 15, "loss noticed")
            detect = time.monotonic() - t
            await until(lambda: b.n.ok, 30, "b fails over")
            cluster.timings["consumer: loss noticed s"] = detect
            cluster.timings["consumer: fail-over s"] = time.monotonic() - t
            assert b.n.server == cluster.address(2)
            mark = len(sent)
            await until(lambda: len(sent) >= mark + 200, 20, "publishing after the fail-over")
            stop.set()
            await task
            await until(lambda: len(b.got) >= len(sent), 30, "everything delivered")
            await asyncio.sleep(0.3)
            assert b.uuids() == sent  # nothing lost, nothing doubled, in order
            # the queue survived (mirrored): no gap, so no resync
            assert b.resyncs == 1, b.resync_at
            assert a.got == []
        finally:
            await closed(a, b)
            await asyncio.to_thread(cluster.restart, 1)

    run(main())


def test_queue_lost_or_recreated_triggers_resync(cluster: Cluster) -> None:
    """A deleted queue (consumer cancelled) and a replica restart both mean a gap: on_resync."""
    aio_pika = pytest.importorskip("aio_pika")

    async def main() -> None:
        a = Replica("a3-8082", cluster.servers(0, 1, 2))
        b = Replica("b3-8082", cluster.servers(2, 1, 0))
        try:
            await started(a, b)
            for k in range(10):
                await publish(a, "q1", k)
            await until(lambda: len(b.got) == 10, 10, "before")
            t = time.monotonic()
            admin = await aio_pika.connect(admin_url(cluster.address(1)))
            try:
                ch = await admin.channel()
                await ch.queue_delete(QUEUE_PREFIX + "b3-8082")
            finally:
                await admin.close()
            await until(lambda: b.resyncs == 2, 10, "resync after the queue was deleted")
            cluster.timings["queue deleted -> resync s"] = time.monotonic() - t
            assert b.resync_at == [0, 10] and b.n.ok and b.n.server == cluster.address(2)
            for k in range(10):
                await publish(a, "q2", k)
            await until(lambda: len(b.got) == 20, 10, "after the queue came back")
            assert b.uuids()[10:] == [uid("q2", k) for k in range(10)]

            # a replica restarting deletes its old queue: what was published meanwhile is skipped
            await b.n.close()
            for k in range(5):
                await publish(a, "gone", k)
            b2 = Replica("b3-8082", cluster.servers(2, 1, 0))
            try:
                await started(b2)
                assert b2.resyncs == 1
                await publish(a, "q3", 0)
                await until(lambda: len(b2.got) == 1, 10, "after restart")
                assert b2.uuids() == [uid("q3", 0)]
            finally:
                await b2.n.close()
        finally:
            await closed(a, b)

    run(main())


def test_publisher_broker_killed_no_confirmed_message_lost(cluster: Cluster) -> None:
    """A's broker dies mid-stream: every publish that returned reaches B (republished after fail-over)."""

    async def main() -> None:
        a = Replica("a4-8082", cluster.servers(0, 1, 2))
        b = Replica("b4-8082", cluster.servers(2, 1, 0))
        try:
            await started(a, b)
            returned: list[str] = []
            failed: list[str] = []
            lat: list[float] = []
            stop = asyncio.Event()

            async def worker(w: int) -> None:
                k = 0
                while not stop.is_set():
                    t = time.monotonic()
                    try:
                        await publish(a, f"w{w}", k)
                        returned.append(uid(f"w{w}", k))
                    except Unavailable:
                        failed.append(uid(f"w{w}", k))
                    lat.append(time.monotonic() - t)
                    k += 1

            tasks = [asyncio.create_task(worker(w)) for w in range(8)]
            await until(lambda: len(returned) >= 500, 20, "stream running")
            t = time.monotonic()
            at_kill = len(returned)
            await asyncio.to_thread(cluster.kill, 0)
            await until(lambda: a.n.ok and a.n.server != cluster.address(0), 30, "a fails over")
            cluster.timings["publisher: fail-over s"] = time.monotonic() - t
            mark = len(returned)
            await until(lambda: len(returned) >= mark + 500, 20, "publishing after the fail-over")
            stop.set()
            await asyncio.gather(*tasks)
            cluster.timings["publisher: max publish latency across the kill s"] = max(lat)
            cluster.timings["publisher: republished"] = a.n.stats["republished"]
            assert at_kill <= mark < len(returned)
            assert failed == []
            await until(lambda: a.n.pending == 0, 20, "all confirmed")
            await until(lambda: set(returned) <= set(b.uuids()), 30, "every returned publish delivered")
            await asyncio.sleep(0.3)
            got = b.uuids()
            assert len(got) == len(set(got)), "duplicates reached on_message"
            assert sorted(got) == sorted(returned)  # nothing else, nothing missing
            for w in range(8):  # each caller's messages in its order
                mine = [u for u in got if u.startswith(f"w{w}-")]
                assert mine == sorted(mine)
            assert b.resyncs == 1
        finally:
            await closed(a, b)
            await asyncio.to_thread(cluster.restart, 0)

    run(main())


def test_publisher_broker_frozen_bounded_wait(cluster: Cluster) -> None:
    """A's broker freezes (SIGSTOP): A notices within the liveness timeout; calls that returned
    unconfirmed after ``confirm_timeout`` (or at once, while down) still reach B after the thaw."""

    async def main() -> None:
        a = Replica("a8-8082", cluster.servers(2, 0, 1), confirm_timeout=2.0)
        b = Replica("b8-8082", cluster.servers(0, 1, 2))
        frozen = False
        try:
            await started(a, b)
            assert a.n.server == cluster.address(2)
            returned: list[str] = []
            failed: list[str] = []
            stop = asyncio.Event()

            async def worker(w: int) -> None:
                k = 0
                while not stop.is_set():
                    try:
                        await publish(a, f"f{w}", k)
                        returned.append(uid(f"f{w}", k))
                    except Unavailable:
                        failed.append(uid(f"f{w}", k))
                    k += 1
                    await asyncio.sleep(0.02)

            tasks = [asyncio.create_task(worker(w)) for w in range(2)]
            await until(lambda: len(b.got) >= 50, 20, "stream running")
            t = time.monotonic()
            cluster.signal(2, signal.SIGSTOP)
            frozen = True
            await until(lambda: not a.n.ok, 30, "a notices the frozen broker")
            cluster.timings["publisher: frozen broker noticed after s"] = time.monotonic() - t
            assert "did not answer" in a.n.reason, a.n.reason
            # every queue has its master or a mirror on the frozen node: the cluster stalls (until
            # net_ticktime would expel the node), so A cannot be served anywhere before the thaw
            await asyncio.sleep(3)
            cluster.signal(2, signal.SIGCONT)
            frozen = False
            t = time.monotonic()
            await until(lambda: a.n.ok, 30, "a back after the thaw")
            cluster.timings["publisher: reconnected after thaw s"] = time.monotonic() - t
            await until(lambda: a.n.pending == 0, 60, "confirms after the thaw")
            mark = len(returned)
            await until(lambda: len(returned) >= mark + 50, 20, "publishing after the thaw")
            stop.set()
            await asyncio.gather(*tasks)
            cluster.timings["publisher: returned unconfirmed (late)"] = a.n.stats["late"]
            assert a.n.stats["late"] > 0 and failed == []
            await until(lambda: a.n.pending == 0, 30, "all confirmed")
            await until(lambda: set(returned) <= set(b.uuids()), 30, "every returned publish delivered")
            await asyncio.sleep(0.3)
            got = b.uuids()
            assert len(got) == len(set(got)) and sorted(got) == sorted(returned)
        finally:
            if frozen:
                cluster.signal(2, signal.SIGCONT)
            await closed(a, b)
        await asyncio.to_thread(cluster.wait_cluster)

    run(main())


def test_reconnect_to_a_lost_queue_resyncs(cluster: Cluster) -> None:
    """C's only broker dies and its queue is deleted meanwhile: C comes back, recreates it, resyncs;
    what C published while down is delivered after the reconnect."""
    aio_pika = pytest.importorskip("aio_pika")

    async def main() -> None:
        a = Replica("a7-8082", cluster.servers(0, 2, 1))
        c = Replica("c7-8082", [cluster.address(1)], confirm_timeout=0.5)
        killed = False
        try:
            await started(a, c)
            await asyncio.to_thread(cluster.kill, 1)
            killed = True
            await until(lambda: not c.n.ok, 10, "c notices")
            await until(lambda: c.n.reason.startswith(cluster.address(1) + ": AMQPConnectionError"), 10, c.n.reason)
            admin = await aio_pika.connect(admin_url(cluster.address(0)))
            try:
                ch = await admin.channel()
                await ch.queue_delete(QUEUE_PREFIX + "c7-8082")
            finally:
                await admin.close()
            for k in range(5):
                await publish(a, "missed", k)
            t = time.monotonic()
            for k in range(3):
                await publish(c, "offline", k)
            assert time.monotonic() - t < 1.5 and c.n.pending == 3
            await asyncio.to_thread(cluster.restart, 1)
            killed = False
            await until(lambda: c.n.ok and c.resyncs == 2, 20, "c back with a resync")
            assert c.resync_at == [0, 0] and c.got == []
            await until(lambda: len(a.got) == 3, 10, "c's buffered messages")
            assert a.uuids() == [uid("offline", k) for k in range(3)]
            for k in range(5):
                await publish(a, "after", k)
            await until(lambda: len(c.got) == 5, 10, "after")
            assert c.uuids() == [uid("after", k) for k in range(5)]
        finally:
            await closed(a, c)
            if killed:
                await asyncio.to_thread(cluster.restart, 1)

    run(main())


def test_buffer_full_unavailable_then_flushed(cluster: Cluster) -> None:
    async def main() -> None:
        b = Replica("b5-8082", cluster.servers(1, 2, 0))
        p = Replica("p5-8082", cluster.servers(0, 1, 2), max_pending=5, confirm_timeout=0.3)
        dead = Replica("d5-8082", [DEAD], max_pending=2, confirm_timeout=0.2)
        try:
            await started(b)
            t = time.monotonic()
            for k in range(5):  # not started: buffered, each call returns after at most the timeout
                await publish(p, "buf", k)
            assert time.monotonic() - t < 1.0 and p.n.pending == 5
            with pytest.raises(Unavailable) as e:
                await publish(p, "buf", 5)
            assert e.value.status == 503 and "pending" in str(e.value)
            with pytest.raises(Unavailable):
                p.n.check_capacity()
            await p.n.start(wait=15)
            assert p.n.ok
            await until(lambda: p.n.pending == 0, 10, "buffer flushed")
            await publish(p, "buf", 5)
            await until(lambda: len(b.got) == 6, 10, "buffered ones delivered")
            assert b.uuids() == [uid("buf", k) for k in range(6)]

            await dead.n.start(wait=1.0)
            assert not dead.n.ok and dead.n.reason.startswith(DEAD) and "111" in dead.n.reason, dead.n.reason
            await publish(dead, "d", 0)
            await publish(dead, "d", 1)
            with pytest.raises(Unavailable):
                await publish(dead, "d", 2)
        finally:
            await closed(b, p, dead)

    run(main())


def test_exchange_is_the_originals(cluster: Cluster) -> None:
    """The exchange and queues as the original declares them: redeclaring with its arguments works."""
    aio_pika = pytest.importorskip("aio_pika")

    async def main() -> None:
        r = Replica("e6-8082", cluster.servers(0, 1, 2))
        try:
            await started(r)
            conn = await aio_pika.connect(admin_url(cluster.address(2)))
            try:
                ch = await conn.channel()
                # a mismatch in type or durability would close the channel with PRECONDITION_FAILED
                await ch.declare_exchange(EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=False)
                q = await ch.declare_queue(QUEUE_PREFIX + "e6-8082", passive=True)
                assert q.name == "vnc_config.e6-8082"
            finally:
                await conn.close()
            rows = probe.ctl_json(cluster.plan, cluster.layout, cluster.nodes[0].inst, "list_queues", "--local",
                                  "name", "durable", "auto_delete", "exclusive", "policy", "arguments")
            row = next(x for x in rows if x["name"] == "vnc_config.e6-8082")
            assert row["durable"] is False and row["auto_delete"] is False and row["policy"] == "ha", row
            assert row["exclusive"] is False, row
        finally:
            await r.n.close()

    run(main())
