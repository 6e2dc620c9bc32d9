"""Pure parts of the config DB and coordination layers: column names, row decoding, znode paths,
the allocator's free-index search (no servers)."""

from __future__ import annotations

import json
import time

import pytest

from contrail_ha.services.config_api import store
from contrail_ha.services.config_api.rows import DELETING, Fence
from contrail_ha.services.config_api.zk import Coordinator, IndexAllocator, escape, fq_lock_path, subnet_path

U1, U2, U3 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", \
    "33333333-3333-3333-3333-333333333333"


def test_column_names() -> None:
    assert store.col_prop("display_name") == "prop:display_name"
    assert store.col_parent("project", U1) == f"parent:project:{U1}"
    assert store.col_child("virtual-network", U1) == f"children:virtual_network:{U1}"
    assert store.col_ref("network-ipam", U2) == f"ref:network_ipam:{U2}"
    assert store.col_backref("virtual_network", U1) == f"backref:virtual_network:{U1}"
    assert store.col_relax(U1) == f"relaxbackref:{U1}"
    assert store.col_fq(["default-domain", "p", "vn"], U1) == f"default-domain:p:vn:{U1}"
    assert store.col_shared("tenant", U2, U1) == f"tenant:{U2}:{U1}"
    assert store.bounds("children:virtual_network") == ("children:virtual_network:", "children:virtual_network;")
    assert json.loads(store.ref_value({"a": 1})) == {"attr": {"a": 1}, "is_weakref": False}
    assert store.ref_type_of("network_ipam_refs") == "network_ipam"
    assert store.ref_type_of("virtual_network_back_refs") is None
    assert store.ref_type_of("display_name") is None


def test_fq_slice_is_an_exact_prefix_match() -> None:
    lo, hi = store.bounds("a:b")
    cols = sorted([f"a:b:{U1}", f"a:bc:{U2}", f"a:b:c:{U3}", f"a:b-x:{U2}", f"a:a:{U2}"])
    in_slice = [c for c in cols if lo <= c < hi]
    assert f"a:bc:{U2}" not in in_slice and f"a:b-x:{U2}" not in in_slice
    assert store.fq_hits(["a", "b"], in_slice) == [U1]  # a:b:c:<uuid> is in the slice but not a hit
    assert store.fq_hits(["a", "b", "c"], cols) == [U3]
    assert store.parse_fq_col(f"a:b:c:{U3}") == (["a", "b", "c"], U3)


def test_share_entries() -> None:
    perms2 = {"owner": "x", "global_access": 5,
              "share": [{"tenant": f"tenant:{U1}", "tenant_access": 4}, {"tenant": U2, "tenant_access": 7},
                        {"tenant": f"domain:{U3}", "tenant_access": 1}]}
    assert store.share_entries(perms2) == [("tenant", U1, 4), ("tenant", U2, 7), ("domain", U3, 1),
                                           ("global", "", 5)]
    assert store.share_entries(None) == []
    assert store.share_entries({"global_access": 0, "share": []}) == []


def test_decode_row() -> None:
    attr = {"ipam_subnets": []}
    cols = [
        ("META:latest_col_ts", "null", 1),
        (f"backref:virtual_machine_interface:{U3}", json.dumps({"attr": None, "is_weakref": False}), 5),
        (f"children:routing_instance:{U3}", "null", 30),
        (f"children:routing_instance:{U2}", "null", 20),
        ("fq_name", json.dumps(["d", "p", "vn"]), 1),
        (f"parent:project:{U1}", "null", 1),
        ("parent_type", json.dumps("project"), 1),
        ("prop:annotations", json.dumps({"key_value_pair": [{"key": "k", "value": "v"}]}), 1),
        ("prop:is_shared", "false", 1),
        (f"ref:network_ipam:{U2}", json.dumps({"attr": attr, "is_weakref": False}), 1),
        (f"relaxbackref:{U3}", "null", 1),
        ("type", json.dumps("virtual_network"), 1),
    ]
    decoded = store.decode_row("u", cols)
    assert decoded is not None
    obj, links = decoded
    assert obj == {"uuid": "u", "fq_name": ["d", "p", "vn"], "type": "virtual_network", "parent_type": "project",
                   "parent_uuid": U1, "annotations": {"key_value_pair": [{"key": "k", "value": "v"}]},
                   "is_shared": False}
    assert links.refs == [("network_ipam", U2, attr)]
    assert links.backrefs == [("virtual_machine_interface", U3, None)]
    assert sorted(links.children, key=lambda c: c[2]) == [("routing_instance", U2, 20), ("routing_instance", U3, 30)]
    assert links.relaxed == [U3]
    # only link columns (a target row written by a racing ref): not an object
    assert store.decode_row("u", cols[1:3]) is None


