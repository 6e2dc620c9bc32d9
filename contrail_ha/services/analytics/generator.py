"""The generator side: what every service and node agent uses to report to the collectors.

UVE state is kept per ``(table, key, struct)``: a change replaces what is still unsent
(coalesced, never dropped) and the whole state is re-sent every ``refresh`` seconds, so a new
aggregator and the staleness rule see it. Messages and object logs queue in order, bounded in
records and bytes (the oldest are dropped and counted when no collector takes them for a long
time). A batch leaves the queue only when a collector answers 200, i.e. after Kafka acknowledged
it; on a transient failure (no answer, 5xx) the generator moves to the next collector of the list
(the analytics hosts' IPs) and retries.

One record can never stall the others:

- every record is bounded when it is queued: one whose JSON is over ``MAX_RECORD_BYTES`` (what
  the collector and Kafka accept) is truncated deterministically (``protocol.bound_record``) and
  counted, never dropped;
- batches never exceed ``batch_bytes`` (below the collector's ``MAX_BATCH_BYTES``);
- records the collector refuses for good (a 200 naming them in ``refused``, or a 400/413/422 for
  the batch, which is then split in halves until the bad records are alone) are dropped one by
  one, counted and logged; the others are sent.

``state()`` says how the generator is doing (queue depth, oldest record's age, drops, last
success); ``stall()`` is the reason it is stalled (records waiting over ``stall_after`` s, or the
queue full), which the service's NodeStatus (``nodestatus``), its ``/health``
(``GeneratorHealth``) and the ``generator-stalled`` alarm report.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from contrail_ha.services.analytics.protocol import (
    CONN_DOWN,
    CONN_INIT,
    CONN_UP,
    MAX_BATCH_BYTES,
    MAX_RECORD_BYTES,
    STALL_AFTER_S,
    UVE_REFRESH_S,
    AnyRecord,
    MessageRecord,
    ObjectLogRecord,
    Origin,
    UveRecord,
    bound_record,
    djb2,
    new_id,
    now_us,
)
from contrail_ha.services.deps import Dependency

log = logging.getLogger(__name__)

UveKey = tuple[str, str, str]  # table, key, struct

BATCH_BYTES = MAX_BATCH_BYTES // 4  # 1 MiB: a request stays quick to acknowledge; a max-size record still fits
PERMANENT = (400, 413, 422)  # the collector refuses the content: re-sending it elsewhere cannot help
MAX_OBJECT_ID = 1024  # ObjectLogRecord.object_id's limit


@dataclass(eq=False)
class Queued:
    """A bounded record, its JSON (sent as is) and when it was queued."""

    record: AnyRecord
    text: str
    since: float = field(default_factory=time.monotonic)  # when its content first waited (UVEs: the first change)

    @property
    def size(self) -> int:
        return len(self.text)


@dataclass
class _Result:
    """What one POST came to: sent (with the records the collector refused), refused as a whole, or failed."""

    error: str | None = None
    permanent: bool = False
    refused: dict[int, str] = field(default_factory=dict)  # index in the batch -> the collector's reason


def _refused(text: str, n: int) -> dict[int, str]:
    """The records a collector's answer names as refused (``refused``: index, status, error)."""
    out: dict[int, str] = {}
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        for x in json.loads(text).get("refused") or []:
            i = int(x["index"])
            if 0 <= i < n:
                out[i] = f"HTTP {x.get('status', '?')}: {x.get('error', '')}"
    return out


