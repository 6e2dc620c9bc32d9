"""The drill's load: an open-loop workload through the VIP (config reads and creates, analytics reads
and queries) plus numbered analytics messages through the collectors; the drill's own project,
its cleanup, and the writes tried on a partitioned controller's replica."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from contrail_ha.operations.vip import Vip
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.protocol import Origin
from contrail_ha.topology.plan import COLLECTOR, Plan

T = TypeVar("T")

RATE = 20.0  # workload requests per second (open loop): about a fifth of what 3 replicas create per second
CLIENT_TIMEOUT_S = 30.0  # a request not answered within this is a failure (HAProxy's own server timeout is 3 min)


@dataclass
class Sample:
    t: float  # completion time (monotonic)
    kind: str  # read | create | analytics
    ok: bool
    latency: float
    error: str = ""

    @property
    def sent(self) -> float:
        """When the request was sent (monotonic)."""
        return self.t - self.latency


class Workload:
    """Through the VIP: config reads and creates (unique names), analytics reads and queries; plus
    numbered analytics messages sent through the collectors (the generator library).

    Open loop: requests start at a fixed ``rate`` whatever the earlier ones are doing, as many
    independent clients would, so a request stuck on a dead path does not stop the others (a
    closed loop would measure its own stall as an outage).
    """

    def __init__(self, plan: Plan, vip: Vip, project: str, rate: float = RATE, message_rate: float = 20.0,
                 max_in_flight: int = 1000) -> None:
        self.vip = vip
        self.base = vip.config
        self.analytics = f"{vip.analytics}/analytics"
        self.project = project
        self.rate, self.message_rate, self.max_in_flight = rate, message_rate, max_in_flight
        self.samples: list[Sample] = []
        self.acked: dict[str, dict[str, Any]] = {}  # uuid -> what the create sent
        self.stop = asyncio.Event()
        self.started_us = int(time.time() * 1e6)
        self.generator = Generator(Origin(source="drill", node_type="Test", module="contrail-ha-drill",
                                          instance_id=project), [i.address for i in plan.of(COLLECTOR)],
                                   max_pending=1_000_000) if plan.analytics else None
        self.messages: list[str] = []

    async def _one(self, s: aiohttp.ClientSession, i: int) -> None:
        roll = random.random()
        t0 = time.monotonic()
        kind = "create" if roll < 0.4 or not self.acked else ("analytics" if roll > 0.9 else "read")
        err = ""
        try:
            if kind == "create":
                name = f"d-{i}-{uuid.uuid4().hex[:8]}"
                body = {"fq_name": ["default-domain", self.project, name], "parent_type": "project",
                        "display_name": f"drill {name}"}
                async with s.post(f"{self.base}/virtual-networks", json={"virtual-network": body}) as r:
                    text = await r.text()
                    ok = r.status == 200
                    if ok:
                        self.acked[json.loads(text)["virtual-network"]["uuid"]] = body
                    else:
                        err = f"HTTP {r.status}"
            elif kind == "read":
                u = random.choice(list(self.acked))
                async with s.get(f"{self.base}/virtual-network/{u}") as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
            elif roll > 0.95:
                async with s.get(f"{self.analytics}/uves/config-nodes") as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
            else:
                q = {"table": "MessageTable", "start_time": "now-1m", "end_time": "now", "limit": 10,
                     "select_fields": ["MessageTS", "Source", "Messagetype"], "sort_fields": ["MessageTS"], "sort": 2}
                async with s.post(f"{self.analytics}/query", json=q) as r:
                    await r.read()
                    ok, err = r.status == 200, "" if r.status == 200 else f"HTTP {r.status}"
        except (TimeoutError, aiohttp.ClientError) as e:
            ok, err = False, e.__class__.__name__
        self.samples.append(Sample(time.monotonic(), kind, ok, time.monotonic() - t0, err))

    async def _messages(self) -> None:
        """Numbered analytics messages at ``message_rate`` a second, until stopped."""
        assert self.generator is not None
        n, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            self.messages.append(self.generator.message("DrillMessage", {"drill": self.project, "n": n}))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / self.message_rate - time.monotonic()))

    async def run(self) -> None:
        if self.generator is not None:
            self.generator.start()
        async with self.vip.session(CLIENT_TIMEOUT_S, limit=self.max_in_flight) as s:
            extra = asyncio.get_running_loop().create_task(self._messages()) if self.generator else None
            slots = asyncio.Semaphore(self.max_in_flight)
            running: set[asyncio.Task[None]] = set()

            def done(t: asyncio.Task[None]) -> None:
                running.discard(t)
                slots.release()

            i, t0 = 0, time.monotonic()
            while not self.stop.is_set():
                i += 1
                await slots.acquire()
                task = asyncio.get_running_loop().create_task(self._one(s, i))
                running.add(task)
                task.add_done_callback(done)
                await asyncio.sleep(max(0.0, t0 + i / self.rate - time.monotonic()))
            await asyncio.gather(*running)
            if extra is not None:
                await extra

    async def flush(self, timeout: float = 120.0) -> bool:
        """Wait until the collectors acknowledged every message; stop the generator."""
        if self.generator is None:
            return True
        ok = await self.generator.flush(timeout)
        await self.generator.stop(0)
        return ok


async def setup_project(vip: Vip) -> str:
    name = f"drill-{uuid.uuid4().hex[:8]}"
    async with vip.session() as s, s.post(
            f"{vip.config}/projects", json={"project": {"fq_name": ["default-domain", name]}}) as r:
        if r.status != 200:
            raise RuntimeError(f"cannot create the drill project: HTTP {r.status} {await r.text()}")
    return name


CLEANUP_ATTEMPTS = 6  # each request of the clean-up; a VIP move or a replica restart may reset one


async def _retried(request: Callable[[], Awaitable[T]]) -> T:
    """``request`` again after a connection error or timeout (a DELETE answered 404 the second time
    is fine: it was done)."""
    for attempt in range(CLEANUP_ATTEMPTS):
        try:
            return await request()
        except (TimeoutError, aiohttp.ClientError):
            if attempt == CLEANUP_ATTEMPTS - 1:
                raise
            await asyncio.sleep(1 + attempt)
    raise AssertionError("unreachable")


async def cleanup(vip: Vip, project: str) -> int:
    """Delete what a drill created (its virtual networks, then its project); returns how many objects."""
    base = vip.config
    async with vip.session() as s:
        async def listed() -> list[str]:
            async with s.get(f"{base}/virtual-networks",
                             params={"parent_fq_name_str": f"default-domain:{project}"}) as r:
                return [o["uuid"] for o in (await r.json())["virtual-networks"]] if r.status == 200 else []
        vns = await _retried(listed)
        sem = asyncio.Semaphore(16)

        async def delete(path: str) -> None:
            async def once() -> None:
                async with s.delete(f"{base}/{path}") as r:
                    await r.read()
            async with sem:
                await _retried(once)
        await asyncio.gather(*(delete(f"virtual-network/{u}") for u in vns))

        async def project_uuid() -> str | None:
            ask = {"type": "project", "fq_name": ["default-domain", project]}
            async with s.post(f"{base}/fqname-to-id", json=ask) as r:
                return str((await r.json())["uuid"]) if r.status == 200 else None
        if (uuid_ := await _retried(project_uuid)) is not None:
            await delete(f"project/{uuid_}")
    return len(vns) + 1


async def probe_minority(address: str, project: str, stop: asyncio.Event, out: dict[str, int]) -> None:
    """While a controller is partitioned: try creates on its replica directly; it must refuse them (503)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        while not stop.is_set():
            body = {"virtual-network": {"fq_name": ["default-domain", project, f"minority-{uuid.uuid4().hex[:8]}"],
                                        "parent_type": "project"}}
            try:
                async with s.post(f"http://{address}/virtual-networks", json=body) as r:
                    key = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as e:
                key = e.__class__.__name__
            out[key] = out.get(key, 0) + 1
            await asyncio.sleep(0.5)
