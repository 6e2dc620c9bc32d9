"""Topology parsing and validation: every rule refuses with a message naming its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from contrail_ha.cli import main
from contrail_ha.topology.plan import CONFIG_API, KAFKA, ZOOKEEPER
from contrail_ha.topology.validate import load_topology, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HA = yaml.safe_load((EXAMPLES / "ha.yaml").read_text())


def ha(**changes: object) -> dict:
    d = copy.deepcopy(HA)
    d.update(changes)
    return d


def errors(data: dict) -> list[str]:
    return [str(p) for p in parse(data).errors]


@pytest.mark.parametrize("name", ["ha", "all-in-one", "split", "colocated-lb"])
def test_examples_are_valid(name: str) -> None:
    r = load_topology(EXAMPLES / f"{name}.yaml")
    assert r.ok, [str(p) for p in r.problems]


def test_default_ha_plan_node_lists() -> None:
    plan = load_topology(EXAMPLES / "ha.yaml").plan()
    assert [h.name for h in plan.controllers] == ["ctrl1", "ctrl2", "ctrl3"]
    assert [h.name for h in plan.lbs] == ["lb1", "lb2"]
    assert plan.zookeeper_servers == "10.10.0.21:2181,10.10.0.22:2181,10.10.0.23:2181"
    assert plan.kafka_zookeeper_connect.endswith("/contrail-kafka")
    assert [i.index for i in plan.of(KAFKA)] == [0, 1, 2]
    assert plan.router_ip == "10.10.0.1"
    assert len(plan.of(CONFIG_API)) == 3 and len(plan.of(ZOOKEEPER)) == 3


def test_replicas_get_distinct_ports() -> None:
    d = ha(services={"config_api_replicas": 3, "analytics_api_replicas": 1})
    r = parse(d)
    assert r.ok, r.problems
    ports = sorted(i.port for i in r.plan().of(CONFIG_API) if i.host.name == "ctrl1")
    assert ports == [8082, 18082, 28082]


def test_even_controller_count_refused() -> None:
    d = ha(hosts=[h for h in HA["hosts"] if h["name"] != "ctrl3"],
           replication={"config_db": 2, "analytics_db": 2, "kafka": 2, "kafka_min_insync": 1})
    errs = errors(d)
    assert any("2 hosts have role 'controller'" in e and "odd" in e and "use 1 or 3" in e for e in errs), errs


def test_single_lb_is_a_warning_not_an_error() -> None:
    d = ha(hosts=[h for h in HA["hosts"] if h["name"] != "lb2"])
    r = parse(d)
    assert r.ok
    assert any("only one host has role 'lb'" in str(w) for w in r.warnings)


def test_unknown_key_rejected_with_path() -> None:
    d = ha()
    d["hosts"] = copy.deepcopy(HA["hosts"])
    d["hosts"][2]["colour"] = "blue"
    errs = errors(d)
    assert errs == ["error: hosts[2].colour: unknown key; remove it or check its spelling "
                    "(see `contrail-ha init` for every key)"]


def test_unknown_top_level_and_nested_keys() -> None:
    d = ha(extra=1)
    d["cluster"] = {**HA["cluster"], "vipp": "1.2.3.4"}
    errs = errors(d)
    assert any(e.startswith("error: extra: unknown key") for e in errs)
    assert any(e.startswith("error: cluster.vipp: unknown key") for e in errs)


def test_rf_greater_than_nodes() -> None:
    d = ha(replication={"config_db": 5, "analytics_db": 3, "kafka": 4, "kafka_min_insync": 2})
    errs = errors(d)
    assert any(e.startswith("error: replication.config_db: replication factor 5 is more than the 3 "
                            "'controller'") for e in errs)
    assert any(e.startswith("error: replication.kafka: replication factor 4") for e in errs)


def test_min_insync_above_rf() -> None:
    d = ha(replication={"config_db": 3, "analytics_db": 3, "kafka": 2, "kafka_min_insync": 3})
    assert any("replication.kafka_min_insync" in e for e in errors(d))


def test_duplicate_ip_and_name() -> None:
    hosts = copy.deepcopy(HA["hosts"])
    hosts[1]["ip"] = hosts[0]["ip"]
    hosts[4]["name"] = "ctrl2"
    errs = errors(ha(hosts=hosts))
    assert any(e.startswith("error: hosts[1].ip: duplicate ip 10.10.0.11 (also hosts[0])") for e in errs)
    assert any(e.startswith("error: hosts[4].name: duplicate name ctrl2 (also hosts[3])") for e in errs)


def test_vip_rules() -> None:
    assert any("cluster.vip: VIP 10.10.0.200 is inside cluster.network" in e
               for e in errors(ha(cluster={**HA["cluster"], "vip": "10.10.0.200"})))
    hosts = copy.deepcopy(HA["hosts"])
    hosts[0]["ip"] = "10.10.0.1"
    assert any("hosts[0].ip: 10.10.0.1 is the router's address" in e for e in errors(ha(hosts=hosts)))


def test_host_outside_network() -> None:
    hosts = copy.deepcopy(HA["hosts"])
    hosts[3]["ip"] = "192.168.7.3"
    assert any(e.startswith("error: hosts[3].ip: 192.168.7.3 is outside cluster.network")
               for e in errors(ha(hosts=hosts)))


def test_port_clash_on_colocated_lb() -> None:
    """HAProxy bound to every address clashes with contrail-api on a shared host."""
    d = yaml.safe_load((EXAMPLES / "colocated-lb.yaml").read_text())
    d["lb"] = {"bind": "any"}
    errs = errors(d)
    clash = [e for e in errs if "port clash on node1" in e]
    assert clash, errs
    assert "*:8082/tcp (haproxy config-api frontend)" in clash[0]
    assert "10.40.0.11:8082/tcp (config-api-1)" in clash[0]
    assert "set lb.bind: vip" in clash[0]


def test_port_clash_between_two_services() -> None:
    d = ha(ports={"zookeeper": 5673})
    errs = errors(d)
    assert any("port clash on ctrl1" in e and "zookeeper client" in e and "rabbitmq amqp" in e for e in errs), errs


def test_bad_values_name_their_key() -> None:
    hosts = copy.deepcopy(HA["hosts"])
    hosts[0]["roles"] = ["lb", "webui"]
    hosts[1]["name"] = "LB_2"
    hosts[2]["ip"] = "10.10.0.300"
    errs = errors(ha(hosts=hosts))
    assert any(e.startswith("error: hosts[0].roles[1]:") and "'webui'" in e for e in errs), errs
    assert any(e.startswith("error: hosts[1].name:") for e in errs)
    assert any(e.startswith("error: hosts[2].ip:") for e in errs)


def test_missing_role_and_required_key() -> None:
    hosts = [h for h in copy.deepcopy(HA["hosts"]) if "lb" not in h["roles"]]
    assert any("no host has role 'lb'" in e for e in errors(ha(hosts=hosts)))
    d = ha()
    d["cluster"] = {k: v for k, v in HA["cluster"].items() if k != "vip"}
    assert "error: cluster.vip: required key is missing; add it" in errors(d)


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    assert errors([1, 2]) == ["error: (top level): the topology must be a mapping with cluster and hosts"]  # type: ignore[arg-type]
    f = tmp_path / "t.yaml"
    f.write_text("cluster: [\n")
    r = load_topology(f)
    assert not r.ok and "not valid YAML" in str(r.errors[0])


# --- CLI exit codes -----------------------------------------------------------------------------
def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", "-t", str(EXAMPLES / "ha.yaml")])
    assert ok.exit_code == 0 and "valid" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(ha(hosts=[h for h in HA["hosts"] if h["name"] != "ctrl3"])))
    r = runner.invoke(main, ["validate", "-t", str(bad)])
    assert r.exit_code == 1
    assert "odd" in r.output and "nothing was started" in r.output
    missing = runner.invoke(main, ["validate", "-t", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    usage = runner.invoke(main, ["validate", "--bogus"])
    assert usage.exit_code == 2


def test_cli_validate_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    d = ha()
    d["hosts"] = copy.deepcopy(HA["hosts"])
    d["hosts"][0]["colour"] = "x"
    bad.write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(main, ["validate", "--json", "-t", str(bad)])
    assert r.exit_code == 1
    import json

    out = json.loads(r.output)
    assert out["valid"] is False and out["problems"][0]["path"] == "hosts[0].colour"


def test_cli_up_refuses_invalid_topology_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(ha(replication={"config_db": 4, "analytics_db": 3, "kafka": 3,
                                                  "kafka_min_insync": 2})))
    r = CliRunner().invoke(main, ["up", "-t", str(bad), "--state-root", str(tmp_path / "state")])
    assert r.exit_code == 1
    assert "replication.config_db" in r.output
    assert not (tmp_path / "state").exists()


def test_cli_init_writes_valid_example(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    r = CliRunner().invoke(main, ["init", str(f)])
    assert r.exit_code == 0
    assert load_topology(f).ok
    again = CliRunner().invoke(main, ["init", str(f)])
    assert again.exit_code == 2 and "--force" in again.output
