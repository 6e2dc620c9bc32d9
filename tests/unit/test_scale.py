"""`contrail-ha scale`: the topology edit keeps the file as written; bad requests are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contrail_ha.topology.edit import EditError, parse_assignments, set_services

REPO = Path(__file__).resolve().parents[2]


def test_parse_assignments() -> None:
    assert parse_assignments(["config-api=3", "analytics-api=2"]) == {"config_api_replicas": 3,
                                                                       "analytics_api_replicas": 2}
    for bad, msg in (("config-api", "expected NAME=REPLICAS"), ("zookeeper=5", "cannot be scaled"),
                     ("config-api=two", "whole number"), ("config-api=0", "between 1 and 5"),
                     ("analytics-api=6", "between 1 and 5")):
        with pytest.raises(EditError, match=msg):
            parse_assignments([bad])


def test_set_services_keeps_comments_and_order() -> None:
    text = (REPO / "examples" / "ha.yaml").read_text()
    out = set_services(text, {"config_api_replicas": 3})
    assert "  config_api_replicas: 3       # contrail-api instances per controller host" in out
    assert out.count("#") == text.count("#")  # no comment lost
    assert yaml.safe_load(out)["services"] == {"config_api_replicas": 3, "analytics_api_replicas": 1}
    assert [ln for ln in out.splitlines() if "replicas" not in ln] == \
        [ln for ln in text.splitlines() if "replicas" not in ln]


def test_set_services_adds_missing_key_and_block() -> None:
    text = "cluster: {id: c, vip: 10.0.1.1, network: 10.0.0.0/24}\nservices:\n  config_api_replicas: 1\nhosts: []\n"
    out = set_services(text, {"analytics_api_replicas": 2})
    assert yaml.safe_load(out)["services"] == {"config_api_replicas": 1, "analytics_api_replicas": 2}
    assert yaml.safe_load(out)["hosts"] == []
    bare = set_services("cluster: {id: c}\nhosts: []\n", {"config_api_replicas": 2})
    assert yaml.safe_load(bare)["services"] == {"config_api_replicas": 2}
    with pytest.raises(EditError, match="inline"):
        set_services("services: {config_api_replicas: 1}\n", {"config_api_replicas": 2})
