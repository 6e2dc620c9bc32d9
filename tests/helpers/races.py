"""Concurrency races against a running contrail-api cluster, with the invariants checked afterwards.

Every scenario runs a number of *rounds*. A round creates its own fresh objects under its own
project(s), fires the racing requests at the same moment (one thread per request, each with a
warmed-up connection, released together by a barrier) at different replicas directly and through
the VIP, and then checks the invariants from every reader (the VIP and each replica directly):

- ``lost``: an acknowledged (200) write is not in effect (a ref missing on either side, a map or
  list element missing, a created object that reads 404, a deleted object still readable);
- ``duplicate``: an element added once is present more than once;
- ``orphan``: an object whose parent reads 404, or a children list naming an object that reads 404;
- ``dangling``: a ref to a target that reads 404, or a back-ref from a source that reads 404;
- ``asymmetric``: a ref without its back-ref (or the reverse), a parent link without the
  parent's children entry (or the reverse);
- ``bad-409``: a 409 "children still present"/"still referred" naming an object that does not
  exist (and that no racing request deleted), or a referrer whose ref was refused;
- ``inconsistent``: answers that contradict each other or the state read afterwards;
- ``5xx``: a racing request answered 5xx other than 503; ``unanswered``: no answer (timeout,
  connection dropped after sending).

Answers 503 and refused connections (a replica restarting) are counted apart (``unavailable``).
A candidate violation is reported only when a second, fresh read from the same reader shows it
again (nothing is waited for: every read is QUORUM, so the invariants must hold right after the
acknowledged responses); candidates that a re-read does not confirm are counted as
``unconfirmed``. Everything a round created is deleted afterwards; what could not be deleted is
listed in ``leftovers``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

TIMEOUT = 30.0
DOMAIN = "default-domain"
SETUP_ATTEMPTS = 5  # a round's setup is retried with a growing pause (1+2+3+4 s at most)
READ_ATTEMPTS = 3
CLEANUP_PASSES = 4
HREF = re.compile(r"/([a-z][a-z0-9-]*)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
# 2-party races: (first, second) as indices into [vip, replica1, replica2, replica3]; mostly
# different replicas directly, some through the VIP.
PAIRS = [(1, 2), (2, 3), (3, 1), (0, 1), (2, 0), (3, 0), (1, 3), (2, 1), (3, 2), (0, 3)]
# 2-party races: round i delays one side by DELAYS[i % 5] (the first side in rounds 0-4, the second
# in 5-9, ...) so that the rounds also cover slightly staggered interleavings.
DELAYS = [0.0, 0.005, 0.015, 0.0, 0.03]
# rank of each type in cleanup order (lowest first)
CLEANUP_RANK = {"virtual-machine-interface": 0, "floating-ip-pool": 1, "virtual-network": 2,
                "network-policy": 3, "project": 9}

Obj = dict[str, Any]


# --- results -------------------------------------------------------------------------------------
@dataclass
class Violation:
    """One broken invariant, as seen by one or more readers."""

    kind: str
    detail: str
    key: str
    round: int = -1
    readers: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"[round {self.round}] {self.kind}: {self.detail} (seen by {', '.join(self.readers) or '-'})"


@dataclass
class ScenarioResult:
    """What the rounds of one scenario found."""

    scenario: str
    rounds: int = 0
    all_200: int = 0  # rounds in which every racing request answered 200
    outcomes: Counter[str] = field(default_factory=Counter)  # racing status codes per round
    violations: list[Violation] = field(default_factory=list)
    unavailable: int = 0  # racing requests answered 503 or refused (a replica restarting)
    unchecked: int = 0  # reader views that could not be read (the reader was unavailable)
    unconfirmed: int = 0  # candidate violations a fresh re-read did not show again
    setup_failures: int = 0  # rounds skipped: their setup failed SETUP_ATTEMPTS times
    leftovers: list[str] = field(default_factory=list)  # objects cleanup could not delete
    seconds: float = 0.0

    def to_json(self) -> Obj:
        """A JSON-serialisable form (every violation included)."""
        return {"scenario": self.scenario, "rounds": self.rounds, "all_200": self.all_200,
                "outcomes": dict(self.outcomes), "violations_by_kind": dict(self.by_kind()),
                "violations": [vars(v) for v in self.violations], "unavailable": self.unavailable,
                "unchecked": self.unchecked, "unconfirmed": self.unconfirmed,
                "setup_failures": self.setup_failures, "leftovers": self.leftovers, "seconds": round(self.seconds, 1)}

    def by_kind(self) -> Counter[str]:
        return Counter(v.kind for v in self.violations)

    def summary(self) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(self.by_kind().items())) or "none"
        return (f"{self.scenario}: rounds={self.rounds} all-200={self.all_200} violations: {kinds} "
                f"unavailable={self.unavailable} unchecked={self.unchecked} unconfirmed={self.unconfirmed} "
                f"setup-failures={self.setup_failures} leftovers={len(self.leftovers)}")


class SetupError(Exception):
    """A round's setup request failed (typically a replica restarting): the round is retried."""


class Unreadable(Exception):
    """A reader could not answer a read (503, refused) even after READ_ATTEMPTS."""


# --- HTTP ----------------------------------------------------------------------------------------
@dataclass
class Reply:
    """The answer to one request: ``status`` None when there was none (``error`` says why)."""

    status: int | None
    text: str = ""
    error: str = ""
    connect_failed: bool = False
    target: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    def json(self) -> Any:
        import json

        return json.loads(self.text)

    def brief(self) -> str:
        if self.status is None:
            return f"no answer from {self.target} ({self.error})"
        return f"{self.status} from {self.target}: {self.text[:300]}"


