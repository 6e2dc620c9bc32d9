"""Issue 20's pause nemesis against a running cluster, with the invariants checked afterwards.

A *round* freezes one contrail-api replica (SIGSTOP, as a long GC stall or a frozen VM does) while
creates (a network under a project, with a ref to that project's IPAM) and ref adds (the IPAM onto
an existing network) are in flight on it, for longer than a create's claim window. Meanwhile
everything under those projects is deleted through the other replicas (refs removed, networks,
IPAMs, then the projects; a 409 is retried). Then the replica is resumed, its answers collected,
and every reader (the VIP and each replica directly) is asked:

- ``acked-orphan``: a create answered 200 whose project's delete was answered 200 too, and that
  the deleter never saw (so never deleted);
- ``orphan`` / ``dangling``: a network listed or readable whose project, or whose IPAM ref's
  target, reads 404;
- ``phantom``: a network listed (``GET /virtual-networks``) that reads 404;
- ``lost-delete``: a project or IPAM whose delete was answered 200 and that still reads;
- ``5xx``: an answer >= 500 other than 503 / 504 (both mean "not done" / "unknown");
- ``not-linearizable``: meanwhile clients write and read one property of one object through the
  VIP and through each replica (the frozen one too); the history of that register must be
  linearizable (``contrail_ha.operations.linearizable``), which covers read-your-writes across
  replicas, monotonic reads and no acknowledged write lost.

Every request and answer is kept with its send and answer times (``history``), so a violation can
be shown with the requests that produced it. Everything a round created is deleted afterwards.
"""

from __future__ import annotations

import random
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from contrail_ha.operations import linearizable

DOMAIN = "default-domain"
TIMEOUT = 120.0  # a request held by the frozen replica is answered after the resume
# The deleters' requests: one that HAProxy sent to the frozen replica before taking it out of
# rotation is given up (and counted unanswered) so the deleter goes on through the others.
DELETE_TIMEOUT = 10.0
Obj = dict[str, Any]


@dataclass
class Op:
    """One request of the history: what, through whom, when sent and answered, and the answer."""

    kind: str  # create | ref-add | ref-del | delete-vn | delete-ipam | delete-project
    target: str
    index: int
    sent: float
    answered: float = 0.0
    status: int | None = None
    uuid: str = ""
    text: str = ""

    def brief(self) -> str:
        return (f"{self.kind}[{self.index}] {self.uuid or '-'} via {self.target}: {self.status} "
                f"({self.sent:.2f}-{self.answered:.2f}) {self.text[:120]}")


@dataclass
class PauseResult:
    rounds: int = 0
    held: int = 0  # requests sent before the freeze and answered after the resume (held by the pause)
    register_ops: int = 0  # operations of the register history checked for linearizability
    answers: Counter[str] = field(default_factory=Counter)  # "<kind> <status>"
    violations: list[str] = field(default_factory=list)
    history: list[Op] = field(default_factory=list)

    def summary(self) -> str:
        answers = ", ".join(f"{k}: {n}" for k, n in sorted(self.answers.items()))
        return (f"{self.rounds} rounds; answers {answers}; register ops checked {self.register_ops}; "
                f"{len(self.violations)} violations")


def _req(client: httpx.Client, base: str, method: str, path: str, body: Any = None) -> tuple[int | None, str]:
    try:
        r = client.request(method, base + path, json=body)
        return r.status_code, r.text
    except httpx.HTTPError as e:
        return None, f"{type(e).__name__}: {e}"


