"""`contrail-ha render DIR`: every host's files, with process specs, without starting anything."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from contrail_ha.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_render_ha_topology(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = CliRunner().invoke(main, ["render", str(out), "-t", str(EXAMPLES / "ha.yaml")])
    assert r.exit_code == 0, r.output
    hosts = out / "hosts"
    assert sorted(p.name for p in hosts.iterdir()) == ["ctrl1", "ctrl2", "ctrl3", "lb1", "lb2"]
    assert (hosts / "lb1" / "haproxy" / "conf" / "haproxy.cfg").exists()
    assert (hosts / "ctrl2" / "zookeeper" / "data" / "myid").read_text().strip() == "2"
    assert "broker.id=2" in (hosts / "ctrl3" / "kafka" / "conf" / "server.properties").read_text()
    assert "cluster_name: contrail_database" in (hosts / "ctrl1" / "config-db" / "conf" / "cassandra.yaml").read_text()
    assert (out / "router" / "bird.conf").exists()
    spec = json.loads((hosts / "ctrl1" / "supervisor" / "controller" / "spec.json").read_text())
    assert [p["name"] for p in spec["processes"]] == ["zookeeper", "epmd", "rabbitmq", "config-db", "config-db-roles",
                                                  "config-api-1"]
    spec = json.loads((hosts / "ctrl1" / "supervisor" / "analyticsdb" / "spec.json").read_text())
    assert [p["name"] for p in spec["processes"]] == ["analytics-db", "analytics-db-roles", "kafka"]


def test_render_refuses_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "ha.yaml").read_text().replace("kafka: 3 ", "kafka: 4 "))
    r = CliRunner().invoke(main, ["render", str(tmp_path / "r"), "-t", str(bad)])
    assert r.exit_code == 1 and "replication.kafka" in r.output
    assert not (tmp_path / "r").exists()
