"""contrail-api's data layer against a real Cassandra node and a real ZooKeeper on 127.0.50.1.

Both servers start once for the file. The store and coordinators live on one event loop run in a
background thread (no pytest-asyncio): ``run(coro)`` executes a coroutine there. Layout checks
read Cassandra with a separate plain driver session. The last test stops Cassandra.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid as uuidlib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import Session
from kazoo.client import KazooClient
from kazoo.security import make_acl

from contrail_ha.probes import cassandra as cprobe
from contrail_ha.probes import zookeeper as zprobe
from contrail_ha.rendering import cassandra as crender
from contrail_ha.rendering import zookeeper as zrender
from contrail_ha.rendering.base import Layout, ProcessSpec
from contrail_ha.rendering.cassandra import cluster_of
from contrail_ha.services.config_api.core import collection_layout
from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound, OutcomeUnknown, Unavailable
from contrail_ha.services.config_api.rows import Fence
from contrail_ha.services.config_api.store import ConfigStore, MultiMatch
from contrail_ha.services.config_api.zk import (
    SG_RESERVED,
    Coordinator,
    Exhausted,
    IndexAllocator,
    security_group_allocator,
    virtual_network_allocator,
)
from contrail_ha.topology.plan import CONFIG_DB, ZOOKEEPER, Plan
from tests.helpers import proc
from tests.helpers.aio import Loop
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PREFIX = "127.0.50"
T = TypeVar("T")
TIMINGS: dict[str, str] = {}


@dataclass
class Servers:
    plan: Plan
    layout: Layout
    procs: dict[str, tuple[subprocess.Popen[bytes], ProcessSpec]]
    raw: Session  # plain driver session on config_db_uuid, for layout checks

    def stop(self, name: str) -> None:
        if name in self.procs:
            p, spec = self.procs.pop(name)
            proc.stop(p, spec, timeout=spec.stop_timeout)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("config-store")
    plan = loopback_plan(PREFIX, 1)
    layout = Layout(tmp / "state")
    proc.require_runtime(layout, "cassandra", "zookeeper")
    zi, ci = plan.instance(ZOOKEEPER, "n1"), plan.instance(CONFIG_DB, "n1")
    procs: dict[str, tuple[subprocess.Popen[bytes], ProcessSpec]] = {}
    raw: Session | None = None
    try:
        t0 = time.monotonic()
        for r in (zrender.render(plan, zi, layout), crender.render(plan, ci, layout, jmx=False)):
            proc.write_files(r)
            for spec in r.processes:  # Cassandra and its role keeper
                procs[spec.name] = (proc.start(spec, tmp / "logs" / f"{spec.name}.log"), spec)
        proc.wait_for(lambda: procs[zi.name][0].poll() is None and zprobe.ready(plan, layout, zi)[0], 60,
                      "zookeeper")
        proc.wait_for(lambda: procs[ci.name][0].poll() is None and cprobe.ready(plan, layout, ci)[0], 180,
                      "config-db")
        TIMINGS["servers_ready_s"] = f"{time.monotonic() - t0:.1f}"
        raw = cprobe.session(plan, CONFIG_DB, timeout=5.0, auth=crender.login(layout, CONFIG_DB, crender.ADMIN_ROLE))
        s = Servers(plan, layout, procs, raw)
        yield s
    finally:
        if raw is not None:
            raw.cluster.shutdown()
        for p, spec in reversed(list(procs.values())):
            proc.stop(p, spec, timeout=spec.stop_timeout)
        if TIMINGS:
            print("\ntimings: " + ", ".join(f"{k}={v}" for k, v in TIMINGS.items()))


def api_login(s: Servers) -> tuple[str, str]:
    """contrail-api's Cassandra role, as its service.json gives it."""
    return crender.login(s.layout, CONFIG_DB, crender.CLIENT_ROLE[CONFIG_DB])


AUTH = ("contrail-api", "integration-only-secret")  # the replicas' ZooKeeper digest identity


@dataclass
class Env:
    servers: Servers
    loop: Loop
    store: ConfigStore
    zk: Coordinator  # replica 1
    zk2: Coordinator  # replica 2

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return self.loop.run(coro, timeout)


@pytest.fixture(scope="module")
def env(servers: Servers) -> Iterator[Env]:
    loop = Loop()
    c = cluster_of(servers.plan, CONFIG_DB)
    store = ConfigStore([str(h.ip) for h in c.hosts], c.cql_port, 1, layout=collection_layout, auth=api_login(servers))
    zk = Coordinator(servers.plan.zookeeper_servers, servers.plan.cluster_id, stale_check=store, auth=AUTH)
    zk2 = Coordinator(servers.plan.zookeeper_servers, servers.plan.cluster_id, stale_check=store, auth=AUTH)
    try:
        t0 = time.monotonic()
        loop.run(store.start())
        TIMINGS["store_start_with_schema_s"] = f"{time.monotonic() - t0:.2f}"
        assert loop.run(zk.start()) and loop.run(zk2.start())
        yield Env(servers, loop, store, zk, zk2)
    finally:
        for part in (zk, zk2, store):
            try:
                loop.run(part.close(), 30)
            except Exception:
                pass
        loop.close()


# --- helpers -------------------------------------------------------------------------------------

def uid() -> str:
    return str(uuidlib.uuid4())


def raw_row(s: Servers, table: str, key: str) -> dict[str, str]:
    rows = s.raw.execute(f"SELECT column1, value FROM config_db_uuid.{table} WHERE key = %s", (key.encode(),))
    return {r.column1.decode(): r.value for r in rows}


def obj(otype: str, fq: list[str], parent: tuple[str, str] | None = None, **props: Any) -> dict[str, Any]:
    o: dict[str, Any] = {"uuid": uid(), "type": otype, "fq_name": fq,
                         "id_perms": {"enable": True, "created": "2024-01-01T00:00:00.000000"},
                         "perms2": {"owner": "cloud-admin", "owner_access": 7, "global_access": 0, "share": []},
                         **props}
    if parent:
        o["parent_type"], o["parent_uuid"] = parent
    return o


