"""contrail-api under racing writes on the HA cluster: lost updates and integrity races across replicas.

Each scenario of tests/helpers/races.py runs a few rounds (CONTRAIL_HA_RACE_ROUNDS, default 5); a
round fires its racing requests at different replicas directly and through the VIP at the same
moment, then checks the invariants through the VIP and from every replica. The long run is
scripts/race_config_api.py.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import Cluster
from tests.helpers import races

ROUNDS = int(os.environ.get("CONTRAIL_HA_RACE_ROUNDS", "5"))


def _urls(cluster: Cluster) -> tuple[str, list[str]]:
    return cluster.api, [f"http://{i.address}" for i in cluster.plan.of("config-api")]


@pytest.mark.parametrize("scenario", [s.name for s in races.SCENARIOS])
def test_race_keeps_invariants(cluster: Cluster, scenario: str) -> None:
    vip, replicas = _urls(cluster)
    res = races.run_scenario(scenario, vip, replicas, rounds=ROUNDS)
    print(res.summary())
    assert res.rounds >= max(1, ROUNDS - 1), f"too many rounds could not be set up: {res.summary()}"
    assert not res.violations, res.summary() + "\n" + "\n".join(str(v) for v in res.violations[:20])


class _FakeView(races.View):
    """A reader over a dict of objects (no cluster): for the harness's own check."""

    def __init__(self, objs: dict[str, dict]) -> None:
        super().__init__("fake", "http://fake", None)  # type: ignore[arg-type]
        self.objs = objs

    def get(self, rtype: str, u: str) -> dict | None:
        return self.objs.get(u)


def _e(t: str, u: str) -> dict:
    return {"to": ["default-domain", "p", u], "uuid": u, "href": f"http://fake/{t}/{u}"}


P, VN, NP, GONE = (f"{c * 8}-0000-4000-8000-{c * 12}" for c in "abcd")


def test_harness_detects_orphans_dangling_refs_and_bad_409s() -> None:
    """The integrity checks flag each kind of broken state and nothing in a sound one."""
    sound = {P: {"fq_name": ["default-domain", "p"], "virtual_networks": [_e("virtual-network", VN)],
                 "network_policys": [_e("network-policy", NP)]},
             VN: {"fq_name": ["default-domain", "p", "vn"], "parent_type": "project", "parent_uuid": P,
                  "network_policy_refs": [_e("network-policy", NP)]},
             NP: {"fq_name": ["default-domain", "p", "np"], "parent_type": "project", "parent_uuid": P,
                  "virtual_network_back_refs": [_e("virtual-network", VN)]}}
    watched = {P: "project", VN: "virtual-network", NP: "network-policy"}
    assert races.integrity(_FakeView(sound), watched) == []
    broken = {VN: dict(sound[VN], network_policy_refs=[_e("network-policy", GONE)]),
              P: dict(sound[P], virtual_networks=[_e("virtual-network", VN), _e("virtual-network", GONE)]),
              NP: dict(sound[NP], virtual_network_back_refs=[_e("virtual-network", GONE)])}
    kinds = sorted(v.kind for v in races.integrity(_FakeView(broken), watched))
    assert kinds == ["dangling", "dangling", "orphan"], kinds  # VN -> GONE, NP <- GONE, P lists GONE
    no_parent = {VN: sound[VN], NP: dict(sound[NP], virtual_network_back_refs=[])}
    kinds = sorted(v.kind for v in races.integrity(_FakeView(no_parent), watched))
    assert kinds == ["asymmetric", "orphan", "orphan"], kinds  # VN -> NP without back-ref; P reads 404
    bad = races.Reply(409, f"Delete when children still present: ['http://fake/virtual-network/{GONE}']")
    assert [v.kind for v in races.check_409(_FakeView(sound), bad, set())] == ["bad-409"]
    assert races.check_409(_FakeView(sound), bad, {GONE}) == []
    good = races.Reply(409, f"Delete when children still present: ['http://fake/virtual-network/{VN}']")
    assert races.check_409(_FakeView(sound), good, set()) == []
