"""Stable member identities: assigned once, recorded, never renumbered by an edit of the topology."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from contrail_ha.cli_common import TopologyInvalid, _load
from contrail_ha.rendering import cassandra, kafka, zookeeper
from contrail_ha.rendering.base import Layout
from contrail_ha.topology import identity
from contrail_ha.topology.model import Topology
from contrail_ha.topology.plan import ANALYTICS_DB, CONFIG_DB, KAFKA, ZOOKEEPER, Plan
from contrail_ha.topology.validate import parse

ALL = ["controller", "analytics", "analyticsdb"]


def topo(names: list[str], pins: dict[str, dict[str, Any]] | None = None) -> Topology:
    """Controllers (every role but lb) named ``names``, IP from their number, plus two lbs."""
    hosts: list[dict[str, Any]] = [{"name": "lb1", "ip": "10.10.0.11", "roles": ["lb"]},
                                   {"name": "lb2", "ip": "10.10.0.12", "roles": ["lb"]}]
    for n in names:
        h: dict[str, Any] = {"name": n, "ip": f"10.10.0.{20 + int(n.removeprefix('ctrl'))}", "roles": ALL}
        if pins and n in pins:
            h["identity"] = pins[n]
        hosts.append(h)
    return Topology.model_validate({"cluster": {"vip": "10.10.100.10", "network": "10.10.0.0/24"}, "hosts": hosts})


def ids(t: Topology, key: str) -> dict[str, Any]:
    return {h.name: getattr(h.identity, key) for h in t.hosts if getattr(h.identity, key) is not None}


def recorded_after(root: Path, t: Topology) -> identity.Record:
    resolved, problems = identity.resolve(t, identity.recorded(root))
    assert problems == []
    identity.write_record(root, resolved)
    rec = identity.recorded(root)
    assert rec is not None
    return rec


def test_a_new_cluster_numbers_in_file_order_and_seeds_the_first_three() -> None:
    t, problems = identity.resolve(topo(["ctrl1", "ctrl2", "ctrl3", "ctrl4", "ctrl5"]))
    assert problems == []
    assert ids(t, "zookeeper_myid") == {"ctrl1": 1, "ctrl2": 2, "ctrl3": 3, "ctrl4": 4, "ctrl5": 5}
    assert ids(t, "kafka_broker_id") == {"ctrl1": 0, "ctrl2": 1, "ctrl3": 2, "ctrl4": 3, "ctrl5": 4}
    assert [h.name for h in Plan(t).seeds(CONFIG_DB)] == ["ctrl1", "ctrl2", "ctrl3"]
    assert [h.name for h in Plan(t).seeds(ANALYTICS_DB)] == ["ctrl1", "ctrl2", "ctrl3"]
    assert ids(t, "zookeeper_myid").keys() == {"ctrl1", "ctrl2", "ctrl3", "ctrl4", "ctrl5"}  # lbs have none


def test_removing_and_reordering_hosts_renumbers_no_member(tmp_path: Path) -> None:
    recorded_after(tmp_path, topo(["ctrl1", "ctrl2", "ctrl3", "ctrl4", "ctrl5"]))
    t = identity.with_record(topo(["ctrl5", "ctrl3", "ctrl1"]), tmp_path)  # ctrl2, ctrl4 gone; reordered
    assert ids(t, "zookeeper_myid") == {"ctrl5": 5, "ctrl3": 3, "ctrl1": 1}
    assert ids(t, "kafka_broker_id") == {"ctrl5": 4, "ctrl3": 2, "ctrl1": 0}
    plan = Plan(t)
    assert {h.name for h in plan.seeds(CONFIG_DB)} == {"ctrl1", "ctrl3"}  # no automatic promotion of ctrl5


def test_a_host_added_later_takes_a_number_never_used(tmp_path: Path) -> None:
    recorded_after(tmp_path, topo(["ctrl1", "ctrl2", "ctrl3"]))
    recorded_after(tmp_path, topo(["ctrl1", "ctrl3", "ctrl4"]))  # ctrl2 replaced by ctrl4
    rec = identity.recorded(tmp_path)
    assert rec is not None
    assert rec["zookeeper_myid"] == {"ctrl1": 1, "ctrl2": 2, "ctrl3": 3, "ctrl4": 4}  # ctrl2's 2 stays taken
    assert rec["kafka_broker_id"]["ctrl4"] == 3
    assert rec["config_db_seed"] == ["ctrl1", "ctrl3"]  # the new node joins as a non-seed (it bootstraps)
    t = identity.with_record(topo(["ctrl1", "ctrl3", "ctrl4", "ctrl2"]), tmp_path)  # ctrl2 back: its old ids
    assert ids(t, "zookeeper_myid")["ctrl2"] == 2


def test_a_pin_that_renumbers_a_member_is_refused_by_key(tmp_path: Path) -> None:
    recorded_after(tmp_path, topo(["ctrl1", "ctrl2", "ctrl3"]))
    with pytest.raises(identity.IdentityChange) as e:
        identity.with_record(topo(["ctrl1", "ctrl2", "ctrl3"], {"ctrl2": {"zookeeper_myid": 7}}), tmp_path)
    [(key, msg)] = e.value.problems
    assert key == "hosts[3].identity.zookeeper_myid"
    assert "ctrl2 is ZooKeeper myid 2" in msg and "renumber" in msg
    with pytest.raises(identity.IdentityChange) as e:  # another member's number
        identity.with_record(topo(["ctrl1", "ctrl3", "ctrl4"], {"ctrl4": {"kafka_broker_id": 2}}), tmp_path)
    assert any("belongs to ctrl3" in m for _, m in e.value.problems)


def test_a_pin_may_reuse_a_removed_members_number(tmp_path: Path) -> None:
    """How a dead broker is replaced under its old id (its partitions re-replicate to the new host)."""
    recorded_after(tmp_path, topo(["ctrl1", "ctrl2", "ctrl3"]))
    t = identity.with_record(topo(["ctrl1", "ctrl3", "ctrl4"], {"ctrl4": {"kafka_broker_id": 1}}), tmp_path)
    assert ids(t, "kafka_broker_id") == {"ctrl1": 0, "ctrl3": 2, "ctrl4": 1}


def test_seeds_change_only_when_pinned_and_never_to_a_new_node(tmp_path: Path) -> None:
    recorded_after(tmp_path, topo(["ctrl1", "ctrl2", "ctrl3", "ctrl4", "ctrl5"]))
    t = identity.with_record(topo(["ctrl1", "ctrl2", "ctrl3", "ctrl4", "ctrl5"],
                                  {"ctrl4": {"config_db_seed": True}, "ctrl1": {"config_db_seed": False}}), tmp_path)
    assert [h.name for h in Plan(t).seeds(CONFIG_DB)] == ["ctrl2", "ctrl3", "ctrl4"]
    assert [h.name for h in Plan(t).seeds(ANALYTICS_DB)] == ["ctrl1", "ctrl2", "ctrl3"]
    with pytest.raises(identity.IdentityChange) as e:
        identity.with_record(topo(["ctrl1", "ctrl2", "ctrl3", "ctrl6"], {"ctrl6": {"analytics_db_seed": True}}),
                             tmp_path)
    assert "does not bootstrap" in str(e.value)
    with pytest.raises(identity.IdentityChange) as e:  # every seed gone: the operator picks one
        identity.with_record(topo(["ctrl4", "ctrl5", "ctrl6"]), tmp_path)
    assert "no seed of the running config-DB ring" in str(e.value)
    both = {"config_db_seed": True, "analytics_db_seed": True}
    assert identity.with_record(topo(["ctrl4", "ctrl5", "ctrl6"], {"ctrl4": both, "ctrl5": both}), tmp_path)


def test_pins_are_validated_without_a_record() -> None:
    data = yaml.safe_load(Path("examples/ha.yaml").read_text())
    data["hosts"][0]["identity"] = {"zookeeper_myid": 1}  # an lb
    data["hosts"][3]["identity"] = {"kafka_broker_id": 5}
    data["hosts"][4]["identity"] = {"kafka_broker_id": 5, "zookeeper_myid": 0}
    report = parse(data)
    assert {p.path for p in report.errors} == {"hosts[4].identity.zookeeper_myid"}  # 0 is out of range first
    data["hosts"][4]["identity"] = {"kafka_broker_id": 5}
    report = parse(data)
    msgs = {p.path: p.message for p in report.errors}
    assert "lb1 is not a controller host" in msgs["hosts[0].identity.zookeeper_myid"]
    assert "pinned for ctrl2 too" in msgs["hosts[4].identity.kafka_broker_id"]
    for h in data["hosts"][2:]:
        h["identity"] = {"config_db_seed": False}
    assert any("needs at least one seed" in p.message for p in parse(data).errors)


def test_rendered_files_follow_the_recorded_identities(tmp_path: Path) -> None:
    recorded_after(tmp_path, topo(["ctrl1", "ctrl2", "ctrl3", "ctrl4", "ctrl5"]))
    plan = Plan(identity.with_record(topo(["ctrl3", "ctrl4", "ctrl5"]), tmp_path))
    cache = tmp_path / "cache"
    (cache / "classpath").mkdir(parents=True)
    for c in ("zookeeper", "kafka", "cassandra"):
        (cache / "classpath" / f"{c}.txt").write_text(f"/jars/{c}.jar\n")
    layout = Layout(tmp_path / "root", cache=cache)
    zk = zookeeper.render(plan, plan.instance(ZOOKEEPER, "ctrl4"), layout)
    cfg = next(t for p, t in zk.files.items() if p.name == "zoo.cfg")
    assert [ln.split("=")[0] for ln in cfg.splitlines() if ln.startswith("server.")] == ["server.3", "server.4",
                                                                                          "server.5"]
    assert next(t for p, t in zk.files.items() if p.name == "myid") == "4\n"
    assert "broker.id=3\n" in kafka.server_properties(plan, plan.instance(KAFKA, "ctrl4"), layout)
    assert cassandra.seeds(plan, CONFIG_DB) == ["10.10.0.23:7012"]
    assert cassandra.joins_after(plan, plan.instance(CONFIG_DB, "ctrl3")) == []
    assert [i.host.name for i in cassandra.joins_after(plan, plan.instance(CONFIG_DB, "ctrl5"))] == ["ctrl3", "ctrl4"]


def test_the_cli_refuses_a_renumbering_topology_and_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(Path("examples/ha.yaml").read_text())
    plan, _ = _load(path, quiet=True, state_root=tmp_path / "state")
    identity.write_record(tmp_path / "state" / plan.cluster_id, plan.topology)
    data = yaml.safe_load(path.read_text())
    data["hosts"][2]["identity"] = {"zookeeper_myid": 3}  # ctrl1, recorded as 1
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TopologyInvalid) as e:
        _load(path, quiet=True, state_root=tmp_path / "state")
    assert "hosts[2].identity.zookeeper_myid" in {p.path for p in e.value.report.errors}
    plan, _ = _load(path, quiet=True, state_root=tmp_path / "state", strict=False)  # `down` still works
    assert plan.cluster_id == "contrail"


def test_an_unreadable_record_is_an_error_not_a_renumbering(tmp_path: Path) -> None:
    identity.record_path(tmp_path).write_text("{not json")
    with pytest.raises(identity.ContrailHaError, match="unreadable identity record"):
        identity.recorded(tmp_path)