async def make_project(store: ConfigStore, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    d = obj("domain", [name])
    p = obj("project", [name, "p"], ("domain", d["uuid"]))
    await store.create(d)
    await store.create(p)
    return d, p


# --- Cassandra ---------------------------------------------------------------------------------------

def test_create_read_update_delete_layout(env: Env) -> None:
    s, store = env.servers, env.store
    _, p = env.run(make_project(store, "crud"))
    ipam = obj("network_ipam", ["crud", "p", "ipam"], ("project", p["uuid"]))
    ipam2 = obj("network_ipam", ["crud", "p", "ipam2"], ("project", p["uuid"]))
    attr = {"ipam_subnets": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 24}}], "host_routes": None}
    vns = [obj("virtual_network", ["crud", "p", f"vn{i}"], ("project", p["uuid"]), display_name=f"VN {i}",
               annotations={"key_value_pair": [{"key": "k", "value": str(i)}]},
               network_ipam_refs=[{"to": ipam["fq_name"], "uuid": ipam["uuid"], "attr": attr}])
           for i in (3, 1, 2)]  # creation order differs from name order

    async def create_all() -> None:
        await store.create(ipam)
        await store.create(ipam2)
        for vn in vns:
            await store.create(vn)

    env.run(create_all())
    vn = vns[0]
    u = vn["uuid"]

    # the original wide-row layout
    row = raw_row(s, "obj_uuid_table", u)
    assert json.loads(row["fq_name"]) == ["crud", "p", "vn3"]
    assert json.loads(row["type"]) == "virtual_network"
    assert json.loads(row["parent_type"]) == "project"
    assert row["META:latest_col_ts"] == "null"
    assert row[f"parent:project:{p['uuid']}"] == "null"
    assert json.loads(row["prop:display_name"]) == "VN 3"
    # a map property: its shell, and one column per element (concurrent element updates all survive)
    assert json.loads(row["prop:annotations"]) == {"key_value_pair": []}
    assert json.loads(row["propm:annotations:k"]) == {"key": "k", "value": "3"}
    assert json.loads(row[f"ref:network_ipam:{ipam['uuid']}"]) == {"attr": attr, "is_weakref": False}
    assert not any(k.startswith(("children:", "backref:")) for k in row)
    # the claims carry the new object's fq_name (a revoke shadows its fq-name column with it)
    assert json.loads(raw_row(s, "obj_uuid_table", p["uuid"])[f"children:virtual_network:{u}"]) == \
        {"fq": ["crud", "p", "vn3"]}
    assert json.loads(raw_row(s, "obj_uuid_table", ipam["uuid"])[f"backref:virtual_network:{u}"]) == \
        {"attr": attr, "is_weakref": False, "fq": ["crud", "p", "vn3"]}
    assert raw_row(s, "obj_fq_name_table", "virtual_network")[f"crud:p:vn3:{u}"] == "null"

    # reads: children by creation time, back-refs with attr, refs resolved
    got = env.run(store.read(u))
    assert got is not None
    assert {k: got[k] for k in ("uuid", "type", "fq_name", "parent_type", "parent_uuid")} == \
        {"uuid": u, "type": "virtual_network", "fq_name": ["crud", "p", "vn3"], "parent_type": "project",
         "parent_uuid": p["uuid"]}
    assert got["network_ipam_refs"] == [{"to": ["crud", "p", "ipam"], "uuid": ipam["uuid"], "attr": attr}]
    assert got["id_perms"] == vn["id_perms"] and got["perms2"] == vn["perms2"]
    proj = env.run(store.read(p["uuid"]))
    assert proj is not None and proj["parent_type"] == "domain"
    assert [c["to"][-1] for c in proj["virtual_networks"]] == ["vn3", "vn1", "vn2"]
    assert [c["to"][-1] for c in proj["network_ipams"]] == ["ipam", "ipam2"]
    assert set(proj["virtual_networks"][0]) == {"to", "uuid"}
    back = env.run(store.read(ipam["uuid"]))
    assert back is not None
    assert sorted(b["uuid"] for b in back["virtual_network_back_refs"]) == sorted(v["uuid"] for v in vns)
    assert all(b["attr"] == attr for b in back["virtual_network_back_refs"])

    # fields: only those plus envelope, id_perms, perms2
    part = env.run(store.read(p["uuid"], fields=["virtual_networks"]))
    assert part is not None
    assert set(part) == {"uuid", "type", "fq_name", "parent_type", "parent_uuid", "id_perms", "perms2",
                         "virtual_networks"}
    part = env.run(store.read(u, fields=["display_name", "network_ipam_refs"]))
    assert part is not None and part["display_name"] == "VN 3" and "annotations" not in part
    assert part["network_ipam_refs"][0]["uuid"] == ipam["uuid"]
    many = env.run(store.read_many([vns[1]["uuid"], uid(), vns[2]["uuid"]], fields=["display_name"]))
    assert [m and m["display_name"] for m in many] == ["VN 1", None, "VN 2"]
    assert env.run(store.read(uid())) is None

    # update: set and unset props, replace the ref list (backref moves to the new target)
    env.run(store.update(u, {"display_name": "renamed", "annotations": None, "is_shared": True},
                         {"network_ipam_refs": [{"uuid": ipam2["uuid"], "attr": None}]}))
    got = env.run(store.read(u))
    assert got is not None and got["display_name"] == "renamed" and got["is_shared"] is True
    assert "annotations" not in got and "prop:annotations" not in raw_row(s, "obj_uuid_table", u)
    assert got["network_ipam_refs"] == [{"to": ["crud", "p", "ipam2"], "uuid": ipam2["uuid"], "attr": None}]
    assert f"backref:virtual_network:{u}" not in raw_row(s, "obj_uuid_table", ipam["uuid"])
    assert f"backref:virtual_network:{u}" in raw_row(s, "obj_uuid_table", ipam2["uuid"])

    # delete: own row, parent's child column, backrefs on targets, fq-name column
    assert env.run(store.delete(u)) is True
    assert raw_row(s, "obj_uuid_table", u) == {}
    assert f"children:virtual_network:{u}" not in raw_row(s, "obj_uuid_table", p["uuid"])
    assert f"backref:virtual_network:{u}" not in raw_row(s, "obj_uuid_table", ipam2["uuid"])
    assert f"crud:p:vn3:{u}" not in raw_row(s, "obj_fq_name_table", "virtual_network")
    assert env.run(store.read(u)) is None
    assert env.run(store.uuid_to_fq_name(u)) is None
    assert env.run(store.fq_name_to_uuid("virtual_network", ["crud", "p", "vn3"])) is None
    assert env.run(store.delete(u)) is False
    proj = env.run(store.read(p["uuid"]))
    assert proj is not None and [c["to"][-1] for c in proj["virtual_networks"]] == ["vn1", "vn2"]


def test_schema_created_by_concurrent_replicas(env: Env) -> None:
    """Three replicas creating the same fresh keyspaces at once converge on one schema."""
    c = cluster_of(env.servers.plan, CONFIG_DB)
    # keyspaces are made by the admin (the role keeper); a prefix's fresh ones are made here as admin
    admin = crender.login(env.servers.layout, CONFIG_DB, crender.ADMIN_ROLE)
    stores = [ConfigStore([str(h.ip) for h in c.hosts], c.cql_port, 1, prefix="race", auth=admin) for _ in range(3)]

    async def go() -> None:
        await asyncio.gather(*(st.start() for st in stores))
        try:
            o = obj("domain", ["race"])
            await stores[0].create(o)
            assert [await st.fq_name_to_uuid("domain", ["race"]) for st in stores] == [o["uuid"]] * 3
        finally:
            await asyncio.gather(*(st.close() for st in stores))

    env.run(go())
    ids = {r.table_name: r.id for r in env.servers.raw.execute(
        "SELECT table_name, id FROM system_schema.tables WHERE keyspace_name = 'race_config_db_uuid'")}
    assert set(ids) == {"obj_uuid_table", "obj_fq_name_table", "obj_shared_table"}