def test_mutation_size_counts_values() -> None:
    small = store.Mutation("obj_uuid_table", U1, "prop:x", "1")
    big = store.Mutation("obj_uuid_table", U1, "prop:x", "y" * 100_000)
    assert small.size() < 200 < store.BATCH_LIMIT < big.size()


def test_znode_paths() -> None:
    assert fq_lock_path("virtual-network", ["default-domain", "p", "vn"]) == \
        "/fq-name-to-uuid/virtual_network:default-domain:p:vn"
    assert escape("10.0.0.0/24%") == "10.0.0.0%2F24%25"
    assert fq_lock_path("subnet", ["10.0.0.0/24"]) == "/fq-name-to-uuid/subnet:10.0.0.0%2F24"
    assert subnet_path(["default-domain", "p", "vn"], "10.1.1.5/29") == \
        "/api-server/subnets/default-domain:p:vn:10.1.1.0/29/"
    assert subnet_path("d:p:vn", "fd00::/64") == "/api-server/subnets/d:p:vn:fd00::/64/"
    zk = Coordinator("127.0.0.1:1", "cluster-1")  # never started
    assert zk.path("/id/virtual-networks/") == "/cluster-1/id/virtual-networks/"
    assert Coordinator("127.0.0.1:1", "").path("/x") == "/x"
    a = IndexAllocator(zk, "/id/virtual-networks/", 1 << 24)
    assert a.node(5) == "/cluster-1/id/virtual-networks/0000000005"
    assert (a.dir, a.name_prefix) == ("/cluster-1/id/virtual-networks", "")


@pytest.mark.parametrize(("used", "lo", "hi", "exclude", "reverse", "want"), [
    ([], 0, 99, (), False, 0),
    ([0, 1, 2], 0, 99, (), False, 3),
    ([0, 1, 3], 0, 99, (), False, 2),
    ([0, 1, 3], 0, 99, (2,), False, 4),
    ([0, 1, 2], 5, 99, (), False, 5),
    ([0, 1, 2], 0, 2, (), False, None),
    ([], 0, 99, (), True, 99),
    ([99, 98], 0, 99, (), True, 97),
    ([7], 0, 7, (6, 5), True, 4),
    ([1, 2, 3, 4], 1, 4, (), True, None),
    ([], 0, (1 << 32) - 1, (0,), False, 1),  # 2^32 indexes: no 2^32-bit mask is ever built
    ([], 0, (1 << 32) - 1, (), True, (1 << 32) - 1),
])
def test_find_free(used: list[int], lo: int, hi: int, exclude: tuple[int, ...], reverse: bool,
                   want: int | None) -> None:
    a = IndexAllocator(Coordinator("127.0.0.1:1", "c"), "/x/", 1 << 32)
    for i in used:
        a.set_in_use(i)
    assert a._find(lo, hi, frozenset(exclude), reverse) == want


def test_find_free_with_a_start_offset() -> None:
    a = IndexAllocator(Coordinator("127.0.0.1:1", "c"), "/tags/", 100, start=255)
    a.set_in_use(255)
    assert a._find(0, 99, frozenset({256}), False) == 2  # bit 2 = index 257


def test_warming_node_is_tried_last_until_warmed_up() -> None:
    from contrail_ha.services.cql import WarmedUpFirst

    now = [100.0]
    policy = WarmedUpFirst(warmup_s=60, suspect_s=10, clock=lambda: now[0])
    policy.populate(None, ["a", "b", "c"])
    plans = [list(policy.make_query_plan()) for _ in range(3)]
    assert {p[0] for p in plans} == {"a", "b", "c"}  # plain round robin: each node coordinates in turn
    policy.on_down("c")
    policy.on_up("c")  # restarted: answers, but is still warming up
    now[0] += 59
    assert all(list(policy.make_query_plan())[-1] == "c" for _ in range(6))
    assert sorted(policy.make_query_plan()) == ["a", "b", "c"]  # still a fallback, never dropped
    now[0] += 2
    assert {next(policy.make_query_plan()) for _ in range(6)} == {"a", "b", "c"}
    policy.timed_out("b")  # cut off by a partition: its connections stay open, its requests time out
    now[0] += 9
    assert all(list(policy.make_query_plan())[-1] == "b" for _ in range(6))
    now[0] += 2
    assert {next(policy.make_query_plan()) for _ in range(6)} == {"a", "b", "c"}


def _timed_out() -> store.Unavailable:
    from cassandra import OperationTimedOut

    try:
        raise OperationTimedOut("Client request timeout")
    except OperationTimedOut as cause:
        err = store._unavailable(cause)
        err.__cause__ = cause
        return err


Batches = list[list[store.Mutation]]


