"""The config DB row codec: list/map element columns, element order, delete marks and link ages."""

from __future__ import annotations

import json
import time

from contrail_ha.services.config_api import rows
from contrail_ha.services.config_api.core import collection_layout

KV = rows.Collection("map", "key_value_pair", "key")
LIST = rows.Collection("list", None)


def test_layout_from_the_schema() -> None:
    assert collection_layout("virtual_network", "annotations") == KV
    assert collection_layout("virtual-network", "is_shared") is None
    assert collection_layout("no_such_type", "annotations") is None


def test_map_split_and_join_round_trip() -> None:
    value = {"key_value_pair": [{"key": "b", "value": "2"}, {"key": "a", "value": "1"}, {"key": "b", "value": "3"}]}
    shell, items = KV.split(value)
    assert shell == {"key_value_pair": []}
    assert items == [("b", {"key": "b", "value": "3"}), ("a", {"key": "a", "value": "1"})]  # later duplicate wins
    assert KV.join(shell, items) == {"key_value_pair": [{"key": "a", "value": "1"}, {"key": "b", "value": "3"}]}


def test_list_positions_keep_numeric_then_append_order() -> None:
    first, second = rows.new_position(), rows.new_position()
    items = [(first, "x"), ("10", 10), ("2", 2), (second, "y"), ("0", 0)]
    assert LIST.join([], items) == [0, 2, 10, "x", "y"]
    assert first < second and len(first) == len(second)
    assert rows.position_order("7") < rows.position_order("10") < rows.position_order(first)


def test_decode_row_assembles_elements_and_last_modified() -> None:
    cols = [
        ("META:last_modified", json.dumps("2026-01-02T00:00:00.000001"), 9),
        ("fq_name", json.dumps(["d", "p", "vn"]), 1),
        ("prop:annotations", json.dumps({"key_value_pair": []}), 1),
        ("prop:id_perms", json.dumps({"enable": True, "last_modified": "2026-01-01T00:00:00.000001"}), 1),
        ("propm:annotations:k1", json.dumps({"key": "k1", "value": "v1"}), 2),
        ("propm:annotations:k2", json.dumps({"key": "k2", "value": "v2"}), 3),
        ("type", json.dumps("virtual_network"), 1),
    ]
    decoded = rows.decode_row("u", cols, collection_layout)
    assert decoded is not None
    obj, _ = decoded
    assert obj["annotations"] == {"key_value_pair": [{"key": "k1", "value": "v1"}, {"key": "k2", "value": "v2"}]}
    assert obj["id_perms"]["last_modified"] == "2026-01-02T00:00:00.000001"  # every write sets it alone
    # an empty collection reads back as set (its shell)
    decoded = rows.decode_row("u", [c for c in cols if not c[0].startswith("propm:")], collection_layout)
    assert decoded is not None and decoded[0]["annotations"] == {"key_value_pair": []}


def test_decode_row_links_carry_write_times_and_the_delete_mark() -> None:
    mark = rows.deleting_mark()
    cols = [(f"children:virtual_network:{'1' * 8}", "null", 123), ("META:deleting", mark, 5),
            ("fq_name", json.dumps(["d"]), 1), ("type", json.dumps("domain"), 1)]
    decoded = rows.decode_row("u", cols)
    assert decoded is not None
    _, links = decoded
    assert links.written == {"1" * 8: 123} and links.deleting == mark


def test_link_freshness_and_fence() -> None:
    now = time.time()
    assert rows.link_is_fresh(int((now - 1) * 1e6), now)
    assert not rows.link_is_fresh(int((now - rows.LINK_STALE_S - 1) * 1e6), now)
    assert not rows.link_is_fresh(None, now)
    assert rows.link_is_fresh(int((now - 3) * 1e6), now, stale=4)
    assert not rows.link_is_fresh(int((now - 5) * 1e6), now, 4)
    # a claim is judged dead only after the creator's deadline plus twice the clock bound
    assert rows.LINK_STALE_S >= rows.CREATE_DEADLINE_S + 2 * rows.MAX_CLOCK_OFFSET_S
    f = rows.Fence.start()
    assert f.revoke_ts == f.ts + 1 and abs(f.ts / 1e6 - time.time()) < 5
    assert not f.expired() and f.expired(deadline=1.0, now=f.started + 1.5)


def test_claim_values_carry_the_new_objects_fq_name() -> None:
    child = rows.claim_value(["d", "p", "vn"])
    assert rows.claimed_fq(child) == ["d", "p", "vn"]
    back = rows.claim_value(["d", "p", "vn"], rows.ref_value({"x": 1}))
    assert json.loads(back) == {"attr": {"x": 1}, "is_weakref": False, "fq": ["d", "p", "vn"]}
    assert rows.claimed_fq(rows.ref_value(None)) is None and rows.claimed_fq("null") is None
    assert rows.claimed_fq("garbage") is None and rows.claimed_fq(None) is None
    cols = [(f"children:virtual_network:{'1' * 8}", child, 123), (f"backref:virtual_network:{'2' * 8}", back, 124),
            ("fq_name", json.dumps(["d", "p"]), 7), ("type", json.dumps("project"), 9)]
    decoded = rows.decode_row("u", cols)
    assert decoded is not None
    _, links = decoded
    assert links.claimed == {"1" * 8: ["d", "p", "vn"], "2" * 8: ["d", "p", "vn"]}
    assert links.newest == 124  # a delete's tombstone goes after every column of the row
    assert links.backrefs[0][2] == {"x": 1}  # the attr is read as before
