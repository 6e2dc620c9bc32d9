"""The clock guard of one contrail-api replica: writes are refused (503) while its wall clock may be
off the cluster's by more than the bound the write path assumes (``rows.MAX_CLOCK_OFFSET_S``).

Why: every write carries its replica's clock as its Cassandra write time, and a create's claim is
judged dead by *another* replica's clock (docs/integrity.md, "Fencing"). A replica whose clock runs
ahead would win every last-write-wins conflict for as long as its lead lasts; one whose clock runs
behind would let its own claims be judged dead while it can still acknowledge them. CockroachDB's
answer is the same bound: a node that cannot vouch for its clock stops serving writes.

How: every ``interval`` s the replica asks each config-DB node for its clock (``now()`` of
``system.local``, one query pinned to each node) and takes the median offset, each sample's
uncertainty being half its round trip. Writes are refused when

- the median offset, less its uncertainty, exceeds the bound;
- no measurement succeeded for ``stale_after`` s (a clock nobody vouched for lately);
- the wall clock moved against the monotonic clock by more than half the bound since the last
  measurement (a step, e.g. ``date -s`` or an NTP jump: refuse until measured again).

The guard is also a health dependency (``/health`` fails, HAProxy takes the replica out of rotation)
and reports its offset in the replica's NodeStatus, which raises the ``clock-skew`` alarm.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contrail_ha.services.config_api.rows import MAX_CLOCK_OFFSET_S
from contrail_ha.services.deps import Dependency

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One node's clock as seen from here: ``offset`` (node - local, seconds) +- ``uncertainty``."""

    node: str
    offset: float
    uncertainty: float


Sampler = Callable[[], Awaitable[list[Sample]]]


class ClockGuard(Dependency):
    """Whether this replica's clock is close enough to the cluster's to write (see the module)."""

    name = "clock"

    def __init__(self, sampler: Sampler, *, max_offset: float = MAX_CLOCK_OFFSET_S, interval: float = 2.0,
                 stale_after: float = 10.0) -> None:
        super().__init__()
        self.sampler, self.max_offset, self.interval, self.stale_after = sampler, max_offset, interval, stale_after
        self.reason = "clock not measured yet"
        self.offset: float | None = None  # the cluster's clock minus ours (median over the nodes)
        self.uncertainty = 0.0
        self.nodes = 0
        self._measured: float | None = None  # monotonic time of the last measurement
        self._wall_minus_mono = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self.measure()
            await asyncio.sleep(self.interval)

    async def measure(self) -> None:
        """One measurement against every reachable config-DB node."""
        try:
            samples = await self.sampler()
        except Exception as e:  # the config DB is down: writes fail anyway; the bound ages out
            log.debug("clock measurement failed: %s", e)
            samples = []
        if samples:
            self.record(samples)
        self.refresh()

    def record(self, samples: list[Sample], *, wall: float | None = None, mono: float | None = None) -> None:
        """Take a measurement (``wall``/``mono``: the local clocks at that moment, for tests)."""
        self.offset = statistics.median(s.offset for s in samples)
        self.uncertainty = statistics.median(s.uncertainty for s in samples)
        self.nodes = len(samples)
        mono = time.monotonic() if mono is None else mono
        self._measured = mono
        self._wall_minus_mono = (time.time() if wall is None else wall) - mono

    def refuse_reason(self, *, wall: float | None = None, mono: float | None = None) -> str | None:
        """Why writes are refused now, or None."""
        mono = time.monotonic() if mono is None else mono
        wall = time.time() if wall is None else wall
        if self._measured is None or self.offset is None:
            return "this replica's clock has not been checked against the cluster yet"
        age = mono - self._measured
        if age > self.stale_after:
            return f"this replica's clock has not been checked against the cluster for {age:.0f} s"
        step = (wall - mono) - self._wall_minus_mono
        if abs(step) > self.max_offset / 2:
            return f"this replica's wall clock moved {step:+.3f} s since it was last checked"
        if abs(self.offset) - self.uncertainty > self.max_offset:
            ahead = "ahead of" if self.offset < 0 else "behind"
            return (f"this replica's clock is {abs(self.offset):.3f} s {ahead} the cluster's (median of "
                    f"{self.nodes} config-DB nodes; the bound is {self.max_offset:g} s)")
        return None

    def refresh(self) -> None:
        why = self.refuse_reason()
        if why is None:
            self._set(True, f"offset {self.offset:+.3f} s (+-{self.uncertainty:.3f}) from {self.nodes} nodes")
        else:
            self._set(False, why + ": writes refused")

    def node_status(self) -> dict[str, object]:
        """What NodeStatus carries (the ``clock-skew`` alarm reads it)."""
        why = self.refuse_reason()
        return {"offset_s": None if self.offset is None else round(self.offset, 4),
                "uncertainty_s": round(self.uncertainty, 4), "nodes": self.nodes,
                "max_offset_s": self.max_offset, "refusing_writes": why is not None, "reason": why or ""}