@dataclass(frozen=True)
class Call:
    """One racing request."""

    label: str
    base: str
    method: str
    path: str
    body: Any = None
    delay: float = 0.0  # seconds after the common start


def send(client: httpx.Client, base: str, method: str, path: str, body: Any = None) -> Reply:
    """One request; transport errors become a Reply without status."""
    try:
        r = client.request(method, base + path, json=body, timeout=TIMEOUT)
        return Reply(r.status_code, r.text, target=base)
    except httpx.ConnectError as e:
        return Reply(None, error=f"{type(e).__name__}: {e}", connect_failed=True, target=base)
    except httpx.HTTPError as e:
        return Reply(None, error=f"{type(e).__name__}: {e}", target=base)


def fire(calls: Sequence[Call]) -> list[Reply]:
    """Send ``calls`` at the same moment (plus each one's ``delay``): one thread and one warmed-up
    connection each, released by a barrier."""
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT)
    replies: list[Reply | None] = [None] * len(calls)

    def run(i: int, c: Call) -> None:
        with httpx.Client(timeout=TIMEOUT, limits=httpx.Limits(max_connections=1)) as client:
            send(client, c.base, "GET", "/hello")  # open the connection before the start
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
            if c.delay > 0:
                time.sleep(c.delay)
            replies[i] = send(client, c.base, c.method, c.path, c.body)

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(3 * TIMEOUT)
    return [r if r is not None else Reply(None, error="thread did not finish", target=c.base)
            for r, c in zip(replies, calls, strict=True)]


def named_objects(text: str) -> list[tuple[str, str]]:
    """(type, uuid) of every href in a message such as 409 'Delete when children still present: [...]'."""
    return [(m.group(1), m.group(2)) for m in HREF.finditer(text)]


def href_of(entry: Obj) -> tuple[str, str] | None:
    """(type, uuid) of a ref, back-ref or child entry."""
    m = HREF.search(str(entry.get("href") or ""))
    return (m.group(1), str(entry.get("uuid") or m.group(2))) if m else None


def under(t: str) -> str:
    return t.replace("-", "_")


# --- reading -------------------------------------------------------------------------------------
class View:
    """One reader's view during one check: each object read once (fresh per View)."""

    def __init__(self, label: str, base: str, client: httpx.Client) -> None:
        self.label, self.base, self.client = label, base, client
        self.cache: dict[str, Obj | None] = {}

    def _get(self, path: str, method: str = "GET", body: Any = None) -> Reply:
        last = Reply(None, error="not sent", target=self.base)
        for attempt in range(READ_ATTEMPTS):
            last = send(self.client, self.base, method, path, body)
            if last.status is not None and last.status != 503:
                return last
            if attempt + 1 < READ_ATTEMPTS:
                time.sleep(0.5)  # the reader is restarting: not a wait for convergence
        raise Unreadable(f"{self.label}: {last.brief()}")

    def get(self, rtype: str, u: str) -> Obj | None:
        """The object, or None when it reads 404."""
        key = f"{rtype}/{u}"
        if key not in self.cache:
            r = self._get(f"/{rtype}/{u}")
            if r.status == 404:
                self.cache[key] = None
            elif r.status == 200:
                self.cache[key] = r.json()[rtype]
            else:
                raise Unreadable(f"{self.label}: GET {key}: {r.brief()}")
        return self.cache[key]

    def lookup(self, rtype: str, fq_name: list[str]) -> str | None:
        """fqname-to-id: the uuid of an fq_name, None when unknown."""
        r = self._get("/fqname-to-id", "POST", {"type": rtype, "fq_name": fq_name})
        if r.status == 404:
            return None
        if r.status != 200:
            raise Unreadable(f"{self.label}: fqname-to-id {fq_name}: {r.brief()}")
        return str(r.json()["uuid"])


def refs_of(obj: Obj) -> Iterable[tuple[str, Obj]]:
    """(field, entry) of every forward ref."""
    for f, v in obj.items():
        if f.endswith("_refs") and not f.endswith("_back_refs") and isinstance(v, list):
            for e in v:
                yield f, e


def back_refs_of(obj: Obj) -> Iterable[tuple[str, Obj]]:
    for f, v in obj.items():
        if f.endswith("_back_refs") and isinstance(v, list):
            for e in v:
                yield f, e


def children_of(obj: Obj) -> Iterable[tuple[str, Obj]]:
    for f, v in obj.items():
        if f.endswith("_refs") or not isinstance(v, list):
            continue
        for e in v:
            if isinstance(e, dict) and "to" in e and "uuid" in e:
                yield f, e


def _uuids(entries: Iterable[tuple[str, Obj]]) -> set[str]:
    return {str(e.get("uuid")) for _f, e in entries}


