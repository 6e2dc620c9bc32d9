"""A linearizability checker for a single register (Wing & Gong's search with Lowe's memoisation,
as porcupine and Knossos do), for the history of a drill's register workload.

A history is a list of :class:`Op`: a write of a value or a read that returned a value, each
with its invocation and completion times. An op that failed definitely (a 4xx, a 503 that the
server guarantees did nothing) is left out by the caller; an op whose outcome is unknown (no
answer, a timeout, a 504) has ``done=None``: it may take effect at any moment after its
invocation, or never. The history is linearizable when some total order of the ops (and a subset
of the unknown ones) respects real time - an op that completed before another was invoked comes
first - and every read returns the latest write before it (``initial`` before any).

On a violation, :func:`check` returns the smallest window of the history that cannot be ordered:
the op the search could never place and every op overlapping it in time.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

INF = float("inf")


@dataclass(frozen=True)
class Op:
    """One operation on the register: ``kind`` "w" (write ``value``) or "r" (read, returned ``value``)."""

    kind: str
    value: Hashable
    invoked: float
    done: float | None  # None: outcome unknown (may apply at any time after invocation, or never)
    client: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("r", "w"):
            raise ValueError(f"op kind must be 'r' or 'w', got {self.kind!r}")
        if self.done is not None and self.done < self.invoked:
            raise ValueError("an op cannot complete before it is invoked")

    def brief(self) -> str:
        end = "?" if self.done is None else f"{self.done:.3f}"
        verb = "write" if self.kind == "w" else "read"
        return f"{self.client or '-'} {verb} {self.value!r} [{self.invoked:.3f}, {end}]"


@dataclass
class Verdict:
    ok: bool
    ops: int  # the ops searched (unknown-outcome writes nobody read are left out)
    window: list[Op]  # on a violation: the op that cannot be placed and the ops overlapping it

    def __str__(self) -> str:
        if self.ok:
            return f"linearizable ({self.ops} ops)"
        return "NOT linearizable; the smallest window that cannot be ordered:\n" + "\n".join(
            "  " + o.brief() for o in self.window)


class _Entry:
    """A call or return event in the doubly linked list the search walks."""

    __slots__ = ("index", "is_call", "match", "next", "op", "prev", "time")

    def __init__(self, op: Op | None, index: int, is_call: bool, time: float) -> None:
        self.op, self.index, self.is_call, self.time = op, index, is_call, time
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(call: _Entry) -> None:
    """Remove a call and its return from the list."""
    for e in (call, call.match):
        assert e is not None and e.prev is not None
        e.prev.next = e.next
        if e.next is not None:
            e.next.prev = e.prev


def _unlift(call: _Entry) -> None:
    for e in (call.match, call):  # reverse order of _lift
        assert e is not None and e.prev is not None
        e.prev.next = e
        if e.next is not None:
            e.next.prev = e


def check(history: Sequence[Op], initial: Hashable = None, *, max_steps: int = 5_000_000) -> Verdict:
    """Whether ``history`` is linearizable for a register starting at ``initial``."""
    # A write whose outcome is unknown and whose value no read returned can always be left out (it
    # "never applied"): including it could only contradict later reads. Values are compared as
    # given, so this needs writes of distinct values (the drill's are). It keeps the search small
    # when a replica cut off from the rest answers every write with an error.
    seen = {op.value for op in history if op.kind == "r"}
    ops = [op for op in history if not (op.kind == "w" and op.done is None and op.value not in seen)]
    n = len(ops)
    if n == 0:
        return Verdict(True, 0, [])
    events: list[_Entry] = []
    for i, op in enumerate(ops):
        call = _Entry(op, i, True, op.invoked)
        ret = _Entry(op, i, False, INF if op.done is None else op.done)
        call.match, ret.match = ret, call
        events += [call, ret]
    # calls before returns at equal times: touching intervals count as concurrent
    events.sort(key=lambda e: (e.time, 0 if e.is_call else 1))
    head = _Entry(None, -1, True, -INF)
    prev = head
    for e in events:
        prev.next, e.prev = e, prev
        prev = e
    unknown = {i for i, op in enumerate(ops) if op.done is None}
    state: Hashable = initial
    linearized = 0  # bit i: op i is placed
    cache: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Entry, Hashable]] = []
    entry = head.next
    deepest: Op | None = None  # the op that could not be placed when the search got furthest
    depth = -1
    steps = 0
    while entry is not None:
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"linearizability search gave up after {max_steps} steps ({n} ops)")
        if entry.is_call:
            cur = entry.op
            assert cur is not None
            ok, new_state = (True, cur.value) if cur.kind == "w" else (cur.value == state, state)
            key = (linearized | (1 << entry.index), new_state)
            if ok and key not in cache:
                cache.add(key)
                stack.append((entry, state))
                state, linearized = new_state, key[0]
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
            continue
        # a return: its op must be placed before anything after it
        if entry.index in unknown:
            # only unknown-outcome ops are left unplaced (their returns are at infinity): done
            return Verdict(True, n, [])
        if len(stack) > depth:
            depth, deepest = len(stack), entry.op
        if not stack:
            return Verdict(False, n, _window(ops, deepest))
        call, state = stack.pop()
        linearized &= ~(1 << call.index)
        _unlift(call)
        entry = call.next
    return Verdict(True, n, [])


def _window(ops: list[Op], culprit: Op | None) -> list[Op]:
    """The op the search could not place and every op overlapping it, by invocation time."""
    if culprit is None:
        return []
    end = INF if culprit.done is None else culprit.done
    near = [o for o in ops if o.invoked <= end and (INF if o.done is None else o.done) >= culprit.invoked]
    # and the last write completed before it (what a read should at least have seen)
    before = [o for o in ops if o.kind == "w" and o.done is not None and o.done < culprit.invoked]
    if before:
        near.append(max(before, key=lambda o: o.done or 0.0))
    return sorted(set(near), key=lambda o: (o.invoked, o.done if o.done is not None else INF))
