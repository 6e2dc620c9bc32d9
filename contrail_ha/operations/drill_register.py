"""The drill's register: one property of one object written and read through the VIP and through
every contrail-api replica directly, recorded with each request's send and answer times, and
checked afterwards for linearizability (:mod:`.linearizable`). Linearizability of this history
covers read-your-writes across replicas, monotonic reads through the VIP and "no acknowledged
write lost" for a register; the drill's data check covers the rest.

Each reader is a closed loop (write a unique value, read it back), so the register adds a few
requests a second per reader on top of the open-loop workload.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

from contrail_ha.operations import linearizable
from contrail_ha.operations.drill_http import once_session
from contrail_ha.operations.vip import Vip
from contrail_ha.topology.plan import CONFIG_API, Plan

TIMEOUT_S = 30.0
PAUSE_S = 0.1  # between one reader's write-read pairs
INITIAL = "drill-register-initial"


@dataclass
class RegisterResult:
    ops: int = 0
    unknown: int = 0  # writes whose outcome the client could not learn (no answer, 5xx)
    linearizable: bool = True
    window: list[str] = field(default_factory=list)  # on a violation: the smallest window, one line an op
    undecided: bool = False  # the search gave up (reported, not counted as a violation)


class Register:
    """Readers on one object's ``display_name`` (the drill's project): the VIP and each replica."""

    def __init__(self, plan: Plan, vip: Vip, project_uuid: str) -> None:
        self.path = f"/project/{project_uuid}"
        self.vip = vip
        self.readers = [("vip", vip.config)] + \
            [(i.name + "@" + i.host.name, f"http://{i.address}") for i in plan.of(CONFIG_API)]
        self.ops: list[linearizable.Op] = []
        self.t0 = time.monotonic()
        self.stop = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def start(self, s: aiohttp.ClientSession) -> None:
        """Give the register its initial value (through the VIP)."""
        base = self.readers[0][1]
        async with s.put(base + self.path, json={"project": {"display_name": INITIAL}}) as r:
            if r.status != 200:
                raise RuntimeError(f"cannot set the drill's register: HTTP {r.status} {await r.text()}")

    async def _reader(self, s: aiohttp.ClientSession, label: str, base: str) -> None:
        k = 0
        while not self.stop.is_set():
            k += 1
            value = f"{label}-{k}-{uuid.uuid4().hex[:6]}"
            t0 = self.now()
            try:
                async with s.put(base + self.path, json={"project": {"display_name": value}}) as r:
                    await r.read()
                    status: int | None = r.status
            except (TimeoutError, aiohttp.ClientError):
                # no answer: the request may have reached a replica and may still apply, at any time
                status = None
            t1 = self.now()
            if status == 200:
                self.ops.append(linearizable.Op("w", value, t0, t1, label))
            elif status is None or status >= 500:  # may still apply (a 503 before any write is safe too)
                self.ops.append(linearizable.Op("w", value, t0, None, label))
            t0 = self.now()
            try:
                async with s.get(base + self.path, params={"fields": "display_name"}) as r:
                    body = await r.json() if r.status == 200 else None
            except (TimeoutError, aiohttp.ClientError, ValueError):
                body = None
            t1 = self.now()
            if isinstance(body, dict) and isinstance(body.get("project"), dict):
                self.ops.append(linearizable.Op("r", body["project"].get("display_name"), t0, t1, label))
            await asyncio.sleep(PAUSE_S)

    async def run(self) -> None:
        async with once_session(TIMEOUT_S, self.vip) as s:  # one request per recorded op (drill_http)
            await self.start(s)
            await asyncio.gather(*(self._reader(s, label, base) for label, base in self.readers))

    def check(self) -> RegisterResult:
        unknown = sum(1 for o in self.ops if o.done is None)
        try:
            verdict = linearizable.check(self.ops, initial=INITIAL)
        except RuntimeError as e:  # the search is exponential in the worst case: say so, do not guess
            return RegisterResult(len(self.ops), unknown, True, [f"undecided: {e}"], undecided=True)
        return RegisterResult(len(self.ops), unknown, verdict.ok, [o.brief() for o in verdict.window])


async def project_uuid(vip: Vip, name: str) -> str:
    """The uuid of the drill's project (``default-domain:<name>``)."""
    ask = {"type": "project", "fq_name": ["default-domain", name]}
    async with vip.session(TIMEOUT_S) as s, s.post(f"{vip.config}/fqname-to-id", json=ask) as r:
        if r.status != 200:
            raise RuntimeError(f"cannot find the drill project {name}: HTTP {r.status} {await r.text()}")
        return str((await r.json())["uuid"])