def test_latency(env: Env) -> None:
    store = env.store
    _, p = env.run(make_project(store, "lat"))
    objs = [obj("virtual_network", ["lat", "p", f"vn{i}"], ("project", p["uuid"]), display_name=f"vn{i}")
            for i in range(200)]

    async def timed() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        for o in objs:
            await store.create(o)
        t1 = time.perf_counter()
        for o in objs:
            assert await store.read(o["uuid"]) is not None
        t2 = time.perf_counter()
        await asyncio.gather(*(store.read(o["uuid"]) for o in objs))
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    c, r, par = env.run(timed())
    n = len(objs)
    TIMINGS["create_ms"] = f"{c / n * 1000:.2f}"
    TIMINGS["read_ms"] = f"{r / n * 1000:.2f}"
    TIMINGS["concurrent_reads_per_s"] = f"{n / par:.0f}"
    assert len(env.run(store.list("virtual_network", parent_uuids=[p["uuid"]]))) == n

    # every page of a result: a store whose driver pages every 7 rows
    c = cluster_of(env.servers.plan, CONFIG_DB)
    paged = ConfigStore([str(h.ip) for h in c.hosts], c.cql_port, 1, page_size=7, auth=api_login(env.servers))

    async def pages() -> None:
        await paged.start()
        try:
            everything = await paged.list("virtual_network")
            assert {u for _, u in everything} >= {o["uuid"] for o in objs}
            parent = await paged.read(p["uuid"])
            assert parent is not None
            assert [v["uuid"] for v in parent["virtual_networks"]] == [o["uuid"] for o in objs]
        finally:
            await paged.close()

    env.run(pages())


def test_fq_name_prefix_scan(env: Env) -> None:
    store = env.store
    ab, abc, ab_c = obj("tag", ["a", "b"]), obj("tag", ["a", "bc"]), obj("tag", ["a", "b", "c"])

    async def go() -> None:
        for o in (abc, ab_c, ab):
            await store.create(o)

    env.run(go())
    assert env.run(store.fq_name_to_uuid("tag", ["a", "b"])) == ab["uuid"]
    assert env.run(store.fq_name_to_uuid("tag", ["a", "bc"])) == abc["uuid"]
    assert env.run(store.fq_name_to_uuid("tag", ["a", "b", "c"])) == ab_c["uuid"]
    assert env.run(store.fq_name_to_uuid("tag", ["a"])) is None
    assert env.run(store.fq_name_to_uuid("tag", ["a", "bcd"])) is None
    assert env.run(store.fq_name_to_uuid("virtual-network", ["a", "b"])) is None
    assert env.run(store.uuid_to_fq_name(ab["uuid"])) == (["a", "b"], "tag")
    # a second object under one fq_name (a corrupt index) is a multi match, as in the original
    env.servers.raw.execute("INSERT INTO config_db_uuid.obj_fq_name_table (key, column1, value) VALUES (%s, %s, %s)",
                            (b"tag", f"a:b:{uid()}".encode(), "null"))
    with pytest.raises(MultiMatch):
        env.run(store.fq_name_to_uuid("tag", ["a", "b"]))


def test_list_filters_and_symmetric_refs(env: Env) -> None:
    store = env.store
    _, p1 = env.run(make_project(store, "l1"))
    _, p2 = env.run(make_project(store, "l2"))
    sg = obj("security_group", ["l1", "p", "sg"], ("project", p1["uuid"]))
    a = obj("virtual_machine_interface", ["l1", "p", "a"], ("project", p1["uuid"]),
            security_group_refs=[{"uuid": sg["uuid"], "attr": None}])
    b = obj("virtual_machine_interface", ["l1", "p", "b"], ("project", p1["uuid"]),
            virtual_machine_interface_refs=[{"uuid": a["uuid"], "attr": None}])
    c = obj("virtual_machine_interface", ["l2", "p", "c"], ("project", p2["uuid"]),
            security_group_refs=[{"uuid": sg["uuid"], "attr": None}])

    async def go() -> None:
        for o in (sg, a, b, c):
            await store.create(o)

    env.run(go())
    t = "virtual_machine_interface"

    def names(entries: list[tuple[list[str], str]]) -> list[str]:
        return sorted(fq[-1] for fq, _ in entries)

    assert {"a", "b", "c"} <= set(names(env.run(store.list(t))))
    assert names(env.run(store.list(t, parent_uuids=[p1["uuid"]]))) == ["a", "b"]
    assert names(env.run(store.list(t, parent_uuids=[p1["uuid"], p2["uuid"]]))) == ["a", "b", "c"]
    assert names(env.run(store.list(t, back_ref_uuids=[sg["uuid"]]))) == ["a", "c"]
    assert names(env.run(store.list(t, parent_uuids=[p1["uuid"]], back_ref_uuids=[sg["uuid"]]))) == ["a"]
    assert names(env.run(store.list(t, obj_uuids=[a["uuid"], c["uuid"], sg["uuid"]]))) == ["a", "c"]
    assert env.run(store.list(t, parent_uuids=[])) == []
    assert env.run(store.list("security_group", parent_uuids=[p2["uuid"]])) == []
    # a ref between two objects of one type is a ref: on both rows
    assert f"ref:virtual_machine_interface:{b['uuid']}" in raw_row(env.servers, "obj_uuid_table", a["uuid"])
    ra = env.run(store.read(a["uuid"]))
    assert ra is not None and [r["uuid"] for r in ra["virtual_machine_interface_refs"]] == [b["uuid"]]
    assert "virtual_machine_interface_back_refs" not in ra
    assert names(env.run(store.list(t, back_ref_uuids=[a["uuid"]]))) == ["b"]
    env.run(store.delete(b["uuid"]))
    assert f"ref:virtual_machine_interface:{b['uuid']}" not in raw_row(env.servers, "obj_uuid_table", a["uuid"])


def test_ref_update_relax_shared_kv(env: Env) -> None:
    s, store = env.servers, env.store
    _, p = env.run(make_project(store, "rr"))
    ipam = obj("network_ipam", ["rr", "p", "ipam"], ("project", p["uuid"]))
    vn = obj("virtual_network", ["rr", "p", "vn"], ("project", p["uuid"]),
             perms2={"owner": "x", "owner_access": 7, "global_access": 5,
                     "share": [{"tenant": "tenant:" + p["uuid"], "tenant_access": 4}]})

    async def go() -> None:
        await store.create(ipam)
        await store.create(vn)
        await store.ref_update(vn["uuid"], "network-ipam", ipam["uuid"], {"x": 1}, "ADD")

    env.run(go())
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and got["network_ipam_refs"] == [{"to": ipam["fq_name"], "uuid": ipam["uuid"],
                                                             "attr": {"x": 1}}]
    env.run(store.ref_update(vn["uuid"], "network_ipam", ipam["uuid"], None, "DELETE"))
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and "network_ipam_refs" not in got
    assert f"backref:virtual_network:{vn['uuid']}" not in raw_row(s, "obj_uuid_table", ipam["uuid"])

    # relax: the referred object lists the referrer; deleting it drops the referrer's ref
    env.run(store.ref_update(vn["uuid"], "network_ipam", ipam["uuid"], None, "ADD"))
    env.run(store.relax_ref(vn["uuid"], ipam["uuid"]))
    got = env.run(store.read(ipam["uuid"]))
    assert got is not None and got["relaxed_back_refs"] == [vn["uuid"]]
    assert env.run(store.delete(ipam["uuid"]))
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and "network_ipam_refs" not in got
    assert f"ref:network_ipam:{ipam['uuid']}" not in raw_row(s, "obj_uuid_table", vn["uuid"])

    # shared table, cleaned on delete from perms2
    env.run(store.shared_add("virtual-network", vn["uuid"], "tenant", p["uuid"], 4))
    env.run(store.shared_add("virtual_network", vn["uuid"], "global", "", 5))
    assert env.run(store.shared_list("virtual_network", "tenant", p["uuid"])) == [(vn["uuid"], 4)]
    assert env.run(store.shared_list("virtual_network", "global", "")) == [(vn["uuid"], 5)]
    assert raw_row(s, "obj_shared_table", "virtual_network")[f"tenant:{p['uuid']}:{vn['uuid']}"] == "4"
    env.run(store.delete(vn["uuid"]))
    assert env.run(store.shared_list("virtual_network", "tenant", p["uuid"])) == []
    assert env.run(store.shared_list("virtual_network", "global", "")) == []

    # useragent kv
    env.run(store.kv_store("neutron:k1", "v1"))
    env.run(store.kv_store("neutron:k2", {"a": 1}))
    assert env.run(store.kv_retrieve("neutron:k1")) == "v1"
    assert env.run(store.kv_retrieve("neutron:k2")) == '{"a":1}'
    assert {"key": "neutron:k1", "value": "v1"} in env.run(store.kv_all())
    assert env.run(store.kv_delete("neutron:k1")) is True
    assert env.run(store.kv_delete("neutron:k1")) is False
    assert env.run(store.kv_retrieve("neutron:k1")) is None


