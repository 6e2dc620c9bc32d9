"""The register linearizability checker (no servers): histories it must accept and reject."""

from __future__ import annotations

import random

import pytest

from contrail_ha.operations.linearizable import Op, check


def w(v: str, a: float, b: float | None, c: str = "") -> Op:
    return Op("w", v, a, b, c)


def r(v: str | None, a: float, b: float | None, c: str = "") -> Op:
    return Op("r", v, a, b, c)


def test_sequential_history() -> None:
    assert check([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("b", 6, 7)]).ok
    assert check([r(None, 0, 1)]).ok  # the initial value
    assert check([]).ok


def test_stale_read_after_a_completed_write_is_caught_with_its_window() -> None:
    h = [w("a", 0, 1, "c1"), w("b", 2, 3, "c2"), r("a", 4, 5, "c3")]
    v = check(h)
    assert not v.ok
    assert r("a", 4, 5, "c3") in v.window and w("b", 2, 3, "c2") in v.window
    assert "NOT linearizable" in str(v)


def test_concurrent_write_may_be_seen_or_not() -> None:
    assert check([w("a", 0, 1), w("b", 2, 10), r("a", 3, 4), r("b", 5, 6)]).ok
    assert check([w("a", 0, 1), w("b", 2, 10), r("b", 3, 4), r("a", 5, 6)]).ok is False  # no going back


def test_lost_acknowledged_write() -> None:
    """A write acknowledged, then every later read shows the value before it: the write was lost."""
    assert not check([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5), r("a", 6, 7)]).ok


def test_unknown_outcome_writes_may_apply_late_or_never() -> None:
    assert check([w("a", 0, 1), w("x", 2, None), r("a", 3, 4)]).ok  # never applied (so far)
    assert check([w("a", 0, 1), w("x", 2, None), r("x", 30, 31)]).ok  # applied late
    assert check([w("a", 0, 1), w("x", 2, None), r("x", 3, 4), r("a", 5, 6)]).ok is False  # not undone
    assert not check([w("a", 0, 1), w("x", 5, None), r("x", 2, 3)]).ok  # not before it was sent


def test_reads_of_values_never_written() -> None:
    assert not check([w("a", 0, 1), r("zzz", 2, 3)]).ok


def test_op_validation() -> None:
    with pytest.raises(ValueError):
        Op("x", 1, 0, 1)
    with pytest.raises(ValueError):
        Op("w", 1, 2, 1)


def _sequential_truth(seed: int, n: int = 40) -> list[Op]:
    """A history produced by a real register: each op takes effect at one instant inside its interval."""
    rnd = random.Random(seed)
    state: str | None = None
    points = sorted(rnd.uniform(0, 100) for _ in range(n))
    out = []
    for k, t in enumerate(points):
        a, b = t - rnd.uniform(0, 3), t + rnd.uniform(0, 3)
        if rnd.random() < 0.5:
            state = f"v{k}"
            out.append(w(state, a, b if rnd.random() > 0.1 else None, f"c{k % 5}"))
        else:
            out.append(r(state, a, b, f"c{k % 5}"))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_histories_of_a_real_register_are_accepted(seed: int) -> None:
    assert check(_sequential_truth(seed)).ok


@pytest.mark.parametrize("seed", range(20))
def test_a_corrupted_read_is_rejected_when_it_cannot_be_explained(seed: int) -> None:
    h = _sequential_truth(seed)
    reads = [i for i, o in enumerate(h) if o.kind == "r"]
    if not reads:
        return
    i = reads[len(reads) // 2]
    h[i] = r("never-written", h[i].invoked, h[i].done)
    assert not check(h).ok


def test_unread_unknown_writes_are_left_out_and_keep_the_search_small() -> None:
    """A replica cut off from the rest answers every write with an error: hundreds of unknown-outcome
    writes nobody read. They can never be needed, so the search ignores them."""
    h = [w("a", 0, 1, "ok")]
    h += [w(f"lost-{k}", 2 + k * 0.01, None, "cut") for k in range(400)]
    h += [r("a", 10 + k, 10.5 + k, "ok") for k in range(50)]
    v = check(h, max_steps=10_000)
    assert v.ok and v.ops == 51
    assert not check([*h, r("b", 100, 101, "ok")], max_steps=10_000).ok
