"""The drill's object graph: the part of the workload that can break referential integrity.

A few *slots*, each a project with an IPAM, are built and torn down over and over while workers
create under the current one: networks with a ref to the IPAM (and a subnet), instance-ips in
those networks (each allocates an address), project-scoped tags (each allocates a tag id) and
ref adds of the IPAM onto existing networks. A deleter tears a slot down through the VIP or a
replica directly (instance-ips, networks, tags, the IPAM, then the project; a 409 is retried
later) and starts its next *generation* under a new project name.

Every request is kept with its send and answer times and its answer (:class:`Op`), so the
checker (:mod:`.drill_graph_check`) can read the whole history afterwards, and print the requests
behind a violation. Workers are closed loops, so a request held by a frozen replica stalls only
its own worker.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from contrail_ha.operations.drill_http import once_session
from contrail_ha.operations.vip import Vip
from contrail_ha.topology.plan import CONFIG_API, Plan

DOMAIN = "default-domain"
SLOTS = 3  # projects torn down and rebuilt concurrently
WORKERS = 6
TIMEOUT_S = 30.0  # a request not answered within this has an unknown outcome
MIN_OPS = 100  # the drill keeps the graph running after recovery until it has made this many requests
TEARDOWN_EVERY_S = 2.0  # the deleter's pace: one slot torn down about this often
SUBNET = {"ipam_subnets": [{"subnet": {"ip_prefix": "10.20.0.0", "ip_prefix_len": 24}}]}
Obj = dict[str, Any]


@dataclass
class Op:
    """One request: what, through whom, when sent and answered (seconds since the graph's start), the
    answer (``None``: none came, the outcome is unknown; 0: it was never sent) and what it was about."""

    kind: str  # create-<type> | delete-<type> | ref-add | ref-del | list-<type>
    via: str
    sent: float
    answered: float = 0.0
    status: int | None = None
    uuid: str = ""  # the object created or deleted
    gen: str = ""  # the generation (project name) it belongs to
    on: str = ""  # what it depends on: a network's or tag's project, an instance-ip's network
    value: str = ""  # an instance-ip's address, a tag's id
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def may_have_applied(self) -> bool:
        """Answered 200, or with no definite answer (none, 5xx); a 404 on a delete means gone too."""
        return self.status is None or self.status == 200 or self.status >= 500 or \
            (self.kind.startswith("delete-") and self.status == 404)

    def brief(self) -> str:
        status = "no answer" if self.status is None else str(self.status)
        extra = f" {self.value}" if self.value else ""
        return (f"{self.kind} {self.uuid or '-'}{extra} [{self.gen}] via {self.via}: {status} "
                f"({self.sent:.2f}-{self.answered:.2f}) {self.text[:100]}").rstrip()


@dataclass
class Gen:
    """One generation of a slot: its project and IPAM, and the networks created under it (acked)."""

    name: str
    project: str
    ipam: str
    vns: list[str] = field(default_factory=list)
    torn_down: bool = False


class Graph:
    """The graph workload through the VIP (and, for the deleter, each replica directly)."""

    def __init__(self, plan: Plan, vip: Vip, *, slots: int = SLOTS, workers: int = WORKERS) -> None:
        self.tag = f"g-{uuidlib.uuid4().hex[:8]}"
        self.client = vip
        self.readers = [("vip", vip.config)] + \
            [(i.name + "@" + i.host.name, f"http://{i.address}") for i in plan.of(CONFIG_API)]
        self.vip = self.readers[0][1]
        self.slots, self.workers = slots, workers
        self.history: list[Op] = []
        self.current: list[Gen] = []
        self.gens: list[Gen] = []
        self.stop = asyncio.Event()
        self.torn: list[float] = []  # when each teardown finished (seconds since the graph's start)
        self.t0 = time.monotonic()
        self._n = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _next(self) -> int:
        self._n += 1
        return self._n

    async def call(self, s: aiohttp.ClientSession, op: Op, method: str, path: str, body: Any = None,
                   base: str | None = None) -> Obj | None:
        """Send one request and record it; the parsed answer of a 200, else None."""
        base = base or self.vip
        answer: Obj | None = None
        try:
            async with s.request(method, base + path, json=body) as r:
                op.status, op.text = r.status, (await r.text())[:300]
                if r.status == 200:
                    answer = await r.json(content_type=None)
        except aiohttp.ClientConnectorError as e:  # never reached the server (sessions send once: drill_http)
            op.status, op.text = 0, type(e).__name__
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            op.status, op.text = None, type(e).__name__
        op.answered = self.now()
        self.history.append(op)
        return answer

    # --- generations -------------------------------------------------------------------------------
    async def _create(self, s: aiohttp.ClientSession, rtype: str, body: Obj, gen: str, on: str = "") -> str:
        """A setup create through the VIP, retried until it is acknowledged (or the drill stops).

        A retry answered 409 after an attempt with no definite answer means that attempt applied
        (or still holds the name): the object is looked up by its name and, if it reads, adopted.
        So the graph builds on creates it never saw acknowledged - what the server's settling of
        a timed-out create must survive (docs/integrity.md, "A create in doubt is settled")."""
        unsure = False
        for attempt in range(30):
            if attempt and self.stop.is_set():
                break
            op = Op(f"create-{rtype}", "vip", self.now(), gen=gen, on=on)
            got = await self.call(s, op, "POST", f"/{rtype}s", {rtype: body})
            if got is not None:
                op.uuid = str(got[rtype]["uuid"])
                return op.uuid
            if op.status == 409 and unsure and (u := await self._lookup(s, rtype, body["fq_name"], gen)):
                return u
            unsure = unsure or op.status is None or op.status >= 500
            await asyncio.sleep(min(5.0, 0.5 * (attempt + 1)))
        raise RuntimeError(f"graph: cannot create a {rtype} for {gen}: {op.brief()}")

    async def _lookup(self, s: aiohttp.ClientSession, rtype: str, fq_name: list[str], gen: str) -> str:
        """The uuid of ``rtype`` ``fq_name`` ("" if it cannot be read now)."""
        op = Op(f"lookup-{rtype}", "vip", self.now(), gen=gen)
        got = await self.call(s, op, "POST", "/fqname-to-id", {"type": rtype, "fq_name": fq_name})
        op.uuid = str((got or {}).get("uuid") or "")
        return op.uuid

    async def new_gen(self, s: aiohttp.ClientSession, slot: int) -> Gen:
        name = f"{self.tag}-{slot}-{self._next()}"
        project = await self._create(s, "project", {"fq_name": [DOMAIN, name], "parent_type": "domain"}, name)
        ipam = await self._create(s, "network-ipam", {"fq_name": [DOMAIN, name, "ipam"], "parent_type": "project"},
                                  name, on=project)
        gen = Gen(name, project, ipam)
        self.gens.append(gen)
        return gen

    # --- the workers -------------------------------------------------------------------------------
    async def _step(self, s: aiohttp.ClientSession, rnd: random.Random) -> None:
        gen = rnd.choice(self.current)
        roll, n = rnd.random(), self._next()
        if roll < 0.35 or not gen.vns:
            op = Op("create-virtual-network", "vip", self.now(), gen=gen.name, on=gen.project)
            body = {"fq_name": [DOMAIN, gen.name, f"vn-{n}"], "parent_type": "project",
                    "network_ipam_refs": [{"uuid": gen.ipam, "attr": SUBNET}]}
            got = await self.call(s, op, "POST", "/virtual-networks", {"virtual-network": body})
            if got is not None:
                op.uuid = got["virtual-network"]["uuid"]
                gen.vns.append(op.uuid)
        elif roll < 0.65:
            vn = rnd.choice(gen.vns)
            op = Op("create-instance-ip", "vip", self.now(), gen=gen.name, on=vn)
            body = {"fq_name": [f"{gen.name}-iip-{n}"], "virtual_network_refs": [{"uuid": vn}]}
            got = await self.call(s, op, "POST", "/instance-ips", {"instance-ip": body})
            if got is not None:
                op.uuid = got["instance-ip"]["uuid"]
                op.value = await self._read_back(s, "instance-ip", op.uuid, "instance_ip_address")
        elif roll < 0.85:
            op = Op("create-tag", "vip", self.now(), gen=gen.name, on=gen.project)
            body = {"fq_name": [DOMAIN, gen.name, f"label={gen.name}-{n}"], "parent_type": "project",
                    "tag_type_name": "label", "tag_value": f"{gen.name}-{n}"}
            got = await self.call(s, op, "POST", "/tags", {"tag": body})
            if got is not None:
                op.uuid = got["tag"]["uuid"]
                op.value = await self._read_back(s, "tag", op.uuid, "tag_id")
        else:
            vn = rnd.choice(gen.vns)
            op = Op("ref-add", "vip", self.now(), uuid=vn, gen=gen.name, on=gen.ipam)
            await self.call(s, op, "POST", "/ref-update", {
                "operation": "ADD", "type": "virtual-network", "uuid": vn, "ref-type": "network-ipam",
                "ref-uuid": gen.ipam, "attr": SUBNET})

    async def _read_back(self, s: aiohttp.ClientSession, rtype: str, u: str, prop: str) -> str:
        """What the create allocated (its answer carries only the names and uuid); "" if unread."""
        op = Op(f"read-{rtype}", "vip", self.now(), uuid=u)
        got = await self.call(s, op, "GET", f"/{rtype}/{u}?fields={prop}")
        value = (got or {}).get(rtype, {}).get(prop)
        return "" if value is None else str(value)

    async def _worker(self, s: aiohttp.ClientSession, w: int) -> None:
        rnd = random.Random(w)
        while not self.stop.is_set():
            await self._step(s, rnd)
            await asyncio.sleep(0.02)

    # --- the deleter ---------------------------------------------------------------------------------
    async def _children(self, s: aiohttp.ClientSession, base: str, via: str, what: str, key: str,
                        u: str) -> list[str] | None:
        op = Op(f"list-{what}", via, self.now(), uuid=u)
        got = await self.call(s, op, "GET", f"/{what}s?{key}={u}", base=base)
        return None if got is None else [o["uuid"] for o in got.get(f"{what}s", [])]

    async def _delete(self, s: aiohttp.ClientSession, base: str, via: str, what: str, u: str, gen: Gen) -> bool:
        op = Op(f"delete-{what}", via, self.now(), uuid=u, gen=gen.name)
        await self.call(s, op, "DELETE", f"/{what}/{u}", base=base)
        return op.status in (200, 404)

    async def teardown(self, s: aiohttp.ClientSession, gen: Gen, via: str, base: str) -> bool:
        """Delete everything of ``gen`` (True) or stop at the first refusal or failure (False)."""
        vns = await self._children(s, base, via, "virtual-network", "parent_id", gen.project)
        if vns is None:
            return False
        for vn in vns:
            iips = await self._children(s, base, via, "instance-ip", "back_ref_id", vn)
            if iips is None or not all([await self._delete(s, base, via, "instance-ip", u, gen) for u in iips]):
                return False
            if not await self._delete(s, base, via, "virtual-network", vn, gen):
                return False
        tags = await self._children(s, base, via, "tag", "parent_id", gen.project)
        if tags is None or not all([await self._delete(s, base, via, "tag", u, gen) for u in tags]):
            return False
        return await self._delete(s, base, via, "network-ipam", gen.ipam, gen) and \
            await self._delete(s, base, via, "project", gen.project, gen)

    async def _deleter(self, s: aiohttp.ClientSession) -> None:
        rnd = random.Random(1000)
        slot = 0
        while not self.stop.is_set():
            await asyncio.sleep(TEARDOWN_EVERY_S)
            slot = (slot + 1) % self.slots
            old = self.current[slot]
            try:
                self.current[slot] = await self.new_gen(s, slot)  # the workers move on; a few still use ``old``
            except RuntimeError:
                continue  # no new project now (a fault): this slot's generation goes on
            via, base = rnd.choice(self.readers)
            while not await self.teardown(s, old, via, base):
                if self.stop.is_set():
                    return  # left for the cleanup
                await asyncio.sleep(0.5)
                via, base = rnd.choice(self.readers)
            old.torn_down = True
            self.torn.append(self.now())

    async def enough(self, since: float, timeout: float, min_ops: int = MIN_OPS) -> bool:
        """Wait (at most ``timeout`` s) until a generation's teardown has finished after ``since`` (a
        monotonic time) and the history holds ``min_ops`` requests: on a slow machine the closed-loop
        workers may stall through most of a fault, and a graph that barely ran, or never deleted,
        would check little."""
        deadline = time.monotonic() + timeout
        while not (any(t >= since - self.t0 for t in self.torn) and len(self.history) >= min_ops):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def setup(self) -> None:
        """The first generation of every slot (before any fault: the workers need them)."""
        async with once_session(TIMEOUT_S, self.client) as s:
            self.current = [await self.new_gen(s, k) for k in range(self.slots)]

    async def run(self) -> None:
        async with once_session(TIMEOUT_S, self.client) as s:  # one request per recorded op (drill_http)
            await asyncio.gather(self._deleter(s), *(self._worker(s, w) for w in range(self.workers)))

    async def cleanup(self) -> int:
        """Tear down every generation still standing (through the VIP); how many were left."""
        left = [g for g in self.gens if not g.torn_down]
        async with once_session(TIMEOUT_S, self.client) as s:
            for gen in left:
                for _ in range(10):
                    if await self.teardown(s, gen, "vip", self.vip):
                        gen.torn_down = True
                        break
                    await asyncio.sleep(1)
        return len(left)