def test_large_object_is_split_below_the_batch_limit(env: Env) -> None:
    """A create far above Cassandra's 50 KiB multi-partition batch limit still works."""
    store = env.store
    _, p = env.run(make_project(store, "big"))
    ipam = obj("network_ipam", ["big", "p", "ipam"], ("project", p["uuid"]))
    big = {"ipam_subnets": [{"subnet": {"ip_prefix": f"10.{i // 256}.{i % 256}.0", "ip_prefix_len": 24},
                             "subnet_name": "x" * 100} for i in range(1000)]}
    vn = obj("virtual_network", ["big", "p", "vn"], ("project", p["uuid"]),
             annotations={"key_value_pair": [{"key": str(i), "value": "y" * 200} for i in range(500)]},
             network_ipam_refs=[{"uuid": ipam["uuid"], "attr": big}])

    async def go() -> None:
        await store.create(ipam)
        await store.create(vn)
        await store.update(vn["uuid"], {}, {"network_ipam_refs": [{"uuid": ipam["uuid"], "attr": {**big, "v": 2}}]})

    env.run(go())
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and got["network_ipam_refs"][0]["attr"]["v"] == 2
    assert len(got["annotations"]["key_value_pair"]) == 500
    back = env.run(store.read(ipam["uuid"]))
    assert back is not None and back["virtual_network_back_refs"][0]["attr"]["v"] == 2


def test_concurrent_element_and_ref_updates_all_survive(env: Env) -> None:
    """Element updates and ref adds write only their own columns: 20 concurrent ones all survive,
    on both sides of each ref; a whole-value update replaces the elements it had."""
    store = env.store
    _, p = env.run(make_project(store, "elems"))
    pols = [obj("network_policy", ["elems", "p", f"np{i}"], ("project", p["uuid"])) for i in range(10)]
    vn = obj("virtual_network", ["elems", "p", "vn"], ("project", p["uuid"]),
             annotations={"key_value_pair": [{"key": "a", "value": "0"}]})

    async def go() -> None:
        for o in [*pols, vn]:
            await store.create(o)
        await asyncio.gather(
            *(store.update_elements(vn["uuid"], [("annotations", f"k{i}", {"key": f"k{i}", "value": str(i)})],
                                    shells={"annotations": {"key_value_pair": []}}) for i in range(10)),
            *(store.ref_ops(vn["uuid"], adds=[("network_policy", np["uuid"], {"sequence": None})]) for np in pols))

    env.run(go())
    got = env.run(store.read(vn["uuid"]))
    assert got is not None
    assert sorted(e["key"] for e in got["annotations"]["key_value_pair"]) == ["a", *sorted(f"k{i}" for i in range(10))]
    assert sorted(r["uuid"] for r in got["network_policy_refs"]) == sorted(np["uuid"] for np in pols)
    for np in pols:
        back = env.run(store.read(np["uuid"]))
        assert back is not None and [b["uuid"] for b in back["virtual_network_back_refs"]] == [vn["uuid"]]
    # a whole value replaces the elements (a is kept, k0.. are gone), positions keep numeric order
    env.run(store.update(vn["uuid"], {"annotations": {"key_value_pair": [{"key": "a", "value": "1"}]}}))
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and got["annotations"] == {"key_value_pair": [{"key": "a", "value": "1"}]}
    assert env.run(store.read_elements(vn["uuid"], "annotations")) == [("a", {"key": "a", "value": "1"})]


def test_claims_refuse_rows_being_deleted_or_gone(env: Env) -> None:
    """A create or ref add claims the rows it points to: a row marked as being deleted is waited
    for, then refused (409); a gone parent is 400, a gone target 404; the refused write leaves no
    column behind on the target."""
    s, store = env.servers, env.store
    _, p = env.run(make_project(store, "claims"))
    np = obj("network_policy", ["claims", "p", "np"], ("project", p["uuid"]))
    env.run(store.create(np))
    env.run(store.mark_deleting(p["uuid"]))
    vn = obj("virtual_network", ["claims", "p", "vn"], ("project", p["uuid"]))
    t0 = time.monotonic()
    with pytest.raises(Conflict, match="being deleted"):
        env.run(store.create(vn))
    assert time.monotonic() - t0 >= 1.5  # it waited for the delete to finish or give up
    assert f"children:virtual_network:{vn['uuid']}" not in raw_row(s, "obj_uuid_table", p["uuid"])
    assert env.run(store.read(vn["uuid"])) is None
    env.run(store.unmark_deleting(p["uuid"]))  # the delete gave up: the create goes through
    env.run(store.create(vn))
    row = env.run(store.read_row(p["uuid"]))
    assert row is not None and vn["uuid"] in row[1].written and row[1].deleting is None
    # a target deleted: ref add 404, create with a ref to it 404, nothing left on either row
    env.run(store.delete(np["uuid"]))
    with pytest.raises(NotFound):
        env.run(store.ref_ops(vn["uuid"], adds=[("network_policy", np["uuid"], None)]))
    vn2 = obj("virtual_network", ["claims", "p", "vn2"], ("project", p["uuid"]),
              network_policy_refs=[{"uuid": np["uuid"], "attr": None}])
    with pytest.raises(NotFound):
        env.run(store.create(vn2))
    assert raw_row(s, "obj_uuid_table", np["uuid"]) == {}
    assert env.run(store.read(vn2["uuid"])) is None
    # a parent that is gone: 400 (as R2005's "Parent ... does not exist")
    gone = obj("project", ["claims", "gone"], ("domain", p["parent_uuid"]))
    env.run(store.create(gone))
    env.run(store.delete(gone["uuid"]))
    with pytest.raises(ConfigError, match="does not exist") as info:
        env.run(store.create(obj("virtual_network", ["claims", "gone", "vn"], ("project", gone["uuid"]))))
    assert info.value.status == 400


