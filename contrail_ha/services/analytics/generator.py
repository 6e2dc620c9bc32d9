"""The generator side: what every service and node agent uses to report to the collectors.

UVE state is kept per ``(table, key, struct)``: a change replaces what is still unsent
(coalesced, never dropped) and the whole state is re-sent every ``refresh`` seconds, so a new
aggregator and the staleness rule see it. Messages and object logs queue in order, bounded
(the oldest are dropped and counted when no collector takes them for a long time). A batch
leaves the queue only when a collector answers 200, i.e. after Kafka acknowledged it; on any
failure the generator moves to the next collector of the list (the analytics hosts' IPs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import aiohttp

from contrail_ha.services.analytics.protocol import (
    CONN_DOWN,
    CONN_INIT,
    CONN_UP,
    UVE_REFRESH_S,
    MessageRecord,
    ObjectLogRecord,
    Origin,
    UveRecord,
    djb2,
    new_id,
    now_us,
)

log = logging.getLogger(__name__)

UveKey = tuple[str, str, str]  # table, key, struct


class Generator:
    """An asyncio generator client; ``start`` it in the service's event loop."""

    def __init__(self, origin: Origin, collectors: list[str], *, refresh: float = UVE_REFRESH_S,
                 max_pending: int = 20000, batch_records: int = 500, timeout: float = 5.0) -> None:
        if not collectors:
            raise ValueError("a generator needs at least one collector address")
        self.origin = origin
        self.collectors = list(collectors)
        self.refresh, self.max_pending, self.batch_records, self.timeout = refresh, max_pending, batch_records, timeout
        self._index = djb2(str(origin)) % len(self.collectors)  # spread generators over the collectors
        self._state: dict[UveKey, dict[str, Any] | None] = {}
        self._unsent_uves: dict[UveKey, UveRecord] = {}
        self._logs: deque[MessageRecord | ObjectLogRecord] = deque()
        self._seq = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.connected = False
        self.status = CONN_INIT
        self.reason = "not connected yet"
        self.stats = {"sent": 0, "batches": 0, "dropped": 0, "failovers": 0}

    # --- what services call ------------------------------------------------------------------------
    def uve(self, table: str, key: str, struct: str, data: dict[str, Any] | None) -> None:
        """Set this origin's ``struct`` of UVE ``table:key`` (``None`` deletes it)."""
        k = (table, key, struct)
        if data is None:
            self._state.pop(k, None)
        else:
            self._state[k] = data
        self._unsent_uves[k] = UveRecord(kind="uve", id=new_id(), ts=now_us(), table=table, key=key,
                                         struct=struct, data=data)
        self._wake.set()

    def message(self, messagetype: str, body: dict[str, Any], *, category: str = "", level: int = 6,
                ts: int | None = None) -> str:
        """Queue a message (MessageTable); returns its id."""
        self._seq += 1
        r = MessageRecord(kind="message", id=new_id(), ts=ts or now_us(), seq=self._seq, messagetype=messagetype,
                          category=category, level=level, body=body)
        self._push(r)
        return r.id

    def objectlog(self, table: str, object_id: str, messagetype: str, body: dict[str, Any]) -> str:
        """Queue an object log (e.g. ConfigObjectTable); returns its id."""
        r = ObjectLogRecord(kind="objectlog", id=new_id(), ts=now_us(), table=table, object_id=object_id,
                            messagetype=messagetype, body=body)
        self._push(r)
        return r.id

    @property
    def pending(self) -> int:
        return len(self._logs) + len(self._unsent_uves)

    @property
    def collector(self) -> str:
        return self.collectors[self._index]

    def connection_info(self) -> dict[str, Any]:
        """This generator's link to the collectors, as a NodeStatus ``connection_infos`` entry."""
        return {"type": "Collector", "name": "", "server_addrs": [self.collector], "status": self.status,
                "description": self.reason}

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout, connect=1.0))
        self._tasks = [asyncio.get_running_loop().create_task(self._sender()),
                       asyncio.get_running_loop().create_task(self._refresher())]

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.02)
        return True

    async def stop(self, flush_timeout: float = 2.0) -> None:
        await self.flush(flush_timeout)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._session is not None:
            await self._session.close()

    # --- internals -----------------------------------------------------------------------------------
    def _push(self, r: MessageRecord | ObjectLogRecord) -> None:
        if len(self._logs) >= self.max_pending:
            self._logs.popleft()
            self.stats["dropped"] += 1
        self._logs.append(r)
        self._wake.set()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            ts = now_us()
            for (table, key, struct), data in self._state.items():
                if (table, key, struct) not in self._unsent_uves:
                    self._unsent_uves[(table, key, struct)] = UveRecord(
                        kind="uve", id=new_id(), ts=ts, table=table, key=key, struct=struct, data=data)
            self._wake.set()

    def _take(self) -> tuple[list[UveRecord], list[MessageRecord | ObjectLogRecord]]:
        uves = list(self._unsent_uves.values())[: self.batch_records]
        logs = list(self._logs)[: max(0, self.batch_records - len(uves))]
        return uves, logs

    def _sent(self, uves: list[UveRecord], logs: list[MessageRecord | ObjectLogRecord]) -> None:
        for r in uves:
            k = (r.table, r.key, r.struct)
            if self._unsent_uves.get(k) is r:  # not replaced by a newer state meanwhile
                del self._unsent_uves[k]
        # While a batch is out the queue only grows at its end or drops its oldest: the batch is its head.
        out = {id(r) for r in logs}
        while self._logs and id(self._logs[0]) in out:
            self._logs.popleft()
        self.stats["sent"] += len(uves) + len(logs)
        self.stats["batches"] += 1

    def _set(self, status: str, reason: str) -> None:
        if (status, reason) != (self.status, self.reason):
            log.info("collector %s: %s (%s)", self.collector, status, reason)
        self.status, self.reason, self.connected = status, reason, status == CONN_UP

    async def _post(self, uves: list[UveRecord], logs: list[MessageRecord | ObjectLogRecord]) -> str | None:
        """Send one batch to the current collector; None on success, else the reason."""
        assert self._session is not None
        body = {"origin": self.origin.model_dump(), "records": [r.model_dump() for r in (*uves, *logs)]}
        try:
            async with self._session.post(f"http://{self.collector}/generator/records", json=body) as resp:
                text = await resp.text()
                if resp.status == 200:
                    return None
                if resp.status in (400, 413):  # our own bug: do not retry this batch forever
                    log.error("collector %s refused a batch: HTTP %d %s", self.collector, resp.status, text[:300])
                    self._sent(uves, logs)
                    self.stats["dropped"] += len(uves) + len(logs)
                    return None
                return f"HTTP {resp.status}: {text.strip()[:200]}"
        except (TimeoutError, aiohttp.ClientError) as e:
            return f"{e.__class__.__name__}: {e}"[:200]

    async def _sender(self) -> None:
        failures = 0
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
            uves, logs = self._take()
            err = await self._post(uves, logs)
            if err is None:
                self._sent(uves, logs)
                self._set(CONN_UP, f"sending to {self.collector}")
                failures = 0
                continue
            failures += 1
            self._set(CONN_DOWN, f"{self.collector}: {err}")
            self._index = (self._index + 1) % len(self.collectors)
            self.stats["failovers"] += 1
            # Every collector failed in turn: back off a little before the next round.
            if failures % len(self.collectors) == 0:
                await asyncio.sleep(min(0.2 * (failures // len(self.collectors)), 2.0))