def integrity(view: View, watched: dict[str, str], anchors: dict[str, str] | None = None) -> list[Violation]:
    """Orphans, dangling refs and one-sided links around the ``watched`` objects (uuid -> type).
    ``anchors`` (uuid -> type, e.g. the domain) are checked only for entries naming watched objects."""
    out: list[Violation] = []

    def v(kind: str, detail: str, key: str) -> None:
        out.append(Violation(kind, detail, key))

    for u, t in watched.items():
        obj = view.get(t, u)
        if obj is None:
            continue
        name = f"{t} {obj.get('fq_name')} ({u})"
        pu, pt = obj.get("parent_uuid"), obj.get("parent_type")
        if pu and pt:
            parent = view.get(str(pt).replace("_", "-"), str(pu))
            if parent is None:
                v("orphan", f"{name} exists, its parent {pt} {pu} reads 404", f"orphan:{u}")
            elif u not in _uuids(children_of(parent)):
                v("asymmetric", f"{name} exists with parent {pu}, which does not list it as a child",
                  f"unlisted-child:{u}")
        for f, e in children_of(obj):
            te = href_of(e)
            if te and view.get(*te) is None:
                v("orphan", f"{name}.{f} names {te[0]} {e.get('to')} ({te[1]}), which reads 404",
                  f"orphan-entry:{u}:{te[1]}")
        for f, e in refs_of(obj):
            te = href_of(e)
            if not te:
                continue
            target = view.get(*te)
            if target is None:
                v("dangling", f"{name}.{f} refers to {te[0]} {e.get('to')} ({te[1]}), which reads 404",
                  f"dangling:{u}:{te[1]}")
            elif u not in _uuids(e2 for e2 in back_refs_of(target) if e2[0] == f"{under(t)}_back_refs"):
                v("asymmetric", f"{name}.{f} refers to {te[1]}, whose {under(t)}_back_refs lacks it",
                  f"no-back-ref:{u}:{te[1]}")
        for f, e in back_refs_of(obj):
            te = href_of(e)
            if not te:
                continue
            source = view.get(*te)
            if source is None:
                v("dangling", f"{name}.{f} names {te[0]} {e.get('to')} ({te[1]}), which reads 404",
                  f"dangling-back:{u}:{te[1]}")
            elif u not in _uuids(refs_of(source)):
                v("asymmetric", f"{name}.{f} names {te[1]}, which has no ref to it", f"no-ref:{te[1]}:{u}")
    for u, t in (anchors or {}).items():
        obj = view.get(t, u)
        if obj is None:
            continue
        for f, e in [*children_of(obj), *back_refs_of(obj)]:
            eu = str(e.get("uuid"))
            if eu in watched and view.get(watched[eu], eu) is None:
                v("orphan" if not f.endswith("_back_refs") else "dangling",
                  f"{t} {obj.get('fq_name')}.{f} names {watched[eu]} {e.get('to')} ({eu}), which reads 404",
                  f"anchor-entry:{u}:{eu}")
    return out


def check_409(view: View, reply: Reply, deleted: set[str], refused: dict[str, str] | None = None,
              allowed: set[str] | None = None) -> list[Violation]:
    """A 409 'still present'/'still referred' must name only objects that exist (or that a racing
    request deleted: ``deleted``), only ``allowed`` ones when given, and no referrer whose racing
    ref write was refused (``refused``: uuid -> that reply's status; checked only for 'still referred')."""
    if reply.status != 409 or ("still present" not in reply.text and "still referred" not in reply.text):
        return []
    out: list[Violation] = []
    for t, u in named_objects(reply.text):
        if allowed is not None and u not in allowed:
            out.append(Violation("bad-409", f"409 from {reply.target} names {t} {u}, which is not one of the "
                                            f"objects it could name: {reply.text[:300]}", f"409-foreign:{u}"))
            continue
        if u in deleted:
            continue
        obj = view.get(t, u)
        if obj is None:
            out.append(Violation("bad-409", f"409 from {reply.target} names {t} {u}, which reads 404 "
                                            f"(no racing request deleted it): {reply.text[:300]}",
                                 f"409-missing:{u}"))
        elif refused and u in refused and "still referred" in reply.text:
            out.append(Violation("bad-409", f"409 from {reply.target} names {t} {u} as a referrer; that object's "
                                            f"racing ref write answered {refused[u]} (refused), so it never "
                                            f"referred: {reply.text[:300]}", f"409-phantom:{u}"))
    return out