class Pause:
    """Freezes a store's creates right after their claim was checked, before their commit: what a
    replica stopped by SIGSTOP (or a long GC stall) between the two steps does."""

    def __init__(self, store: ConfigStore) -> None:
        self.gate = asyncio.Event()
        self.reached = asyncio.Event()
        check = store._check_targets

        async def paused(targets: dict[str, str], parent: str | None = None) -> None:
            await check(targets, parent)
            self.reached.set()
            await self.gate.wait()

        store._check_targets = paused  # type: ignore[method-assign]


async def judge_and_delete(store: ConfigStore, uuid: str) -> None:
    """A delete as the service layer decides it (crud.Crud.delete): mark, read the links, refuse
    live ones, revoke dead creates, delete."""
    await store.mark_deleting(uuid)
    decoded = await store.read_row(uuid)
    assert decoded is not None
    _, links = decoded
    sources = [u for _, u, _ in links.children] + [u for _, u, _ in links.backrefs]
    seen = await store.visible(sources)
    if any(u in seen or store.claim_is_live(links.written.get(u)) for u in sources):
        await store.unmark_deleting(uuid)
        raise Conflict(f"{uuid} still has children or referrers")
    for t, u, _ in links.children + [(t, u, 0) for t, u, _ in links.backrefs]:
        await store.revoke(t, u, links.claimed.get(u), links.written[u])
    await store.delete(uuid, decoded)


@pytest.fixture(scope="module")
def quick(env: Env) -> Iterator[tuple[ConfigStore, ConfigStore]]:
    """Two more replicas whose creates have a 1 s deadline (claims stale after 6 s)."""
    c = cluster_of(env.servers.plan, CONFIG_DB)
    made = [ConfigStore([str(h.ip) for h in c.hosts], c.cql_port, 1, layout=collection_layout, create_deadline=1.0,
                        auth=api_login(env.servers)) for _ in range(2)]
    try:
        for st in made:
            env.run(st.start())
        yield made[0], made[1]
    finally:
        for st in made:
            env.run(st.close(), 30)


@pytest.mark.parametrize("dies_after_commit", [False, True])
def test_paused_create_cannot_outlive_its_parents_delete(env: Env, quick: tuple[ConfigStore, ConfigStore],
                                                         dies_after_commit: bool) -> None:
    """Issue 20: a create frozen between its claim and its commit for longer than the claim window,
    while its parent and its ref target are deleted through another replica. The delete judges
    the claim dead and revokes it; the create's late commit lands under the revoke's tombstones:
    it is never visible (no orphan, no dangling ref, no fq-name entry), and the create answers
    503 (nothing created) - or, if its replica died right after the commit, nothing answers and
    the object still never appears."""
    s = env.servers
    creator, deleter = quick
    name = f"pause{int(dies_after_commit)}"
    _, p = env.run(make_project(deleter, name))
    ipam = obj("network_ipam", [name, "p", "ipam"], ("project", p["uuid"]))
    env.run(deleter.create(ipam))
    vn = obj("virtual_network", [name, "p", "vn"], ("project", p["uuid"]),
             network_ipam_refs=[{"uuid": ipam["uuid"], "attr": None}])
    pause = Pause(creator)
    if dies_after_commit:
        async def died(*_: object) -> bool:
            raise asyncio.CancelledError  # the process is gone: no undo, no answer
        creator.revoke_unseen = died  # type: ignore[method-assign]
    fut = asyncio.run_coroutine_threadsafe(creator.create(vn), env.loop.loop)
    env.run(asyncio.wait_for(pause.reached.wait(), 30))
    # while the claim is young the delete refuses (a create in progress), for the ipam and the project
    with pytest.raises(Conflict):
        env.run(judge_and_delete(deleter, ipam["uuid"]))
    time.sleep(deleter.link_stale + 0.5)
    env.run(judge_and_delete(deleter, ipam["uuid"]))
    env.run(judge_and_delete(deleter, p["uuid"]))
    assert env.run(deleter.read(p["uuid"])) is None
    env.loop.loop.call_soon_threadsafe(pause.gate.set)  # SIGCONT: the commit is sent now, late
    if dies_after_commit:
        with pytest.raises((asyncio.CancelledError, Exception)):
            fut.result(30)
    else:
        with pytest.raises(Unavailable, match="nothing was created"):
            fut.result(30)
    # the late commit is in Cassandra, under tombstones one microsecond later: invisible everywhere
    for st in (creator, deleter, env.store):
        assert env.run(st.read(vn["uuid"])) is None
        assert env.run(st.fq_name_to_uuid("virtual_network", vn["fq_name"])) is None
        assert vn["uuid"] not in [u for _, u in env.run(st.list("virtual_network"))]
        assert env.run(st.visible([vn["uuid"]])) == {}
    assert not any(k.startswith("type") for k in raw_row(s, "obj_uuid_table", vn["uuid"]))
    assert not any(vn["uuid"] in k for k in raw_row(s, "obj_fq_name_table", "virtual_network"))


def test_create_within_its_deadline_blocks_the_delete(env: Env, quick: tuple[ConfigStore, ConfigStore]) -> None:
    """The other side of the fence: a create that committed within its deadline is acknowledged,
    and a delete judging its parent afterwards - even once the claim is old - sees it: 409."""
    creator, deleter = quick
    _, p = env.run(make_project(deleter, "fenced-ok"))
    vn = obj("virtual_network", ["fenced-ok", "p", "vn"], ("project", p["uuid"]))
    env.run(creator.create(vn))
    time.sleep(deleter.link_stale + 0.5)
    with pytest.raises(Conflict):
        env.run(judge_and_delete(deleter, p["uuid"]))
    assert env.run(deleter.read(vn["uuid"])) is not None and env.run(deleter.read(p["uuid"])) is not None


class TimesOut:
    """Makes a store's create commit answer "write timed out" (the driver's OperationTimedOut),
    held until ``gate`` is set: after applying the write (``applies``), as a coordinator that
    wrote a quorum but lost the answer, or without applying it."""

    def __init__(self, store: ConfigStore, applies: bool) -> None:
        self.gate = asyncio.Event()
        self.reached = asyncio.Event()
        write = store._write

        async def timing_out(muts: list[Any], commit: list[Any] | None = None) -> None:
            if commit is None:
                await write(muts, commit)
                return
            if applies:
                await write(muts, commit)
            self.reached.set()
            await self.gate.wait()
            raise Unavailable("Cassandra write timed out") from OperationTimedOut(last_host="test")

        store._write = timing_out  # type: ignore[method-assign]


def replica(env: Env, create_deadline: float = 10.0) -> ConfigStore:
    """One more contrail-api replica's store (started; the caller closes it)."""
    c = cluster_of(env.servers.plan, CONFIG_DB)
    st = ConfigStore([str(h.ip) for h in c.hosts], c.cql_port, 1, layout=collection_layout,
                     create_deadline=create_deadline, auth=api_login(env.servers))
    env.run(st.start())
    return st


