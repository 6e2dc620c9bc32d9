"""Settings that were this machine's assumptions come from the topology: the JVMs' CPUs and JIT,
the thread pools sized from them, each host's interface, the upstream router's address."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from contrail_ha.rendering import bird, cassandra, kafka, zookeeper
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.model import Topology
from contrail_ha.topology.plan import BIRD, CONFIG_DB, KAFKA, ZOOKEEPER, Plan
from contrail_ha.topology.validate import parse

HA = Path(__file__).resolve().parents[2] / "examples" / "ha.yaml"


def _data() -> dict[str, Any]:
    return dict(yaml.safe_load(HA.read_text()))


def _plan(data: dict[str, Any]) -> Plan:
    report = parse(data)
    assert report.ok, report.errors
    return report.plan()


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    cache = tmp_path / "cache"
    (cache / "classpath").mkdir(parents=True)
    for c in ("zookeeper", "kafka", "cassandra"):
        (cache / "classpath" / f"{c}.txt").write_text(f"/jars/{c}.jar\n")
    return Layout(tmp_path / "root", cache=cache)


def _argv(plan: Plan, comp: str, host: str, layout: Layout) -> list[str]:
    inst = plan.instance(comp, host)
    mod = {ZOOKEEPER: zookeeper, KAFKA: kafka, CONFIG_DB: cassandra}[comp]
    return list(mod.render(plan, inst, layout).processes[0].argv)


def test_defaults_keep_the_small_shared_machine_sizing(layout: Layout) -> None:
    plan = _plan(_data())
    for comp in (ZOOKEEPER, KAFKA, CONFIG_DB):
        assert "-XX:ActiveProcessorCount=2" in _argv(plan, comp, "ctrl1", layout)
    assert "-XX:TieredStopAtLevel=1" in _argv(plan, CONFIG_DB, "ctrl1", layout)
    y = cassandra.cassandra_yaml(plan, plan.instance(CONFIG_DB, "ctrl1"), layout)
    assert (y["concurrent_reads"], y["concurrent_writes"], y["concurrent_compactors"],
            y["native_transport_max_threads"]) == (4, 4, 1, 16)
    props = kafka.server_properties(plan, plan.instance(KAFKA, "ctrl1"), layout)
    assert "num.network.threads=2\n" in props and "num.io.threads=2\n" in props


def test_production_hosts_size_for_their_cpus_and_use_the_full_jit(layout: Layout) -> None:
    data = _data()
    data["jvm"] = {"cpus": 16, "jit": "full"}
    data["hosts"][3]["cpus"] = 4  # ctrl2: a smaller machine
    plan = _plan(data)
    assert "-XX:ActiveProcessorCount=16" in _argv(plan, ZOOKEEPER, "ctrl1", layout)
    assert "-XX:ActiveProcessorCount=4" in _argv(plan, KAFKA, "ctrl2", layout)
    assert not any("TieredStopAtLevel" in a for a in _argv(plan, CONFIG_DB, "ctrl1", layout))
    big = cassandra.cassandra_yaml(plan, plan.instance(CONFIG_DB, "ctrl1"), layout)
    small = cassandra.cassandra_yaml(plan, plan.instance(CONFIG_DB, "ctrl2"), layout)
    assert (big["concurrent_reads"], big["concurrent_compactors"], big["native_transport_max_threads"]) == (32, 8, 128)
    assert (small["concurrent_reads"], small["concurrent_compactors"]) == (8, 2)
    props = kafka.server_properties(plan, plan.instance(KAFKA, "ctrl1"), layout)
    assert "num.network.threads=8\n" in props and "num.io.threads=16\n" in props


def test_bird_runs_on_each_hosts_interface_and_peers_with_the_given_router(layout: Layout) -> None:
    data = _data()
    data["hosts"][0]["interface"] = "ens3"
    data["lb"]["router_ip"] = "10.10.0.254"
    plan = _plan(data)
    assert plan.router_ip == "10.10.0.254"
    conf = bird.render(plan, plan.instance(BIRD, "lb1"), layout)
    text = next(iter(conf.files.values()))
    assert 'interface "ens3"' in text and "neighbor 10.10.0.254 as 64512;" in text
    other = next(iter(bird.render(plan, plan.instance(BIRD, "lb2"), layout).files.values()))
    assert 'interface "eth0"' in other
    path = layout.root / "bird-lb1.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    p = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(("change", "key", "words"), [
    (lambda d: d["lb"].update(router_ip="10.20.0.1"), "lb.router_ip", "not a usable address"),
    (lambda d: d["lb"].update(router_ip="10.10.0.21"), "hosts[2].ip", "the router's address"),
    (lambda d: d["hosts"][1].update(interface="eth0; rm -rf /"), "hosts[1].interface", "interface name"),
    (lambda d: d.update(jvm={"cpus": 0}), "jvm.cpus", "greater than or equal to 1"),
    (lambda d: d.update(jvm={"jit": "c2"}), "jvm.jit", "'c1' or 'full'"),
    (lambda d: d["hosts"][2].update(cpus=-1), "hosts[2].cpus", "greater than or equal to 1"),
])
def test_bad_settings_name_their_key(change: Any, key: str, words: str) -> None:
    data = _data()
    change(data)
    errors = {p.path: p.message for p in parse(data).errors}
    assert key in errors and words in errors[key], errors


def test_an_old_topology_file_needs_none_of_the_new_keys() -> None:
    t = Topology.model_validate(_data())
    assert t.jvm.cpus == 2 and t.lb.router_ip is None and all(h.interface == "eth0" for h in t.hosts)