class Generator:
    """An asyncio generator client; ``start`` it in the service's event loop."""

    def __init__(self, origin: Origin, collectors: list[str], *, refresh: float = UVE_REFRESH_S,
                 max_pending: int = 20000, max_pending_bytes: int | None = None, batch_records: int = 500,
                 batch_bytes: int = BATCH_BYTES, max_record_bytes: int = MAX_RECORD_BYTES,
                 timeout: float = 5.0, stall_after: float = STALL_AFTER_S) -> None:
        if not collectors:
            raise ValueError("a generator needs at least one collector address")
        self.origin = origin
        self.collectors = list(collectors)
        self.refresh, self.max_pending, self.batch_records, self.timeout = refresh, max_pending, batch_records, timeout
        # bytes as well as records: 20000 truncated object logs would otherwise be 10 GiB
        self.max_pending_bytes = max_pending_bytes or max(64 * 1024 * 1024, max_pending * 1024)
        self.max_record_bytes = min(max_record_bytes, MAX_RECORD_BYTES)
        self._origin_json = json.dumps(origin.model_dump(), separators=(",", ":"))
        # a batch body is '{"origin":O,"records":[r1,r2]}': envelope + records + commas
        self._envelope = len('{"origin":,"records":[]}') + len(self._origin_json)
        self.batch_bytes = min(batch_bytes, MAX_BATCH_BYTES)
        if self.batch_bytes < self._envelope + self.max_record_bytes:
            raise ValueError(f"batch_bytes {batch_bytes} cannot hold a record of {self.max_record_bytes} bytes")
        self.stall_after = stall_after
        self._index = djb2(str(origin)) % len(self.collectors)  # spread generators over the collectors
        self._state: dict[UveKey, dict[str, Any] | None] = {}
        self._unsent_uves: dict[UveKey, Queued] = {}
        self._logs: deque[Queued] = deque()
        self._log_bytes = 0
        self._seq = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.connected = False
        self.status = CONN_INIT
        self.reason = "not connected yet"
        self.last_sent: float | None = None  # wall clock of the last 200
        self._last_sent_mono: float | None = None
        self._stalled_since: float | None = None  # wall clock
        self.stats = {"sent": 0, "batches": 0, "dropped": 0, "failovers": 0, "truncated": 0, "refused": 0}

    # --- what services call ------------------------------------------------------------------------
    def uve(self, table: str, key: str, struct: str, data: dict[str, Any] | None) -> None:
        """Set this origin's ``struct`` of UVE ``table:key`` (``None`` deletes it)."""
        k = (table, key, struct)
        q = self._bound(UveRecord(kind="uve", id=new_id(), ts=now_us(), table=table, key=key, struct=struct,
                                  data=data))
        assert isinstance(q.record, UveRecord)
        if data is None:
            self._state.pop(k, None)
        else:
            self._state[k] = q.record.data  # bounded: the refresh re-sends what fits
        old = self._unsent_uves.get(k)
        if old is not None:
            q.since = old.since  # coalesced: it has waited since the first unsent change
        self._unsent_uves[k] = q
        self._wake.set()

    def message(self, messagetype: str, body: dict[str, Any], *, category: str = "", level: int = 6,
                ts: int | None = None) -> str:
        """Queue a message (MessageTable); returns its id."""
        self._seq += 1
        r = MessageRecord(kind="message", id=new_id(), ts=ts or now_us(), seq=self._seq, messagetype=messagetype,
                          category=category, level=level, body=body)
        self._push(self._bound(r))
        return r.id

    def objectlog(self, table: str, object_id: str, messagetype: str, body: dict[str, Any]) -> str:
        """Queue an object log (e.g. ConfigObjectTable); returns its id."""
        if len(object_id) > MAX_OBJECT_ID:  # a long fq_name must not make the caller's request fail
            object_id = object_id[: MAX_OBJECT_ID - 3] + "..."
        r = ObjectLogRecord(kind="objectlog", id=new_id(), ts=now_us(), table=table, object_id=object_id,
                            messagetype=messagetype, body=body)
        self._push(self._bound(r))
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

    def oldest_age(self) -> float:
        """Seconds the oldest queued record (or unsent UVE change) has waited; 0 when nothing is queued."""
        now = time.monotonic()
        oldest = [q.since for q in self._unsent_uves.values()]
        if self._logs:
            oldest.append(self._logs[0].since)
        return max(0.0, now - min(oldest)) if oldest else 0.0

    def full(self) -> bool:
        """The log queue is at its bound: a new record (of the largest size) would push the oldest out."""
        return len(self._logs) >= self.max_pending or self._log_bytes + self.max_record_bytes > self.max_pending_bytes

    def stall(self) -> str | None:
        """Why this generator is stalled (records not delivered for ``stall_after`` s, or queue full); None if not."""
        reason = None
        if self.full():
            reason = f"queue full ({self.max_pending} records or {self.max_pending_bytes} bytes), oldest dropped"
        elif self.oldest_age() > self.stall_after:
            reason = f"records waiting more than {self.stall_after:.0f}s"
        if reason is None:
            self._stalled_since = None
        elif self._stalled_since is None:
            self._stalled_since = time.time()
            log.warning("generator stalled: %s (%d queued, collector %s: %s)", reason, self.pending,
                        self.collector, self.reason)
        return reason

    def report(self) -> dict[str, Any]:
        """The stable part of ``state()``, for NodeStatus (changes only with the stall and the counters)."""
        reason = self.stall()
        return {"stalled": reason is not None, "reason": reason or "",
                "since": int(self._stalled_since * 1e6) if self._stalled_since else 0,
                "dropped": self.stats["dropped"], "truncated": self.stats["truncated"],
                "refused": self.stats["refused"]}

    def state(self) -> dict[str, Any]:
        """Everything about the queue and the link, for ``/health`` and debugging."""
        reason = self.stall()
        return {"stalled": reason is not None, "reason": reason or "", "collector": self.collector,
                "status": self.status, "detail": self.reason, "queued": self.pending,
                "queued_bytes": self._log_bytes + sum(q.size for q in self._unsent_uves.values()),
                "oldest_s": round(self.oldest_age(), 1),
                "last_sent": self.last_sent,
                "last_sent_s_ago": (round(time.monotonic() - self._last_sent_mono, 1)
                                    if self._last_sent_mono is not None else None),
                **self.stats}

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
    def _bound(self, r: AnyRecord) -> Queued:
        out, text, original = bound_record(r, self.max_record_bytes)
        if original is not None:
            self.stats["truncated"] += 1
            what = f"{r.table}:{r.key}|{r.struct}" if isinstance(r, UveRecord) else (
                f"{r.table} {r.object_id}" if isinstance(r, ObjectLogRecord) else r.messagetype)
            log.warning("%s record %s (%s) of %d bytes truncated to %d (limit %d)", r.kind, r.id, what,
                        original, len(text), self.max_record_bytes)
        return Queued(out, text)

    def _push(self, q: Queued) -> None:
        self._logs.append(q)
        self._log_bytes += q.size
        while len(self._logs) > 1 and (len(self._logs) > self.max_pending or self._log_bytes > self.max_pending_bytes):
            self._log_bytes -= self._logs.popleft().size
            self.stats["dropped"] += 1
        self._wake.set()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            ts = now_us()
            for (table, key, struct), data in self._state.items():
                if (table, key, struct) not in self._unsent_uves:
                    r = UveRecord(kind="uve", id=new_id(), ts=ts, table=table, key=key, struct=struct, data=data)
                    self._unsent_uves[(table, key, struct)] = Queued(r, bound_record(r, self.max_record_bytes)[1])
            self._wake.set()

    def _take(self, uves_only: bool = False) -> list[Queued]:
        """The next batch: unsent UVEs first, then logs in order, within ``batch_records`` and ``batch_bytes``."""
        out: list[Queued] = []
        size = self._envelope - 1  # no comma before the first record
        source: Iterable[Queued] = itertools.chain(self._unsent_uves.values(), () if uves_only else self._logs)
        for q in source:  # synchronous: nothing changes the queues meanwhile
            if len(out) >= self.batch_records or (out and size + 1 + q.size > self.batch_bytes):
                break
            out.append(q)
            size += 1 + q.size
        return out

    def _done(self, items: list[Queued]) -> None:
        """``items`` left the queue (sent or refused for good)."""
        done = {id(q) for q in items}
        for q in items:
            r = q.record
            if isinstance(r, UveRecord):
                k = (r.table, r.key, r.struct)
                if self._unsent_uves.get(k) is q:  # not replaced by a newer state meanwhile
                    del self._unsent_uves[k]
        # While a batch is out the queue only grows at its end or drops its oldest: the batch is its head
        # (refused records picked out of a batch may not be; then filter, rarely).
        while self._logs and id(self._logs[0]) in done:
            self._log_bytes -= self._logs.popleft().size
        if any(id(q) in done for q in itertools.islice(self._logs, len(items))):
            self._logs = deque(q for q in self._logs if id(q) not in done)
            self._log_bytes = sum(q.size for q in self._logs)

    def _refuse(self, q: Queued, why: str) -> None:
        """The collector refused this record for good: drop it (counted), and never re-send its UVE state."""
        r = q.record
        self.stats["refused"] += 1
        log.error("collector %s refused %s record %s (%d bytes); dropped: %s", self.collector, r.kind, r.id,
                  q.size, why[:300])
        if isinstance(r, UveRecord):
            k = (r.table, r.key, r.struct)
            if self._state.get(k) == r.data:
                del self._state[k]

    def _set(self, status: str, reason: str) -> None:
        if (status, reason) != (self.status, self.reason):
            log.info("collector %s: %s (%s)", self.collector, status, reason)
        self.status, self.reason, self.connected = status, reason, status == CONN_UP

    async def _post(self, items: list[Queued]) -> _Result:
        """Send one batch to the current collector."""
        assert self._session is not None
        body = '{"origin":' + self._origin_json + ',"records":[' + ",".join(q.text for q in items) + "]}"
        try:
            async with self._session.post(f"http://{self.collector}/generator/records", data=body.encode(),
                                          headers={"Content-Type": "application/json"}) as resp:
                text = await resp.text()
                if resp.status == 200:
                    return _Result(refused=_refused(text, len(items)))
                err = f"HTTP {resp.status}: {text.strip()[:200]}"
                if resp.status in PERMANENT:
                    return _Result(error=err, permanent=True, refused=_refused(text, len(items)))
                return _Result(error=err)
        except (TimeoutError, aiohttp.ClientError) as e:
            return _Result(error=f"{e.__class__.__name__}: {e}"[:200])

    async def _deliver(self, items: list[Queued]) -> str | None:
        """Send ``items``; a batch refused as a whole is split until the refused records are alone.

        None when every record left the queue (sent, or refused and dropped); else the transient
        error (what was sent meanwhile has left the queue; the rest is retried elsewhere).
        """
        parts = [items]
        while parts:
            part = parts.pop()
            res = await self._post(part)
            if res.error is None:
                for i, why in sorted(res.refused.items()):
                    self._refuse(part[i], why)
                self._done(part)
                n = len(part) - len(res.refused)
                self.stats["sent"] += n
                self.stats["batches"] += 1
                self.last_sent, self._last_sent_mono = time.time(), time.monotonic()
                continue
            if not res.permanent:
                return res.error
            if res.refused:  # the collector named the bad records (and produced nothing): the rest again
                bad = [q for i, q in enumerate(part) if i in res.refused]
                for i, why in sorted(res.refused.items()):
                    self._refuse(part[i], why)
                self._done(bad)
                rest = [q for i, q in enumerate(part) if i not in res.refused]
                if rest:
                    parts.append(rest)
                continue
            if len(part) == 1:
                self._refuse(part[0], res.error)
                self._done(part)
                continue
            mid = len(part) // 2  # in order: the first half goes first
            parts += [part[mid:], part[:mid]]
        return None

    async def _sender(self) -> None:
        failures = 0
        while True:
            try:
                if not self.pending:
                    self._wake.clear()
                    await self._wake.wait()
                # After a failure alternate with UVE-only batches: if only the log records cannot get
                # through, the NodeStatus (which says this generator is stalled) still does.
                items = self._take(uves_only=failures % 2 == 1 and bool(self._unsent_uves) and bool(self._logs))
                err = await self._deliver(items)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let the sender die: the service would stop reporting for good
                log.exception("generator sender")
                err = f"{e.__class__.__name__}: {e}"[:200]
            if err is None:
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


class GeneratorHealth(Dependency):
    """The generator in a service's ``/health``: its ``state()``, and ``degraded`` while it is stalled.

    Not gating by default (``ok`` stays True): HAProxy checks ``/health``, and an API replica must
    keep serving while the analytics plane cannot take its records. ``gating=True`` makes a stall
    fail ``/health`` (for services nobody balances over).
    """

    name = "analytics-generator"

    def __init__(self, gen: Generator, *, gating: bool = False) -> None:
        super().__init__()
        self.gen, self.gating = gen, gating
        self._set(True, "not started")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def refresh(self) -> None:
        reason = self.gen.stall()  # stable wording: Dependency._set logs every change
        self._set(reason is None or not self.gating, "delivering" if reason is None else f"stalled: {reason}")

    def status(self) -> dict[str, object]:
        """The usual ``ok``/``reason``/``for_s``, plus ``degraded`` (stalled) and the generator's ``state()``."""
        self.refresh()
        st = self.gen.state()
        return {**super().status(), "degraded": st["stalled"], "generator": st}