@pytest.mark.parametrize("late", [False, True])
def test_a_timed_out_create_that_applied_is_never_undone_under_a_child(
        env: Env, quick: tuple[ConfigStore, ConfigStore], late: bool) -> None:
    """A create whose write applied on a quorum but whose answer timed out was visible meanwhile: a
    child was created under it through another replica. The create must not be undone (that would
    leave the child an orphan and undo a write others read). Answered in time it is acknowledged;
    answered after its deadline the outcome is reported unknown (504); either way the parent and
    its child stay, and its delete mark is gone (new children are not refused)."""
    slow = replica(env, create_deadline=1.0 if late else 10.0)
    try:
        other = quick[1]
        name = f"applied{int(late)}"
        d = obj("domain", [name])
        env.run(other.create(d))
        p = obj("project", [name, "p"], ("domain", d["uuid"]))
        hold = TimesOut(slow, applies=True)
        fut = asyncio.run_coroutine_threadsafe(slow.create(p), env.loop.loop)
        env.run(asyncio.wait_for(hold.reached.wait(), 30))
        vn = obj("virtual_network", [name, "p", "vn"], ("project", p["uuid"]))
        env.run(other.create(vn))  # the parent is visible: its child commits
        if late:
            time.sleep(1.2)
        env.loop.loop.call_soon_threadsafe(hold.gate.set)
        if late:
            with pytest.raises(OutcomeUnknown, match="applied"):
                fut.result(30)
        else:
            fut.result(30)  # acknowledged: it applied within its deadline
        for st in (slow, other, env.store):
            st.forget(p["uuid"])
            assert env.run(st.read(p["uuid"])) is not None, "the parent was undone under its child"
            assert env.run(st.read(vn["uuid"])) is not None
            assert env.run(st.fq_name_to_uuid("project", p["fq_name"])) == p["uuid"]
        row = env.run(other.read_row(p["uuid"]))
        assert row is not None and row[1].deleting is None
        env.run(other.create(obj("virtual_network", [name, "p", "vn2"], ("project", p["uuid"]))))
    finally:
        env.run(slow.close(), 30)


def test_a_timed_out_create_that_did_not_apply_is_revoked(env: Env, quick: tuple[ConfigStore, ConfigStore]) -> None:
    """The other branch: the write did not apply. The create answers 503 "nothing was created",
    its late landing is shadowed, nothing of it is left (no claim column on the parent, no mark),
    and a retry of it - same uuid, through another replica - succeeds and takes children."""
    s = env.servers
    slow, other = replica(env), quick[1]
    d = obj("domain", ["unapplied"])
    env.run(other.create(d))
    p = obj("project", ["unapplied", "p"], ("domain", d["uuid"]))
    hold = TimesOut(slow, applies=False)
    hold.gate.set()
    try:
        with pytest.raises(Unavailable, match="nothing was created"):
            env.run(slow.create(p))
    finally:
        env.run(slow.close(), 30)
    assert env.run(other.read(p["uuid"])) is None
    assert raw_row(s, "obj_uuid_table", p["uuid"]) == {}
    assert not any(p["uuid"] in k for k in raw_row(s, "obj_uuid_table", d["uuid"]))
    env.run(other.create(p))  # the retry (a later fence) is visible and takes children
    env.run(other.create(obj("virtual_network", ["unapplied", "p", "vn"], ("project", p["uuid"]))))
    assert env.run(env.store.read(p["uuid"])) is not None


