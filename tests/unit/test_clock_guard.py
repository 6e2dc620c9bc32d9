"""The clock guard's rule (no servers): when a contrail-api replica refuses writes for its clock."""

from __future__ import annotations

import asyncio

from contrail_ha.services.analytics import alarms
from contrail_ha.services.config_api.clock import ClockGuard, Sample


def guard(*offsets: float, uncertainty: float = 0.002, now: bool = False) -> ClockGuard:
    """A guard measured at wall 1000 / monotonic 50 (``now``: at the real clocks' present)."""
    g = ClockGuard(lambda: asyncio.sleep(0, []), max_offset=0.5, stale_after=10.0)  # type: ignore[arg-type]
    samples = [Sample(f"n{i}", o, uncertainty) for i, o in enumerate(offsets)]
    if now:
        g.record(samples)
    else:
        g.record(samples, wall=1000.0, mono=50.0)
    return g


def test_unmeasured_clock_refuses() -> None:
    g = ClockGuard(lambda: asyncio.sleep(0, []))  # type: ignore[arg-type]
    assert "not been checked" in (g.refuse_reason() or "")
    asyncio.run(g.measure())  # no node answered: still unmeasured, health down
    assert not g.ok and "writes refused" in g.reason


def test_in_bound_clock_writes() -> None:
    g = guard(0.01, -0.02, 0.03)
    assert g.refuse_reason(wall=1001.0, mono=51.0) is None
    assert g.offset == 0.01 and g.nodes == 3


def test_a_clock_60s_ahead_refuses_with_the_reason() -> None:
    g = guard(-60.0, -60.01, -59.99)  # every node's clock is 60 s behind ours: ours is ahead
    why = g.refuse_reason(wall=1001.0, mono=51.0)
    assert why is not None and "60.000 s ahead of the cluster's" in why and "bound is 0.5 s" in why
    assert guard(60.0, 60.0, 60.0).refuse_reason(wall=1001.0, mono=51.0) is not None  # behind, too


def test_one_skewed_node_is_outvoted_by_the_median() -> None:
    assert guard(0.0, 0.01, -60.0).refuse_reason(wall=1001.0, mono=51.0) is None


def test_uncertainty_is_given_the_benefit_of_the_doubt() -> None:
    assert guard(0.6, 0.6, 0.6, uncertainty=0.2).refuse_reason(wall=1001.0, mono=51.0) is None
    assert guard(0.8, 0.8, 0.8, uncertainty=0.2).refuse_reason(wall=1001.0, mono=51.0) is not None


def test_a_stale_measurement_or_a_clock_step_refuses() -> None:
    g = guard(0.0, 0.0, 0.0)
    assert "for 15 s" in (g.refuse_reason(wall=1015.0, mono=65.0) or "")  # nobody vouched lately
    assert "moved +2.000 s" in (g.refuse_reason(wall=1003.0, mono=51.0) or "")  # date -s, an NTP step
    assert "moved -" in (g.refuse_reason(wall=999.0, mono=51.0) or "")


def test_node_status_and_the_clock_skew_alarm() -> None:
    g = guard(-60.0, -60.0, -60.0, now=True)
    report = g.node_status()
    assert report["refusing_writes"] is True and report["offset_s"] == -60.0
    uve = alarms.Uve("ObjectConfigNode", "ctrl3", {"NodeStatus": {"process_status": [
        {"module_id": "contrail-api", "instance_id": "config-api-0", "clock": report}]}}, 1.0)
    hit = alarms.clock_skew(uve)
    assert hit is not None and hit[0] == alarms.MAJOR and "config-api-0" in hit[1] and "ahead" in hit[1]
    ok = guard(0.0, now=True).node_status()
    fine = alarms.Uve("ObjectConfigNode", "ctrl1", {"NodeStatus": {"process_status": [
        {"module_id": "contrail-api", "instance_id": "config-api-0", "clock": ok}]}}, 1.0)
    assert alarms.clock_skew(fine) is None
    assert "clock-skew" in alarms.RULES
