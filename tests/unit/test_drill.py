"""The drill's pure parts: what it refuses, how it turns samples into figures, what counts as data loss."""

from __future__ import annotations

from pathlib import Path

from contrail_ha.operations import drill
from contrail_ha.operations.drill import FAULTS, Result, Sample
from contrail_ha.services.config_api import server
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]


def _plan(name: str):
    return load_topology(REPO / "examples" / f"{name}.yaml").plan()


def test_every_fault_is_survivable_on_the_ha_topology_and_refused_on_all_in_one() -> None:
    ha, aio = _plan("ha"), _plan("all-in-one")
    assert {f.name for f in FAULTS.values() if f.needs(ha) is None} == set(FAULTS)
    assert "controller-partition" in FAULTS
    for f in FAULTS.values():
        why = f.needs(aio)
        assert why is not None and "needs at least" in why, f.name


class _Workload:
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples


def test_summary_outage_writes_back_and_latency() -> None:
    s = [Sample(t, "read", True, 0.01) for t in (0.5, 1.0, 1.5)]  # before the injection at t=2
    s += [Sample(2.2, "read", True, 0.01), Sample(2.4, "create", False, 1.0, "HTTP 503"),
          Sample(3.0, "create", False, 0.5, "HTTP 503"), Sample(5.2, "read", True, 2.0),
          Sample(5.3, "create", True, 0.2), Sample(6.0, "create", True, 0.1)]
    res = Result("x", {})
    drill._summarise(res, _Workload(s), t_inject=2.0, t_heal=6.0)
    assert res.requests == 9
    assert res.failed == {"create: HTTP 503": 2}
    assert res.longest_gap_s == 3.0  # nothing completed well between 2.2 and 5.2
    # requests sent from 2.5 failed until the one sent at 3.2 succeeded (slowly: latency, not outage);
    # the create sent at 1.4 failed after requests sent later had succeeded: no outage for new requests
    assert res.longest_outage_s == 0.7
    assert res.writes_back_s == 3.3  # the first good create after the last failed one
    assert res.max_latency_ms == {"read": 2000.0, "create": 1000.0}


def test_outage_runs_until_a_success_is_sent_and_to_the_end_when_none_is() -> None:
    s = [Sample(1.0, "read", True, 0.1), Sample(2.1, "read", False, 0.3), Sample(2.2, "read", False, 0.05),
         Sample(2.6, "read", True, 0.2), Sample(2.7, "create", False, 0.6)]
    assert round(drill.outage(s, t_inject=2.0), 3) == 0.4  # sent 2.0 (in flight at the kill) .. 2.4
    tail = [Sample(4.0, "read", False, 0.1), Sample(5.0, "read", False, 0.2)]
    assert round(drill.outage(s + tail, t_inject=2.0), 3) == 1.1  # sent 3.9 .. the end (5.0), none succeeded
    assert drill.outage([Sample(3.0, "read", True, 0.5)], t_inject=2.0) == 0.0


def test_data_ok_counts_every_kind_of_loss() -> None:
    assert Result("x", {}).data_ok
    for field, value in (("lost", 1), ("mismatched", 1), ("duplicate_fq_names", 1), ("duplicate_vn_ids", 1),
                         ("replicas_disagree", 1), ("analytics_lost", 1), ("analytics_duplicates", 1),
                         ("minority_writes", {"200": 1})):
        r = Result("x", {})
        setattr(r, field, value)
        assert not r.data_ok, field
    assert Result("x", {}, minority_writes={"503": 4}).data_ok  # refusing is what the minority must do


def test_create_uuid_follows_the_request_id() -> None:
    token = server.REQUEST_ID.set("lb1_10.250.0.2:4711_10.10.100.10:8082_1700000000_42")
    try:
        a = server.create_uuid("virtual_network", ["default-domain", "p", "vn"])
        assert a == server.create_uuid("virtual_network", ["default-domain", "p", "vn"])  # a retry: same uuid
        assert a != server.create_uuid("virtual_network", ["default-domain", "p", "vn2"])
    finally:
        server.REQUEST_ID.reset(token)
    assert server.create_uuid("virtual_network", ["default-domain", "p", "vn"]) != a  # no id: random