def test_a_judge_never_revokes_a_visible_create(env: Env) -> None:
    """A delete (or a lock takeover) that judged a claim dead from an earlier read revokes it only
    if the object is still invisible once the judge's mark is written: a create that became
    visible meanwhile stands, and the judge is told so (its delete answers 409)."""
    store = env.store
    _, p = env.run(make_project(store, "judged"))
    vn = obj("virtual_network", ["judged", "p", "vn"], ("project", p["uuid"]))
    old = Fence(time.time_ns() // 1000 - 100_000_000, time.monotonic())  # claimed 100 s ago
    env.run(store.create(vn, old))  # its commit landed, late
    assert env.run(store.revoke("virtual_network", vn["uuid"], vn["fq_name"], old.ts)) is False
    store.forget(vn["uuid"])
    assert env.run(store.read(vn["uuid"])) is not None
    row = env.run(store.read_row(vn["uuid"]))
    assert row is not None and row[1].deleting is None
    ghost = obj("virtual_network", ["judged", "p", "ghost"], ("project", p["uuid"]))
    assert env.run(store.revoke("virtual_network", ghost["uuid"], ghost["fq_name"], old.ts)) is True
    env.run(store.create(ghost, old))  # the dead create's commit lands after its revoke: invisible
    store.forget(ghost["uuid"])
    assert env.run(store.read(ghost["uuid"])) is None
    assert env.run(store.fq_name_to_uuid("virtual_network", ghost["fq_name"])) is None


def test_delete_wins_over_a_row_written_by_a_fast_clock(env: Env) -> None:
    """A replica whose clock ran 60 s ahead created an object (every column 60 s in the future);
    a delete through a correct replica still removes it: its tombstones go after the row's newest
    column, not at the deleter's clock."""
    store = env.store
    _, p = env.run(make_project(store, "skew"))
    vn = obj("virtual_network", ["skew", "p", "vn"], ("project", p["uuid"]))
    ahead = Fence(time.time_ns() // 1000 + 60_000_000, time.monotonic())
    env.run(store.create(vn, ahead))
    assert env.run(store.delete(vn["uuid"]))
    store.forget(vn["uuid"])
    assert env.run(store.read(vn["uuid"])) is None
    assert env.run(store.fq_name_to_uuid("virtual_network", vn["fq_name"])) is None
    assert not any(vn["uuid"] in k for k in raw_row(env.servers, "obj_uuid_table", p["uuid"]))


def test_later_change_wins_over_a_fast_clocks_write(env: Env) -> None:
    """A replica whose clock ran 60 s ahead created an object and set a property; a change that
    starts after those were acknowledged, through a replica with the true clock, still wins:
    its write time goes after the row's last change, not at its own clock."""
    store = env.store
    _, p = env.run(make_project(store, "later-wins"))
    np = obj("network_policy", ["later-wins", "p", "np"], ("project", p["uuid"]))
    env.run(store.create(np))
    vn = obj("virtual_network", ["later-wins", "p", "vn"], ("project", p["uuid"]), display_name="first")
    env.run(store.create(vn, Fence(time.time_ns() // 1000 + 60_000_000, time.monotonic())))
    env.run(store.update(vn["uuid"], {"display_name": "second"}))
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and got["display_name"] == "second"
    # a ref added, removed and added again: each later change wins
    for op in ("ADD", "DELETE", "ADD"):
        env.run(store.ref_update(vn["uuid"], "network_policy", np["uuid"], None, op))
    got = env.run(store.read(vn["uuid"]))
    assert got is not None and [r["uuid"] for r in got.get("network_policy_refs", [])] == [np["uuid"]]
    env.run(store.update_elements(vn["uuid"], [("annotations", "k", {"key": "k", "value": "v"})],
                                  shells={"annotations": {"key_value_pair": []}}))
    env.run(store.update_elements(vn["uuid"], [("annotations", "k", None)]))
    assert env.run(store.read_elements(vn["uuid"], "annotations")) == []


def test_clock_samples_from_the_config_db(env: Env) -> None:
    """The clock guard's measurement: each node's clock (one query pinned to it) against ours."""
    samples = env.run(env.store.clock_samples())
    assert len(samples) == 1
    [s] = samples
    assert abs(s.offset) < 0.5 and 0 < s.uncertainty < 1.0


# --- ZooKeeper ---------------------------------------------------------------------------------------

def test_session_state(env: Env) -> None:
    assert env.zk.connected and env.zk2.connected
    dead = Coordinator(f"{PREFIX}.1:2999", "nowhere")  # nothing listens there
    try:
        assert env.run(dead.start(timeout=1.0)) is False
        assert dead.connected is False
    finally:
        env.run(dead.close())


def test_fq_lock_one_winner_of_20(env: Env) -> None:
    ids = [uid() for _ in range(20)]

    async def race() -> list[bool]:
        return list(await asyncio.gather(*((env.zk if i % 2 else env.zk2).create_fq_lock(
            "virtual-network", ["d", "p", "race"], u) for i, u in enumerate(ids))))

    results = env.run(race())
    assert results.count(True) == 1
    winner = ids[results.index(True)]
    assert env.run(env.zk.read_fq_lock("virtual_network", ["d", "p", "race"])) == winner
    assert env.run(env.zk.create_fq_lock("virtual_network", ["d", "p", "race"], winner)) is True  # idempotent
    assert env.run(env.zk2.delete_fq_lock("virtual_network", ["d", "p", "race"], ids[0 if winner != ids[0] else 1])) \
        is False
    assert env.run(env.zk2.delete_fq_lock("virtual_network", ["d", "p", "race"])) is True
    assert env.run(env.zk.read_fq_lock("virtual_network", ["d", "p", "race"])) is None
    # a '/' in a name does not nest znodes
    assert env.run(env.zk.create_fq_lock("subnet", ["10.0.0.0/24"], winner)) is True
    assert env.run(env.zk.read_fq_lock("subnet", ["10.0.0.0/24"])) == winner


def test_stale_lock_takeover(env: Env) -> None:
    store = env.store
    quick = Coordinator(env.servers.plan.zookeeper_servers, env.servers.plan.cluster_id, stale_lock_seconds=1.0,
                        stale_check=store, auth=AUTH)
    env.run(quick.start())
    try:
        ghost, new = uid(), uid()  # ghost: a lock whose object never reached Cassandra
        assert env.run(quick.create_fq_lock("project", ["stale", "p"], ghost))
        assert env.run(quick.create_fq_lock("project", ["stale", "p"], new)) is False  # too young
        time.sleep(1.2)
        assert env.run(quick.create_fq_lock("project", ["stale", "p"], new)) is True  # stale: replaced
        assert env.run(quick.read_fq_lock("project", ["stale", "p"])) == new
        # an old lock whose uuid is in Cassandra is not stale
        d = obj("domain", ["stale-real"])
        env.run(store.create(d))
        assert env.run(quick.create_fq_lock("domain", ["stale-real"], d["uuid"]))
        time.sleep(1.2)
        assert env.run(quick.create_fq_lock("domain", ["stale-real"], uid())) is False
        # the default rule (5 s) on the regular coordinator: young, so kept
        assert env.run(env.zk.create_fq_lock("project", ["stale", "p"], uid())) is False
    finally:
        env.run(quick.close())


def test_stale_fenced_lock_is_revoked_before_takeover(env: Env) -> None:
    """A lock whose create carries a fence is stale only after the claim window (by the fence, not
    the znode), and is taken over only after its holder is revoked: the holder's commit, landing
    after the takeover at its fence, stays invisible (one object per fq_name)."""
    store, zk = env.store, env.zk
    assert zk.stale_check is store and hasattr(store, "revoke")
    fq = ["fenced-lock"]
    ghost, young, new = uid(), uid(), uid()
    old = Fence(time.time_ns() // 1000 - 100_000_000, time.monotonic())  # a create paused 100 s ago
    assert env.run(zk.create_fq_lock("domain", fq, ghost, fence_ts=old.ts))
    assert env.run(zk.read_fq_lock("domain", fq)) == ghost  # the fence is not part of the holder
    assert env.run(zk2_take(env, fq, new))  # stale: revoked, then replaced
    assert env.run(zk.read_fq_lock("domain", fq)) == new
    env.run(store.create(obj("domain", fq) | {"uuid": ghost}, old))  # the paused commit lands now
    store.forget(ghost)
    assert env.run(store.read(ghost)) is None
    assert env.run(store.fq_name_to_uuid("domain", fq)) is None
    # a young fenced lock is kept, whoever asks; the same uuid re-takes it with a new fence
    fq2 = ["fenced-young"]
    assert env.run(zk.create_fq_lock("domain", fq2, young, fence_ts=Fence.start().ts))
    assert env.run(zk2_take(env, fq2, new)) is False
    assert env.run(env.zk2.create_fq_lock("domain", fq2, young, fence_ts=Fence.start().ts))


async def zk2_take(env: Env, fq: list[str], uuid: str) -> bool:
    env.zk2.stale_check = env.store
    return await env.zk2.create_fq_lock("domain", fq, uuid, fence_ts=Fence.start().ts)


def test_index_allocator_two_replicas(env: Env) -> None:
    a1 = IndexAllocator(env.zk, "/test/ids/", 1000)
    a2 = IndexAllocator(env.zk2, "/test/ids/", 1000)  # same path, another session = another replica

    async def burst(n: int, tag: str) -> list[int]:
        return list(await asyncio.gather(*(asyncio.to_thread((a1 if k % 2 else a2).alloc, f"{tag}{k}")
                                           for k in range(n))))

    t0 = time.perf_counter()
    ids = env.run(burst(100, "v"))
    dt = time.perf_counter() - t0
    TIMINGS["allocs_per_s_2_replicas"] = f"{100 / dt:.0f}"
    assert len(set(ids)) == 100 and all(0 <= i < 1000 for i in ids)
    children = env.zk.children(env.zk.path("/test/ids"))
    assert len(children) == 100
    values = {a1.read(i) for i in ids}
    assert values == {f"v{k}" for k in range(100)}  # none lost, none overwritten
    # frees by one replica, allocations by the other: still distinct
    for i in ids[:10]:
        assert a2.free(i)
    more = env.run(burst(20, "w"))
    assert len(set(more) | set(ids[10:])) == 110
    assert len(env.zk.children(env.zk.path("/test/ids"))) == 110

    # a full allocator refreshes once before giving up (indexes freed by the other replica)
    s1, s2 = IndexAllocator(env.zk, "/test/small/", 5, start=10), IndexAllocator(env.zk2, "/test/small/", 5, start=10)
    got = [s1.alloc(f"x{k}") for k in range(5)]
    assert got == [10, 11, 12, 13, 14]
    with pytest.raises(Exhausted):
        s2.alloc("late")
    assert s2.free(12)
    assert s1.alloc("again") == 12
    assert s1.read(12) == "again"
    assert s1.reserve(12, "again") is True and s1.reserve(12, "other") is False
    assert s1.free(14)
    assert s1.alloc("rev", reverse=True) == 14

    # the original VN and SG id allocators
    vn_ids, sg_ids = virtual_network_allocator(env.zk), security_group_allocator(env.zk2)
    vn_id = vn_ids.alloc_id("d:p:vn")
    assert vn_id == 1 and vn_ids.read_id(1) == "d:p:vn"
    assert env.zk.get(env.zk.path("/id/virtual-networks/0000000000")) is not None
    sg_id = sg_ids.alloc_id("d:p:sg")
    assert sg_id == 8_000_001 and sg_ids.read(0) == SG_RESERVED
    assert sg_ids.free_id(sg_id, "d:p:other") is False  # held by another value: kept
    assert sg_ids.free_id(sg_id, "d:p:sg") is True and sg_ids.read_id(sg_id) is None
    assert sg_ids.free(0) is False  # reserved


def test_subnet_allocator_exhausts_a_29(env: Env) -> None:
    vn, cidr = ["default-domain", "p", "vn/a"], "10.1.1.0/29"
    reserved = {0, 7, 6, 5}  # network, broadcast, gateway, DNS
    usable = 8 - len(reserved)

    async def allocs() -> list[int | Exception]:
        return list(await asyncio.gather(*((env.zk if k % 2 else env.zk2).alloc_ip(vn, cidr, f"iip{k}", reserved)
                                           for k in range(usable + 2)), return_exceptions=True))

    results = env.run(allocs())
    offsets = sorted(r for r in results if isinstance(r, int))
    errors = [r for r in results if isinstance(r, Exception)]
    assert offsets == [1, 2, 3, 4]
    assert len(errors) == 2 and all(isinstance(e, Exhausted) and e.status == 409 for e in errors)
    assert "exhausted subnet(10.1.1.0/29)" in str(errors[0])
    assert env.run(env.zk.allocated_count(vn, cidr)) == usable
    znode = env.zk.path("/api-server/subnets/default-domain:p:vn%2Fa:10.1.1.0/29/0000000001")
    assert env.zk.get(znode) is not None
    # reserve / free
    assert env.run(env.zk.reserve_ip(vn, cidr, 3, "someone")) is False
    owner = env.run(env.zk.read_ip(vn, cidr, 3))
    assert env.run(env.zk2.free_ip(vn, cidr, 3, "wrong-owner")) is False
    assert env.run(env.zk2.free_ip(vn, cidr, 3, owner))
    assert env.run(env.zk.reserve_ip(vn, cidr, 3, "someone")) is True
    assert env.run(env.zk.reserve_ip(vn, cidr, 3, "someone")) is True  # idempotent
    # highest first, as R2005 without addr_from_start
    assert env.run(env.zk.alloc_ip(vn, "10.1.2.0/29", "r", reserved, reverse=True)) == 4
    assert env.run(env.zk.alloc_ip(vn, "10.1.2.0/29", "r2", reserved, start=1, end=2)) == 1
    env.run(env.zk.delete_subnet(vn, cidr))
    assert env.run(env.zk.allocated_count(vn, cidr)) == 0


def test_session_lost_reconnects(env: Env) -> None:
    """An expired session (LOST) is replaced by a new one; the coordinator keeps serving."""
    hosts, cid = env.servers.plan.zookeeper_servers, env.servers.plan.cluster_id
    c = Coordinator(hosts, cid, timeout=4.0, auth=AUTH)
    states: list[str] = []
    c.add_listener(states.append)
    try:
        assert env.run(c.start())
        session, epoch = c.client.client_id, c.epoch
        # the classic way to expire a session: a second client takes it over and closes it
        other = KazooClient(hosts=hosts, client_id=session, timeout=4.0)
        other.start(10)
        other.stop()
        other.close()
        t0 = time.monotonic()
        proc.wait_for(lambda: "LOST" in states and c.connected, 30, "a new zookeeper session", interval=0.05)
        TIMINGS["zk_lost_to_new_session_s"] = f"{time.monotonic() - t0:.2f}"
        assert c.client.client_id[0] != session[0]
        assert c.epoch > epoch
        assert env.run(c.create_fq_lock("project", ["after", "lost"], uid())) is True
    finally:
        env.run(c.close())


def test_the_cluster_znodes_are_the_replicas_own(env: Env) -> None:
    """Every znode the replicas make is readable and writable by their digest identity only: an
    anonymous client (or another identity) is refused; another replica with the identity is not."""
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_digest_acl

    hosts, cid = env.servers.plan.zookeeper_servers, env.servers.plan.cluster_id
    owner = uid()
    assert env.run(env.zk.create_fq_lock("project", ["acl", "p"], owner)) is True
    assert env.run(env.zk2.read_fq_lock("project", ["acl", "p"])) == owner  # the other replica reads it
    mine = [make_digest_acl(*AUTH, all=True)]
    assert env.zk.client.get_acls(f"/{cid}")[0] == mine
    locks = [f"/{cid}/{c}" for c in env.zk.client.get_children(f"/{cid}")]
    assert locks and all(env.zk.client.get_acls(p)[0] == mine for p in locks)
    for auth in (None, [("digest", "contrail-api:guessed")]):
        anon = KazooClient(hosts=hosts, timeout=4.0, auth_data=auth)
        anon.start(10)
        try:
            for call, args in ((anon.get_children, (f"/{cid}",)), (anon.get, (locks[0],)),
                               (anon.create, (f"/{cid}/planted", b"x")), (anon.delete, (locks[0],))):
                with pytest.raises(NoAuthError):
                    call(*args)
        finally:
            anon.stop()
            anon.close()


OPEN_ACL = [make_acl("world", "anyone", all=True)]


def test_zookeepers_root_is_locked_by_the_first_replica(env: Env) -> None:
    """Nobody but the replicas' identity (and the SASL identities it names: Kafka's brokers) may
    create a top-level znode: no squatting another cluster's path, no filling the ensemble."""
    from kazoo.exceptions import NoAuthError
    from kazoo.security import READ_ACL_UNSAFE, Permissions, make_acl, make_digest_acl

    from contrail_ha.services.config_api.zk.session import Session

    hosts = env.servers.plan.zookeeper_servers
    assert sorted(map(str, env.zk.client.get_acls("/")[0])) == \
        sorted(map(str, [make_digest_acl(*AUTH, all=True), *READ_ACL_UNSAFE]))
    anon = KazooClient(hosts=hosts, timeout=4.0)
    anon.start(10)
    try:
        assert env.servers.plan.cluster_id in anon.get_children("/")  # the root stays readable
        for call, args in ((anon.create, ("/planted", b"x")), (anon.set_acls, ("/", OPEN_ACL)),
                           (anon.create, ("/ha-test-squat", b"x"))):
            with pytest.raises(NoAuthError):
                call(*args)
    finally:
        anon.stop()
        anon.close()
    s = Session(hosts, env.servers.plan.cluster_id, auth=AUTH, root_creators=("contrail-kafka",))
    try:
        assert env.run(s.start(15)) is True
        acl = s.client.get_acls("/")[0]
        assert make_acl("sasl", "contrail-kafka", create=True) in acl
        assert {a.perms for a in acl if a.id.scheme == "sasl"} == {Permissions.CREATE}
    finally:
        env.run(s.close())


# --- last: Cassandra goes away -------------------------------------------------------------------------

def test_zz_unavailable_when_cassandra_is_stopped(env: Env) -> None:
    store = env.store
    d = obj("domain", ["before-stop"])
    env.run(store.create(d))
    env.servers.stop("config-db")
    store.forget(d["uuid"])
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="Config DB"):
        env.run(store.read(d["uuid"]))
    with pytest.raises(Unavailable):
        env.run(store.create(obj("domain", ["after-stop"])))
    with pytest.raises(Unavailable):
        env.run(store.fq_name_to_uuid("domain", ["before-stop"]))
    TIMINGS["unavailable_detect_s"] = f"{time.monotonic() - t0:.2f}"
    assert Unavailable.status == 503