def _stubbed(deadline: float, visible: bool, send_ok: bool = True) -> tuple[store.ConfigStore, Batches, Batches]:
    """A store whose writes and reads are recorded or answered here (the claim on the parent's row
    and the real Cassandra paths are tested in tests/integration): (store, written, sent)."""
    s = store.ConfigStore(["127.0.0.1"], 9041, 1, create_deadline=deadline)
    written: Batches = []
    sent: Batches = []

    async def send(muts: list[store.Mutation], *_: object) -> None:
        sent.append(muts)
        if not send_ok:
            raise _timed_out()

    async def cols(table: str, key: str, names: object) -> list[tuple[str, str, int | None]]:
        return [("type", '"virtual_network"', 1)] if visible else []

    async def claim(*_: object, **__: object) -> None:
        pass

    s._send = send  # type: ignore[method-assign]
    s._cols = cols  # type: ignore[method-assign]
    s._claim = claim  # type: ignore[method-assign]
    return s, written, sent


VN = {"uuid": U1, "type": "virtual_network", "fq_name": ["default-domain", "p", "vn"],
      "parent_type": "project", "parent_uuid": U2, "display_name": "vn"}


@pytest.mark.parametrize("outcome", ["revoked", "applied", "unknown"])
def test_timed_out_create_is_settled(outcome: str) -> None:
    """A create whose write timed out marks its row and reads it: invisible, it is revoked (503,
    safe to retry: tombstones one microsecond after its fence, the mark lifted in the same batch);
    visible, it applied and is acknowledged, never undone (a child may be built on it); when the
    settling fails too, the outcome is unknown (504)."""
    import asyncio

    from contrail_ha.services.config_api.objects import ConfigError, OutcomeUnknown

    s, _, sent = _stubbed(10.0, visible=outcome == "applied", send_ok=outcome != "unknown")

    async def write(muts: list[store.Mutation], commit: list[store.Mutation] | None = None) -> None:
        raise _timed_out()

    s._write = write  # type: ignore[method-assign]
    fence = Fence.start()
    if outcome == "applied":
        asyncio.run(s.create(dict(VN), fence))
        mark, unmark = sent
        assert [m.column for m in mark] == [DELETING] and mark[0].value
        assert unmark == [store.Mutation(store.UUID_TABLE, U1, DELETING, None, mark[0].ts)]
        return
    with pytest.raises(ConfigError) as info:
        asyncio.run(s.create(dict(VN), fence))
    assert isinstance(info.value, OutcomeUnknown) is (outcome == "unknown")
    assert info.value.status == (504 if outcome == "unknown" else 503)
    if outcome == "unknown":  # the mark's write timed out (it may have applied): lifted at its own time
        mark, unmark = sent
        assert unmark == [store.Mutation(store.UUID_TABLE, U1, DELETING, None, mark[0].ts)]
    if outcome == "revoked":
        mark, undo = sent
        assert store.Mutation(store.UUID_TABLE, U1, None, None, fence.ts + 1) in undo  # the whole row
        assert store.Mutation(store.UUID_TABLE, U2, store.col_child("virtual_network", U1), None,
                              fence.ts + 1) in undo
        assert store.Mutation(store.UUID_TABLE, U1, DELETING, None, mark[0].ts) in undo
        assert mark[0].ts > fence.ts + 1  # the mark outlives the row's tombstone until lifted


@pytest.mark.parametrize("visible", [False, True])
def test_create_past_its_deadline_is_never_acknowledged(visible: bool) -> None:
    """A create whose commit completed after its deadline is never acknowledged: a delete may have
    judged it dead. Invisible now (revoked), it answers 503 "nothing was created"; visible, it
    stands (others may have built on it) and the outcome is 504."""
    import asyncio

    from contrail_ha.services.config_api.objects import OutcomeUnknown, Unavailable

    s, written, sent = _stubbed(1.0, visible=visible)

    async def write(muts: list[store.Mutation], commit: list[store.Mutation] | None = None) -> None:
        written.append(muts + (commit or []))

    s._write = write  # type: ignore[method-assign]
    late = Fence(Fence.start().ts, time.monotonic() - 1.5)  # taken 1.5 s ago: a paused replica
    with pytest.raises(OutcomeUnknown if visible else Unavailable,
                       match="applied, after its deadline" if visible else "nothing was created"):
        asyncio.run(s.create(dict(VN), late))
    [commit] = written
    assert commit and all(m.ts == late.ts for m in commit)  # every column at the fence
    tombstones = [m for batch in sent for m in batch if m.column is None]
    assert tombstones == ([] if visible else [store.Mutation(store.UUID_TABLE, U1, None, None, late.ts + 1)])
    del sent[:]
    fresh = Fence.start()
    asyncio.run(s.create(dict(VN), fresh))  # within the deadline: acknowledged, nothing settled
    assert sent == [] and all(m.ts == fresh.ts for m in written[1])