def test_faults_combine_in_order_and_heal_in_reverse() -> None:
    from contrail_ha.operations.drill_faults import Fault, fault_named

    calls: list[str] = []

    def part(name: str, seconds: float, fail: bool = False) -> Fault:
        def inject(plan: object, layout: object) -> dict:
            if fail:
                raise RuntimeError(f"{name} cannot be injected")
            calls.append(f"inject {name}")
            return {"host": f"h-{name}", name: True}

        def heal(plan: object, layout: object, done: dict) -> None:
            calls.append(f"heal {name} {sorted(done)}")

        return Fault(name, f"do {name}", lambda plan: None, inject, heal, seconds)

    saved = dict(FAULTS)
    try:
        FAULTS.update({"a": part("a", 0), "b": part("b", 20), "bad": part("bad", 0, fail=True)})
        both = fault_named("a+b")
        assert both.name == "a+b" and both.min_seconds == 20 and both.description == "do a and do b"
        done = both.inject(None, None)  # type: ignore[arg-type]
        assert done["host"] == "h-a" and done["a"] and done["b"] and done["hosts"] == ["h-a", "h-b"]
        both.heal(None, None, done)  # type: ignore[arg-type]
        assert calls == ["inject a", "inject b", "heal b ['b', 'host']", "heal a ['a', 'host']"]
        calls.clear()
        try:
            fault_named("a+bad").inject(None, None)  # type: ignore[arg-type]
        except RuntimeError:
            pass
        assert calls == ["inject a", "heal a ['a', 'host']"]  # what was injected is healed
        assert fault_named("a") is FAULTS["a"]
        for bad in ("a+a",):
            try:
                fault_named(bad)
                raise AssertionError(bad)
            except ValueError:
                pass
    finally:
        FAULTS.clear()
        FAULTS.update(saved)


def test_a_register_violation_is_data_not_ok() -> None:
    from contrail_ha.operations import linearizable
    from contrail_ha.operations.drill_register import INITIAL, Register
    from contrail_ha.operations.vip import Vip

    r = Register(_plan("ha"), Vip("https://vip:8082", "https://vip:8081", None), "u")
    assert r.readers[0][0] == "vip" and len(r.readers) == 4
    r.ops = [linearizable.Op("w", "x", 0.0, 1.0, "vip"), linearizable.Op("r", "x", 2.0, 3.0, "c1")]
    ok = r.check()
    assert ok.linearizable and ok.ops == 2
    r.ops.append(linearizable.Op("r", INITIAL, 4.0, 5.0, "c2"))  # an acknowledged write undone
    bad = r.check()
    assert not bad.linearizable and any("c2" in line for line in bad.window)
    res = Result("f", {})
    res.register_linearizable = bad.linearizable
    assert not res.data_ok


def test_cleanup_requests_survive_connection_resets(monkeypatch) -> None:
    """A VIP move during the clean-up reset a DELETE and ended a whole matrix; each request is retried."""
    import asyncio

    import aiohttp

    from contrail_ha.operations import drill_workload

    async def no_sleep(_s: float) -> None:
        return None

    monkeypatch.setattr(drill_workload.asyncio, "sleep", no_sleep)
    calls = {"n": 0}

    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise aiohttp.ClientOSError(104, "Connection reset by peer")
        return "done"

    assert asyncio.run(drill_workload._retried(flaky)) == "done" and calls["n"] == 3

    async def dead() -> str:
        calls["n"] += 1
        raise TimeoutError()

    calls["n"] = 0
    try:
        asyncio.run(drill_workload._retried(dead))
        raise AssertionError("a request failing every time must raise")
    except TimeoutError:
        pass
    assert calls["n"] == drill_workload.CLEANUP_ATTEMPTS