class Round:
    """One pause round (see the module's docstring)."""

    def __init__(self, vip: str, replicas: list[str], paused: str, *, pairs: int = 6, workers: int = 6) -> None:
        self.vip, self.paused, self.pairs, self.workers = vip, paused, pairs, workers
        self.others = [r for r in replicas if r != paused] + [vip]
        self.tag = uuidlib.uuid4().hex[:8]
        self.t0 = time.monotonic()
        self.history: list[Op] = []
        self.lock = threading.Lock()
        self.projects: list[tuple[str, str, str]] = []  # (project uuid, ipam uuid, anchor network uuid)
        self.client = httpx.Client(timeout=TIMEOUT)
        self.frozen: tuple[float, float] = (0.0, 0.0)  # when the replica was frozen and resumed
        self.register = ""  # the uuid of the object whose display_name the register clients share
        self.register_ops: list[linearizable.Op] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, op: Op) -> Op:
        with self.lock:
            self.history.append(op)
        return op

    def call(self, client: httpx.Client, kind: str, index: int, base: str, method: str, path: str,
             body: Any = None) -> Op:
        op = Op(kind, base, index, self.now())
        op.status, op.text = _req(client, base, method, path, body)
        op.answered = self.now()
        if op.status == 200 and kind == "create":
            op.uuid = str(httpx.Response(200, text=op.text).json()["virtual-network"]["uuid"])
        return self.record(op)

    # --- setup --------------------------------------------------------------------------------------
    def _post(self, rtype: str, body: Obj) -> str:
        base = self.others[0]
        for attempt in range(5):
            status, text = _req(self.client, base, "POST", f"/{rtype}s", {rtype: body})
            if status == 200:
                return str(httpx.Response(200, text=text).json()[rtype]["uuid"])
            time.sleep(1 + attempt)
        raise RuntimeError(f"setup: POST /{rtype}s through {base}: {status} {text[:300]}")

    def setup(self) -> None:
        for i in range(self.pairs):
            pname = f"pz-{self.tag}-{i}"
            p = self._post("project", {"fq_name": [DOMAIN, pname], "parent_type": "domain"})
            ipam = self._post("network-ipam", {"fq_name": [DOMAIN, pname, "ipam"], "parent_type": "project"})
            vn = self._post("virtual-network", {"fq_name": [DOMAIN, pname, "anchor"], "parent_type": "project"})
            self.projects.append((p, ipam, vn))
        self.register = self._post("project", {"fq_name": [DOMAIN, f"pz-{self.tag}-reg"], "parent_type": "domain",
                                               "display_name": "initial"})

    def register_worker(self, label: str, base: str, stop: threading.Event) -> None:
        """Write a unique value, read it back, through one reader, until ``stop``."""
        with httpx.Client(timeout=TIMEOUT) as client:
            k = 0
            while not stop.is_set():
                k += 1
                value = f"{label}-{k}"
                t0 = self.now()
                status, text = _req(client, base, "PUT", f"/project/{self.register}",
                                    {"project": {"display_name": value}})
                t1 = self.now()
                if status == 200:
                    self.register_ops.append(linearizable.Op("w", value, t0, t1, label))
                elif status is None or status >= 500:  # no answer, 503/504: it may still apply
                    self.register_ops.append(linearizable.Op("w", value, t0, None, label))
                t0 = self.now()
                status, text = _req(client, base, "GET", f"/project/{self.register}?fields=display_name")
                t1 = self.now()
                if status == 200:
                    got = httpx.Response(200, text=text).json()["project"].get("display_name")
                    self.register_ops.append(linearizable.Op("r", got, t0, t1, label))
                elif status is None or status >= 500:
                    time.sleep(0.2)

    # --- the load on the replica that is frozen ------------------------------------------------------
    def worker(self, w: int, stop: threading.Event) -> None:
        rnd = random.Random(w)
        with httpx.Client(timeout=TIMEOUT) as client:
            k = 0
            while not stop.is_set():
                i = rnd.randrange(self.pairs)
                pname = f"pz-{self.tag}-{i}"
                _, ipam, anchor = self.projects[i]
                if rnd.random() < 0.7:
                    body = {"virtual-network": {
                        "fq_name": [DOMAIN, pname, f"vn-{w}-{k}"], "parent_type": "project",
                        "network_ipam_refs": [{"to": [DOMAIN, pname, "ipam"], "attr": {"ipam_subnets": []}}]}}
                    self.call(client, "create", i, self.paused, "POST", "/virtual-networks", body)
                else:
                    body = {"operation": "ADD", "type": "virtual-network", "uuid": anchor,
                            "ref-type": "network-ipam", "ref-uuid": ipam, "attr": {"ipam_subnets": []}}
                    self.call(client, "ref-add", i, self.paused, "POST", "/ref-update", body)
                k += 1

    # --- the deleter, through the other replicas -------------------------------------------------------
    def delete_all(self, i: int, until: float) -> None:
        """Delete everything under project ``i`` through the other replicas, retrying 409s."""
        with httpx.Client(timeout=DELETE_TIMEOUT) as client:
            self._delete_all(client, i, until)

    def _delete_all(self, client: httpx.Client, i: int, until: float) -> None:
        p, ipam, _ = self.projects[i]
        rnd = random.Random(i)
        while self.now() < until:
            base = rnd.choice(self.others)
            status, text = _req(client, base, "GET", f"/virtual-networks?parent_id={p}")
            if status != 200:
                time.sleep(0.5)
                continue
            vns = [v["uuid"] for v in httpx.Response(200, text=text).json().get("virtual-networks", [])]
            for u in vns:
                self.call(client, "ref-del", i, base, "POST", "/ref-update",
                          {"operation": "DELETE", "type": "virtual-network", "uuid": u,
                           "ref-type": "network-ipam", "ref-uuid": ipam})
                op = self.call(client, "delete-vn", i, base, "DELETE", f"/virtual-network/{u}")
                op.uuid = u
            op = self.call(client, "delete-ipam", i, base, "DELETE", f"/network-ipam/{ipam}")
            op.uuid = ipam
            if op.status not in (200, 404):
                time.sleep(0.5)
                continue
            op = self.call(client, "delete-project", i, base, "DELETE", f"/project/{p}")
            op.uuid = p
            if op.status in (200, 404):
                return
            time.sleep(0.5)

    # --- the round --------------------------------------------------------------------------------------
    def run(self, pause: Callable[[], None], resume: Callable[[], None], hold: float) -> list[str]:
        self.setup()
        stop, stop_register = threading.Event(), threading.Event()
        threads = [threading.Thread(target=self.worker, args=(w, stop), daemon=True) for w in range(self.workers)]
        readers = [("vip", self.vip)] + [(f"replica{k}", b) for k, b in enumerate(self.others[:-1])] + \
            [("frozen", self.paused)]
        registers = [threading.Thread(target=self.register_worker, args=(label, base, stop_register), daemon=True)
                     for label, base in readers]
        for t in threads + registers:
            t.start()
        time.sleep(1.0)  # requests in flight at every stage of the write path
        stop.set()  # no new request once the replica is frozen (those in flight stay there)
        pause()
        frozen_at = self.now()
        deleters = [threading.Thread(target=self.delete_all, args=(i, frozen_at + hold - 1), daemon=True)
                    for i in range(self.pairs)]
        try:
            for t in deleters:
                t.start()
            time.sleep(max(0.0, frozen_at + hold - self.now()))  # the freeze lasts exactly ``hold``
        finally:
            resume()
            self.frozen = (frozen_at, self.now())
        for t in deleters + threads:
            t.join(TIMEOUT + 10)
        time.sleep(2.0)  # the register clients go on a little after the resume
        stop_register.set()
        for t in registers:
            t.join(TIMEOUT + 10)
        return self.check()

    def check(self) -> list[str]:
        out: list[str] = []
        by_kind: dict[str, list[Op]] = {}
        for op in self.history:
            by_kind.setdefault(op.kind, []).append(op)
            if op.status is not None and op.status >= 500 and op.status not in (503, 504):
                out.append(f"5xx: {op.brief()}")
        gone_projects = {op.index for op in by_kind.get("delete-project", []) if op.status == 200}
        deleted = {op.uuid for op in by_kind.get("delete-vn", []) if op.status == 200}
        for op in by_kind.get("create", []):
            if op.status == 200 and op.index in gone_projects and op.uuid not in deleted:
                out.append(f"acked-orphan: {op.brief()} / project deleted: "
                           + "; ".join(o.brief() for o in by_kind["delete-project"] if o.index == op.index))
        verdict = linearizable.check(self.register_ops, initial="initial")
        if not verdict.ok:
            out.append(f"not-linearizable: the register ({len(self.register_ops)} ops): {verdict}")
        created = {op.uuid for op in by_kind.get("create", []) if op.uuid}
        for base in [self.vip, *self.others[:-1], self.paused]:
            out += self._read_check(base, created, gone_projects)
        return out

    def _read_check(self, base: str, created: set[str], gone_projects: set[int]) -> list[str]:
        out: list[str] = []

        def get(path: str) -> Obj | None:
            for _ in range(5):
                status, text = _req(self.client, base, "GET", path)
                if status == 404:
                    return None
                if status == 200:
                    return dict(httpx.Response(200, text=text).json())
                time.sleep(1)
            raise RuntimeError(f"{base} cannot read {path}")

        listed = get("/virtual-networks") or {}
        ours = {v["uuid"] for v in listed.get("virtual-networks", []) if f"pz-{self.tag}-" in ":".join(v["fq_name"])}
        for i in gone_projects:
            p, ipam, _ = self.projects[i]
            for what, u in (("project", p), ("network-ipam", ipam)):
                if get(f"/{what}/{u}") is not None:
                    out.append(f"lost-delete: {what} {u} reads after its delete was answered 200 ({base})")
        for u in sorted(ours | created):
            obj = get(f"/virtual-network/{u}")
            if obj is None:
                if u in ours:
                    out.append(f"phantom: virtual-network {u} listed by {base} but reads 404")
                continue
            vn = obj["virtual-network"]
            if get(f"/project/{vn.get('parent_uuid')}") is None:
                out.append(f"orphan: virtual-network {u} {vn.get('fq_name')} without its project ({base})")
            for ref in vn.get("network_ipam_refs") or []:
                if get(f"/network-ipam/{ref['uuid']}") is None:
                    out.append(f"dangling: virtual-network {u} refers to network-ipam {ref['uuid']} ({base})")
        return out

    def cleanup(self) -> None:
        for i in range(len(self.projects)):
            self.delete_all(i, self.now() + 60)
        if self.register:
            _req(self.client, self.others[0], "DELETE", f"/project/{self.register}")
        self.client.close()


def run(vip: str, replicas: list[str], paused: str, pause: Callable[[], None], resume: Callable[[], None], *,
        rounds: int = 1, hold: float = 25.0, progress: Callable[[str], None] = print) -> PauseResult:
    """``rounds`` pause rounds; each holds the pause ``hold`` seconds."""
    res = PauseResult()
    for n in range(rounds):
        r = Round(vip, replicas, paused)
        try:
            found = r.run(pause, resume, hold)
        finally:
            r.cleanup()
        res.rounds += 1
        res.held += sum(1 for op in r.history if op.target == paused and op.sent < r.frozen[0]
                        and op.answered >= r.frozen[1])
        res.history += r.history
        res.register_ops += len(r.register_ops)
        res.violations += [f"[round {n}] {v}" for v in found]
        answers = Counter(f"{op.kind} {op.status}" for op in r.history)
        res.answers.update(answers)
        progress(f"round {n}: {len(found)} violations; " + ", ".join(f"{k}: {c}" for k, c in sorted(answers.items())))
    return res