# --- a round -------------------------------------------------------------------------------------
class Round:
    """One round's objects: created through the VIP, all deleted by ``cleanup``."""

    def __init__(self, harness: Harness, scenario: str, index: int) -> None:
        self.h, self.index = harness, index
        self.tag = f"race-{scenario[:16]}-{uuidlib.uuid4().hex[:6]}-{index}"
        self.objects: dict[str, str] = {}  # uuid -> type, everything this round made or may have made
        self.names: list[tuple[str, list[str]]] = []  # (type, fq_name) of racing creates
        self.domain: str | None = None
        self.left: dict[str, str] = {}  # what cleanup could not delete (uuid -> type)

    def pair(self) -> tuple[str, str]:
        """The two targets of a 2-party race in this round (rotating over replicas and the VIP)."""
        a, b = PAIRS[self.index % len(PAIRS)]
        return self.h.bases[a], self.h.bases[b]

    def stagger(self, calls: list[Call]) -> list[Call]:
        """A 2-party race with this round's delay on one side."""
        d = DELAYS[self.index % len(DELAYS)]
        side = (self.index // len(DELAYS)) % 2
        return [replace(c, delay=d) if i == side else c for i, c in enumerate(calls)]

    def target(self, i: int) -> str:
        """The target of the i-th racer of an n-party race."""
        return self.h.bases[(i + self.index) % len(self.h.bases)]

    def create(self, rtype: str, fq_name: list[str], parent_type: str | None, **props: Any) -> str:
        body: Obj = {"fq_name": fq_name, **props}
        if parent_type:
            body["parent_type"] = parent_type
        r = send(self.h.client, self.h.vip, "POST", f"/{rtype}s", {rtype: body})
        if r.status != 200:
            raise SetupError(f"create {rtype} {fq_name}: {r.brief()}")
        obj = r.json()[rtype]
        self.objects[obj["uuid"]] = rtype
        if rtype == "project":
            self.domain = obj.get("parent_uuid")
        return str(obj["uuid"])

    def project(self, suffix: str = "") -> tuple[list[str], str]:
        fq = [DOMAIN, self.tag + suffix]
        return fq, self.create("project", fq, "domain")

    def create_many(self, specs: Sequence[tuple[str, list[str], str | None, Obj]]) -> list[str]:
        """Create several objects concurrently (setup only)."""
        with ThreadPoolExecutor(max_workers=min(8, len(specs))) as ex:
            futs = [ex.submit(self.create, t, fq, pt, **props) for t, fq, pt, props in specs]
            errors = [f.exception() for f in futs if f.exception() is not None]
            if errors:
                raise SetupError("; ".join(str(e) for e in errors))
            return [f.result() for f in futs]

    def delete(self, rtype: str, u: str) -> None:
        """Delete in setup (raises SetupError unless 200)."""
        r = send(self.h.client, self.h.vip, "DELETE", f"/{rtype}/{u}")
        if r.status != 200:
            raise SetupError(f"delete {rtype} {u}: {r.brief()}")

    def anchors(self) -> dict[str, str]:
        return {self.domain: "domain"} if self.domain else {}

    def cleanup(self) -> list[str]:
        """Delete everything the round made; returns what could not be deleted."""
        h = self.h
        view = View("cleanup", h.vip, h.client)
        for t, fq in self.names:  # racing creates whose answer was not 200 may still have happened
            try:
                u = view.lookup(t, fq)
            except Unreadable:
                u = None
            if u:
                self.objects.setdefault(u, t)
        for u, t in list(self.objects.items()):  # and anything else that ended up under our objects
            try:
                obj = view.get(t, u)
            except Unreadable:
                continue
            for _f, e in children_of(obj or {}):
                te = href_of(e)
                if te:
                    self.objects.setdefault(te[1], te[0])
        pending = dict(self.objects)
        last: dict[str, str] = {}
        for attempt in range(CLEANUP_PASSES):
            if not pending:
                break
            if attempt:
                time.sleep(0.3 * attempt)
            for rank in sorted({CLEANUP_RANK.get(t, 5) for t in pending.values()}):
                group = [(u, t) for u, t in pending.items() if CLEANUP_RANK.get(t, 5) == rank]
                with ThreadPoolExecutor(max_workers=min(8, len(group))) as ex:
                    replies = list(ex.map(lambda ut: send(h.client, h.vip, "DELETE", f"/{ut[1]}/{ut[0]}"), group))
                for (u, t), r in zip(group, replies, strict=True):
                    if r.status in (200, 404):
                        pending.pop(u, None)
                        continue
                    last[u] = f"{t} {u}: {r.brief()}"
                    if r.status == 409 and "still referred" in r.text:
                        for _st, su in named_objects(r.text):  # e.g. a dangling back-ref: relax it
                            send(h.client, h.vip, "POST", "/ref-relax-for-delete", {"uuid": su, "ref-uuid": u})
        self.left = dict(pending)
        return [last.get(u, f"{t} {u}") for u, t in pending.items()]


# --- scenarios -----------------------------------------------------------------------------------
@dataclass
class Scenario:
    """A race: ``setup`` makes the round's objects (returns its state), ``calls`` the racing
    requests, ``followup`` (optional) sequential requests after the race, ``verify`` the invariants
    as one reader sees them."""

    name: str
    setup: Callable[[Round], Obj]
    calls: Callable[[Round, Obj], list[Call]]
    verify: Callable[[Round, Obj, list[Reply], View], list[Violation]]
    followup: Callable[[Round, Obj, list[Reply]], None] | None = None
    description: str = ""


class Harness:
    """The cluster's addresses and a client for setup, cleanup and reads."""

    def __init__(self, vip: str, replicas: Sequence[str], sequential: bool = False) -> None:
        self.sequential = sequential  # self-check of the harness: the same requests one after another
        self.vip = vip.rstrip("/")
        self.replicas = [r.rstrip("/") for r in replicas]
        self.bases = [self.vip, *self.replicas]
        self.client = httpx.Client(timeout=TIMEOUT, limits=httpx.Limits(max_connections=16))

    def readers(self) -> list[tuple[str, str]]:
        return [("vip", self.vip)] + [(r.split("//", 1)[-1], r) for r in self.replicas]

    def close(self) -> None:
        self.client.close()

    def check(self, verify: Callable[[View], list[Violation]]) -> tuple[dict[str, Violation], int, int]:
        """Run ``verify`` on every reader (in parallel), each candidate confirmed by a fresh re-read.
        Returns (violations by key, unchecked readers, unconfirmed candidates)."""

        def one(label: str, base: str) -> tuple[list[Violation], bool, int]:
            with httpx.Client(timeout=TIMEOUT) as client:
                try:
                    first = verify(View(label, base, client))
                    if not first:
                        return [], True, 0
                    again = {x.key: x for x in verify(View(label, base, client))}
                except Unreadable:
                    return [], False, 0
                confirmed = [again[x.key] for x in first if x.key in again]
                return confirmed, True, len(first) - len(confirmed)

        with ThreadPoolExecutor(max_workers=len(self.bases)) as ex:
            results = list(ex.map(lambda lb: (lb[0], one(*lb)), self.readers()))
        found: dict[str, Violation] = {}
        unchecked = unconfirmed = 0
        for label, (vs, checked, unconf) in results:
            unchecked += not checked
            unconfirmed += unconf
            for x in vs:
                found.setdefault(x.key, x).readers.append(label)
        return found, unchecked, unconfirmed

    def run(self, sc: Scenario, rounds: int, log: Callable[[str], None] | None = None) -> ScenarioResult:
        """``rounds`` rounds of ``sc``."""
        res = ScenarioResult(sc.name)
        t0 = time.monotonic()
        left: dict[str, str] = {}
        for i in range(rounds):
            state: Obj | None = None
            rd = Round(self, sc.name, i)
            for attempt in range(SETUP_ATTEMPTS):
                rd = Round(self, sc.name, i)
                try:
                    state = sc.setup(rd)
                    break
                except SetupError as e:
                    if log:
                        log(f"{sc.name} round {i}: setup failed (attempt {attempt + 1}): {e}")
                    rd.cleanup()
                    left.update(rd.left)
                    if attempt + 1 < SETUP_ATTEMPTS:
                        time.sleep(1.0 * (attempt + 1))
            if state is None:
                res.setup_failures += 1
                continue
            try:
                self._round(sc, rd, state, res, log)
            finally:
                rd.cleanup()
                left.update(rd.left)
        if left:  # a last try for what a round could not delete (e.g. during a ZooKeeper outage)
            sweep = Round(self, sc.name, -1)
            sweep.objects = left
            res.leftovers = sweep.cleanup()
        res.seconds = time.monotonic() - t0
        return res

    def _round(self, sc: Scenario, rd: Round, state: Obj, res: ScenarioResult,
               log: Callable[[str], None] | None) -> None:
        calls = sc.calls(rd, state)
        if self.sequential:  # in call order in even rounds, in reverse order in odd ones
            order = list(range(len(calls)))[::-1 if rd.index % 2 else 1]
            got = {i: send(self.client, calls[i].base, calls[i].method, calls[i].path, calls[i].body) for i in order}
            replies = [got[i] for i in range(len(calls))]
        else:
            replies = fire(calls)
        res.rounds += 1
        res.outcomes[" ".join(f"{c.label}={r.status or 'no-answer'}" for c, r in
                              sorted(zip(calls, replies, strict=True), key=lambda cr: cr[0].label))
                      if len(calls) <= 4 else
                      " ".join(f"{n}x{s}" for s, n in sorted(Counter(str(r.status or "no-answer")
                                                                     for r in replies).items()))] += 1
        res.all_200 += all(r.ok for r in replies)
        for c, r in zip(calls, replies, strict=True):
            if r.status == 503 or r.connect_failed:
                res.unavailable += 1
            elif r.status is None:
                res.violations.append(Violation("unanswered", f"{c.label} {c.method} {c.path}: {r.brief()}",
                                                f"unanswered:{c.label}", rd.index, ["client"]))
            elif r.status >= 500:
                res.violations.append(Violation("5xx", f"{c.label} {c.method} {c.path}: {r.brief()}",
                                                f"5xx:{c.label}", rd.index, ["client"]))
        if sc.followup:
            sc.followup(rd, state, replies)
        found, unchecked, unconfirmed = self.check(lambda view: sc.verify(rd, state, replies, view))
        res.unchecked += unchecked
        res.unconfirmed += unconfirmed
        for x in found.values():
            x.round = rd.index
            res.violations.append(x)
            if log:
                log(f"{sc.name}: {x}")


# helpers for the scenarios
def _fq(rd: Round, st: Obj, name: str) -> list[str]:
    return [*st["pfq"], name]


def _created(view: View, rd: Round, reply: Reply, rtype: str, fq: list[str]) -> str | None:
    """The uuid of a racing create: from its 200 answer, else looked up by name (it may have happened)."""
    u = str(reply.json()[rtype]["uuid"]) if reply.ok else view.lookup(rtype, fq) or ""
    if u:
        rd.objects.setdefault(u, rtype)
    return u or None


def _refused_but_done(reply: Reply, done: bool, what: str, state: str) -> list[Violation]:
    """A write refused with a 4xx must have had no effect."""
    if reply.status is not None and 400 <= reply.status < 500 and done:
        return [Violation("inconsistent", f"{what} answered {reply.brief()}, yet the object {state}",
                          f"refused-done:{what}")]
    return []


# 1. lost updates: n concurrent writes of different elements onto one object --------------------------
N_MANY = 10


def _setup_vn(rd: Round, policies: int = 0) -> Obj:
    pfq, pu = rd.project()
    specs: list[tuple[str, list[str], str | None, Obj]] = [("virtual-network", [*pfq, "vn"], "project", {})]
    specs += [("network-policy", [*pfq, f"np{i}"], "project", {}) for i in range(policies)]
    made = rd.create_many(specs)
    return {"pfq": pfq, "project": pu, "vn": made[0], "nps": made[1:]}


def _watched(st: Obj) -> dict[str, str]:
    w = {st["project"]: "project", st["vn"]: "virtual-network"}
    w.update({u: "network-policy" for u in st.get("nps", [])})
    return w


def _ref_many_calls(rd: Round, st: Obj) -> list[Call]:
    return [Call(f"add{i}", rd.target(i), "POST", "/ref-update", {
        "type": "virtual-network", "uuid": st["vn"], "ref-type": "network-policy", "ref-uuid": npu,
        "operation": "ADD", "attr": {"sequence": {"major": i, "minor": 0}}}) for i, npu in enumerate(st["nps"])]


def _ref_many_verify(rd: Round, st: Obj, replies: list[Reply], view: View) -> list[Violation]:
    out = integrity(view, _watched(st), rd.anchors())
    vn = view.get("virtual-network", st["vn"])
    if vn is None:
        return [*out, Violation("lost", f"virtual-network {st['vn']} reads 404", f"vn-gone:{st['vn']}")]
    have = [str(r.get("uuid")) for r in vn.get("network_policy_refs") or []]
    acked = [(i, u) for i, (u, r) in enumerate(zip(st["nps"], replies, strict=True)) if r.ok]
    for i, npu in acked:
        if npu not in have:
            out.append(Violation("lost", f"ref-update ADD #{i} (200 from {replies[i].target}) of network-policy "
                                         f"{npu}: missing from the VN's network_policy_refs "
                                         f"({len(set(have) & {u for _i, u in acked})} of {len(acked)} acked "
                                         f"refs kept)",
                                 f"lost-ref:{npu}"))
        np = view.get("network-policy", npu)
        if np is not None and st["vn"] not in {str(b.get("uuid")) for b in np.get("virtual_network_back_refs") or []}:
            out.append(Violation("lost", f"ref-update ADD #{i} (200 from {replies[i].target}): network-policy "
                                         f"{npu}'s virtual_network_back_refs lacks the VN", f"lost-back-ref:{npu}"))
    for u, n in Counter(have).items():
        if n > 1:
            out.append(Violation("duplicate", f"network_policy_refs names {u} {n} times", f"dup-ref:{u}"))
    return out


def _prop_many_calls(field_: str, value: Callable[[Round, int], Obj], op: str) -> Callable[[Round, Obj], list[Call]]:
    def calls(rd: Round, st: Obj) -> list[Call]:
        return [Call(f"{op}{i}", rd.target(i), "POST", "/prop-collection-update", {
            "uuid": st["vn"], "updates": [{"field": field_, "operation": op, "value": value(rd, i)}]})
            for i in range(N_MANY)]
    return calls


def _kv(rd: Round, i: int) -> Obj:
    return {"key": f"k{i}", "value": f"v{i}-{rd.tag}"}


def _fat_flow(rd: Round, i: int) -> Obj:
    return {"protocol": "tcp", "port": 1000 + i}


def _prop_many_verify(field_: str, wrapper: str, value: Callable[[Round, int], Obj]
                      ) -> Callable[[Round, Obj, list[Reply], View], list[Violation]]:
    def verify(rd: Round, st: Obj, replies: list[Reply], view: View) -> list[Violation]:
        out = integrity(view, _watched(st), rd.anchors())
        vn = view.get("virtual-network", st["vn"])
        if vn is None:
            return [*out, Violation("lost", f"virtual-network {st['vn']} reads 404", f"vn-gone:{st['vn']}")]
        elems = list((vn.get(field_) or {}).get(wrapper) or [])
        acked = [i for i, r in enumerate(replies) if r.ok]
        kept = sum(1 for i in acked if value(rd, i) in elems)
        for i in acked:
            want = value(rd, i)
            n = elems.count(want)
            if n == 0:
                out.append(Violation("lost", f"prop-collection-update #{i} (200 from {replies[i].target}) of "
                                             f"{field_} {want}: missing ({kept} of {len(acked)} acked elements "
                                             f"kept)", f"lost-elem:{i}"))
            elif n > 1:
                out.append(Violation("duplicate", f"{field_} holds {want} {n} times (sent once)", f"dup-elem:{i}"))
        return out
    return verify


# 2. parent delete vs child create -------------------------------------------------------------------
def _parent_child(child_type: str, parent: str) -> tuple[Callable[[Round], Obj],
                                                         Callable[[Round, Obj], list[Call]],
                                                         Callable[[Round, Obj, list[Reply], View], list[Violation]]]:
    """Delete of ``parent`` ('project' or 'virtual-network') racing the create of a ``child_type`` under it."""

    def setup(rd: Round) -> Obj:
        pfq, pu = rd.project()
        st: Obj = {"pfq": pfq, "project": pu, "extra": {}}
        if child_type == "virtual-machine-interface":  # its VN lives in a second project of the round
            sfq, su = rd.project("-s")
            st["extra"][su] = "project"
            st["svn_fq"] = [*sfq, "svn"]
            st["extra"][rd.create("virtual-network", st["svn_fq"], "project")] = "virtual-network"
        if parent == "virtual-network":
            st["parent_fq"] = [*pfq, "vn"]
            st["parent"] = rd.create("virtual-network", st["parent_fq"], "project")
        else:
            st["parent_fq"], st["parent"] = pfq, pu
        st["child_fq"] = [*st["parent_fq"], f"{child_type[:3]}-c"]
        rd.names.append((child_type, st["child_fq"]))
        return st

    def calls(rd: Round, st: Obj) -> list[Call]:
        a, b = rd.pair()
        body: Obj = {"fq_name": st["child_fq"], "parent_type": parent}
        if child_type == "virtual-machine-interface":
            body["virtual_network_refs"] = [{"to": st["svn_fq"]}]
        return rd.stagger([Call("delete", a, "DELETE", f"/{parent}/{st['parent']}"),
                           Call("create", b, "POST", f"/{child_type}s", {child_type: body})])

    def verify(rd: Round, st: Obj, replies: list[Reply], view: View) -> list[Violation]:
        dele, crea = replies
        cu = _created(view, rd, crea, child_type, st["child_fq"])
        watched = {st["project"]: "project", st["parent"]: parent, **st["extra"]}
        if cu:
            watched[cu] = child_type
        out = integrity(view, watched, rd.anchors())
        p = view.get(parent, st["parent"])
        c = view.get(child_type, cu) if cu else None
        if dele.ok and p is not None:
            out.append(Violation("lost", f"DELETE {parent} answered 200 ({dele.target}) but it still reads",
                                 f"undeleted:{st['parent']}"))
        if crea.ok and c is None and not dele.ok:
            out.append(Violation("lost", f"create of {child_type} {cu} answered 200 ({crea.target}), the {parent} "
                                         f"delete {dele.status}, yet the child reads 404", f"lost-create:{cu}"))
        out += _refused_but_done(dele, p is None, f"DELETE {parent} {st['parent']}", "reads 404")
        out += _refused_but_done(crea, c is not None, f"create of {child_type} {cu}", "exists")
        # a child that exists under a parent that reads 404 is reported by integrity() (orphan)
        out += check_409(view, dele, set())
        return out

    return setup, calls, verify


# 3. ref add vs target delete ------------------------------------------------------------------------
def _ref_vs_delete(how: str) -> tuple[Callable[[Round], Obj], Callable[[Round, Obj], list[Call]],
                                      Callable[[Round, Obj, list[Reply], View], list[Violation]]]:
    """network-policy delete racing a ref to it from a VN: ``how`` = 'ref-update', 'put' or 'create'."""

    def setup(rd: Round) -> Obj:
        pfq, pu = rd.project()
        st: Obj = {"pfq": pfq, "project": pu, "np_fq": [*pfq, "np"]}
        specs: list[tuple[str, list[str], str | None, Obj]] = [("network-policy", st["np_fq"], "project", {})]
        if how != "create":
            specs.append(("virtual-network", [*pfq, "vn"], "project", {}))
        made = rd.create_many(specs)
        st["np"] = made[0]
        st["vn"] = made[1] if how != "create" else None
        st["vn_fq"] = [*pfq, "vn" if how != "create" else "vn-new"]
        if how == "create":
            rd.names.append(("virtual-network", st["vn_fq"]))
        return st

    def calls(rd: Round, st: Obj) -> list[Call]:
        a, b = rd.pair()
        ref = {"to": st["np_fq"], "uuid": st["np"], "attr": {"sequence": {"major": 0, "minor": 0}}}
        if how == "ref-update":
            c = Call("ref", b, "POST", "/ref-update", {
                "type": "virtual-network", "uuid": st["vn"], "ref-type": "network-policy", "ref-uuid": st["np"],
                "operation": "ADD", "attr": ref["attr"]})
        elif how == "put":
            c = Call("ref", b, "PUT", f"/virtual-network/{st['vn']}",
                     {"virtual-network": {"network_policy_refs": [ref]}})
        else:
            c = Call("ref", b, "POST", "/virtual-networks", {"virtual-network": {
                "fq_name": st["vn_fq"], "parent_type": "project", "network_policy_refs": [ref]}})
        return rd.stagger([Call("delete", a, "DELETE", f"/network-policy/{st['np']}"), c])

    def verify(rd: Round, st: Obj, replies: list[Reply], view: View) -> list[Violation]:
        dele, ref = replies
        vu = st["vn"] or _created(view, rd, ref, "virtual-network", st["vn_fq"])
        watched = {st["project"]: "project", st["np"]: "network-policy"}
        if vu:
            watched[vu] = "virtual-network"
        out = integrity(view, watched, rd.anchors())
        np = view.get("network-policy", st["np"])
        vn = view.get("virtual-network", vu) if vu else None
        has_ref = vn is not None and st["np"] in {str(r.get("uuid")) for r in vn.get("network_policy_refs") or []}
        if dele.ok and np is not None:
            out.append(Violation("lost", f"DELETE network-policy answered 200 ({dele.target}) but it still reads",
                                 f"undeleted:{st['np']}"))
        if how != "create" and vn is None:
            out.append(Violation("lost", f"virtual-network {vu} reads 404 (nobody deleted it)", f"vn-gone:{vu}"))
        elif ref.ok and not has_ref:
            if how == "create" and vn is None and not dele.ok:
                out.append(Violation("lost", f"create of the VN with the ref answered 200 ({ref.target}), the "
                                             f"delete {dele.status}, yet the VN reads 404", f"lost-create:{vu}"))
            elif vn is not None and not (dele.ok and np is None and how != "create"):
                out.append(Violation("lost", f"{how} of the ref answered 200 ({ref.target}), the delete "
                                             f"{dele.status}, yet the VN has no ref to the policy "
                                             f"(policy {'reads 404' if np is None else 'exists'})",
                                     f"lost-ref:{vu}"))
        out += _refused_but_done(dele, np is None, f"DELETE network-policy {st['np']}", "reads 404")
        if how == "create":
            out += _refused_but_done(ref, vn is not None, f"create of virtual-network {vu}", "exists")
        refused = {vu: str(ref.status)} if vu and ref.status is not None and 400 <= ref.status < 500 else {}
        out += check_409(view, dele, set(), refused=refused)
        return out

    return setup, calls, verify


# 4. parent delete vs the deletes of its children ----------------------------------------------------
def _children_setup(rd: Round) -> Obj:
    pfq, pu = rd.project()
    specs: list[tuple[str, list[str], str | None, Obj]] = [
        ("virtual-network", [*pfq, "vn0"], "project", {}), ("virtual-network", [*pfq, "vn1"], "project", {}),
        ("network-policy", [*pfq, "np0"], "project", {})]
    made = rd.create_many(specs)
    gone = rd.create("network-policy", [*pfq, "np-gone"], "project")  # deleted before the race
    rd.delete("network-policy", gone)
    return {"pfq": pfq, "project": pu, "gone": gone,
            "children": list(zip(made, ["virtual-network", "virtual-network", "network-policy"], strict=True))}


def _children_calls(rd: Round, st: Obj) -> list[Call]:
    return [Call("p-delete", rd.target(0), "DELETE", f"/project/{st['project']}")] + [
        Call(f"c{i}-delete", rd.target(i + 1), "DELETE", f"/{t}/{u}") for i, (u, t) in enumerate(st["children"])]


def _children_followup(rd: Round, st: Obj, replies: list[Reply]) -> None:
    """After the race: retry the project delete (sequentially, through the VIP) if it is still there."""
    st["retry"] = None
    if replies[0].ok:
        return
    for attempt in range(SETUP_ATTEMPTS):
        r = send(rd.h.client, rd.h.vip, "DELETE", f"/project/{st['project']}")
        if r.status != 503 and not r.connect_failed:
            st["retry"] = r
            return
        time.sleep(0.5 * (attempt + 1))


def _children_verify(rd: Round, st: Obj, replies: list[Reply], view: View) -> list[Violation]:
    watched = {st["project"]: "project", st["gone"]: "network-policy", **dict(st["children"])}
    out = integrity(view, watched, rd.anchors())
    kids = {u for u, _t in st["children"]}
    deleted = {u for (u, _t), r in zip(st["children"], replies[1:], strict=True) if r.ok}
    for (u, t), r in zip(st["children"], replies[1:], strict=True):
        if r.ok and view.get(t, u) is not None:
            out.append(Violation("lost", f"DELETE {t} {u} answered 200 ({r.target}) but it still reads",
                                 f"undeleted:{u}"))
        out += _refused_but_done(r, view.get(t, u) is None, f"DELETE {t} {u}", "reads 404")
    p = view.get("project", st["project"])
    # the racing 409 may name children whose racing deletes were concurrent, never others
    out += check_409(view, replies[0], deleted, allowed=kids)
    retry: Reply | None = st.get("retry")
    final_ok = replies[0].ok or (retry is not None and retry.ok)
    if final_ok and p is not None:
        out.append(Violation("lost", "the project delete answered 200 but the project still reads",
                             f"undeleted:{st['project']}"))
    if retry is not None:
        # sequential, after every racing delete answered: it may name only children that exist
        # (a 409 naming children that exist although their deletes answered 200 shows as 'lost' above)
        out += [Violation(x.kind, "retry: " + x.detail, "retry-" + x.key) for x in check_409(view, retry, set())]
        if retry.status == 409 and not named_objects(retry.text):
            out.append(Violation("bad-409", f"retry of the project delete refused naming nothing: {retry.brief()}",
                                 "retry-unnamed"))
        elif retry.status == 404 and p is not None:
            out.append(Violation("inconsistent", f"retry of the project delete answered 404 but the project reads: "
                                                 f"{retry.brief()}", "retry-404"))
        elif retry.status is not None and retry.status >= 500 and retry.status != 503:
            out.append(Violation("5xx", f"retry of the project delete: {retry.brief()}", "retry-5xx"))
    return out


def _mk(name: str, parts: tuple[Callable[..., Any], ...], description: str) -> Scenario:
    setup, calls, verify = parts
    return Scenario(name, setup, calls, verify, description=description)


SCENARIOS: list[Scenario] = [
    Scenario("ref-add-x10", lambda rd: _setup_vn(rd, N_MANY), _ref_many_calls, _ref_many_verify,
             description="10 concurrent ref-update ADDs of different network-policies onto one VN"),
    Scenario("prop-map-set-x10", _setup_vn, _prop_many_calls("annotations", _kv, "set"),
             _prop_many_verify("annotations", "key_value_pair", _kv),
             description="10 concurrent prop-collection-update sets of different annotations keys"),
    Scenario("prop-list-add-x10", _setup_vn, _prop_many_calls("virtual_network_fat_flow_protocols", _fat_flow, "add"),
             _prop_many_verify("virtual_network_fat_flow_protocols", "fat_flow_protocol", _fat_flow),
             description="10 concurrent prop-collection-update adds to virtual_network_fat_flow_protocols"),
    _mk("project-del-vs-vn-create", _parent_child("virtual-network", "project"),
        "project delete racing a virtual-network create under it"),
    _mk("project-del-vs-vmi-create", _parent_child("virtual-machine-interface", "project"),
        "project delete racing a virtual-machine-interface create under it (ref to a VN elsewhere)"),
    _mk("vn-del-vs-fip-pool-create", _parent_child("floating-ip-pool", "virtual-network"),
        "virtual-network delete racing a floating-ip-pool create under it"),
    _mk("np-del-vs-ref-update", _ref_vs_delete("ref-update"),
        "network-policy delete racing a ref-update ADD of a ref to it"),
    _mk("np-del-vs-put-refs", _ref_vs_delete("put"),
        "network-policy delete racing a PUT of the VN with network_policy_refs naming it"),
    _mk("np-del-vs-create-with-ref", _ref_vs_delete("create"),
        "network-policy delete racing the create of a VN that refers to it"),
    Scenario("project-del-vs-children-del", _children_setup, _children_calls, _children_verify,
             followup=_children_followup,
             description="project delete racing the deletes of its 3 children; then a retry of the project delete"),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def run_scenario(name: str, vip: str, replicas: Sequence[str], rounds: int = 5,
                 log: Callable[[str], None] | None = None, sequential: bool = False) -> ScenarioResult:
    """Run one scenario (by name) against the VIP and the replicas (base URLs like http://10.10.0.21:8082);
    ``sequential`` sends the racing requests one after another instead (a self-check of the harness)."""
    h = Harness(vip, replicas, sequential)
    try:
        return h.run(BY_NAME[name], rounds, log)
    finally:
        h.close()


def _runner(name: str) -> Callable[..., ScenarioResult]:
    def run(vip: str, replicas: Sequence[str], rounds: int = 5,
            log: Callable[[str], None] | None = None) -> ScenarioResult:
        return run_scenario(name, vip, replicas, rounds, log)
    run.__name__ = name.replace("-", "_")
    run.__doc__ = BY_NAME[name].description
    return run


ref_add_x10 = _runner("ref-add-x10")
prop_map_set_x10 = _runner("prop-map-set-x10")
prop_list_add_x10 = _runner("prop-list-add-x10")
project_delete_vs_vn_create = _runner("project-del-vs-vn-create")
project_delete_vs_vmi_create = _runner("project-del-vs-vmi-create")
vn_delete_vs_fip_pool_create = _runner("vn-del-vs-fip-pool-create")
np_delete_vs_ref_update = _runner("np-del-vs-ref-update")
np_delete_vs_put_refs = _runner("np-del-vs-put-refs")
np_delete_vs_create_with_ref = _runner("np-del-vs-create-with-ref")
project_delete_vs_children_delete = _runner("project-del-vs-children-del")
