"""The object graph's history checker (no servers): each invariant found when broken, and no
violation from a history that only looks alarming (an unknown outcome, a freed address reused)."""

from __future__ import annotations

from contrail_ha.operations.drill_graph import Op
from contrail_ha.operations.drill_graph_check import history_check


def op(kind: str, status: int | None, uuid: str = "", on: str = "", value: str = "", t: float = 0.0) -> Op:
    return Op(kind, "vip", t, t + 0.1, status, uuid=uuid, gen="g-1", on=on, value=value)


def test_acked_create_under_an_acked_delete_is_a_violation() -> None:
    found = history_check([op("create-virtual-network", 200, "vn1", on="p1"), op("delete-project", 200, "p1", t=1)])
    assert len(found) == 1 and found[0].startswith("acked-orphan: create-virtual-network vn1")
    assert "delete-project p1" in found[0]


def test_acked_instance_ip_on_a_deleted_network_is_dangling() -> None:
    found = history_check([op("create-instance-ip", 200, "i1", on="vn1", value="10.20.0.1"),
                           op("delete-virtual-network", 200, "vn1")])
    assert [f.split(":")[0] for f in found] == ["acked-dangling"]


def test_a_delete_that_may_have_applied_explains_the_missing_child() -> None:
    for status in (200, 404, 503, None):
        history = [op("create-virtual-network", 200, "vn1", on="p1"), op("delete-virtual-network", status, "vn1"),
                   op("delete-project", 200, "p1")]
        assert history_check(history) == [], status


def test_a_refused_delete_does_not_explain_it() -> None:
    history = [op("create-virtual-network", 200, "vn1", on="p1"), op("delete-virtual-network", 409, "vn1"),
               op("delete-project", 200, "p1")]
    assert [f.split(":")[0] for f in history_check(history)] == ["acked-orphan"]


def test_unacked_creates_are_not_judged_from_the_history() -> None:
    history = [op("create-virtual-network", s, "vn1", on="p1") for s in (None, 503, 409)] + \
        [op("delete-project", 200, "p1")]
    assert history_check(history) == []


def test_duplicate_address_and_tag_id() -> None:
    history = [op("create-instance-ip", 200, "i1", on="vn1", value="10.20.0.1"),
               op("create-instance-ip", 200, "i2", on="vn1", value="10.20.0.1"),
               op("create-instance-ip", 200, "i3", on="vn2", value="10.20.0.1"),  # another network: fine
               op("create-tag", 200, "t1", on="p1", value="0x00000007"),
               op("create-tag", 200, "t2", on="p2", value="0x00000007")]
    kinds = sorted(f.split(":")[0] for f in history_check(history))
    assert kinds == ["duplicate-ip", "duplicate-tag-id"]


def test_a_freed_address_may_be_reused() -> None:
    history = [op("create-instance-ip", 200, "i1", on="vn1", value="10.20.0.1"),
               op("delete-instance-ip", 200, "i1"),
               op("create-instance-ip", 200, "i2", on="vn1", value="10.20.0.1")]
    assert history_check(history) == []


def test_server_errors_other_than_unavailable_are_violations() -> None:
    found = history_check([op("ref-add", 500, "vn1"), op("create-tag", 503), op("delete-project", 504, "p1")])
    assert len(found) == 1 and found[0].startswith("5xx: ref-add vn1")


def test_brief_names_the_answer() -> None:
    assert "no answer" in op("create-tag", None).brief()
    assert op("delete-tag", 404).may_have_applied and not op("create-tag", 404).may_have_applied
    assert not op("delete-tag", 0).may_have_applied and not op("delete-tag", 409).may_have_applied
