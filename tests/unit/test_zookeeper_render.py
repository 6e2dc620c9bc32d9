"""ZooKeeper rendering: zoo.cfg, myid, logback and the QuorumPeerMain process (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contrail_ha.rendering import zookeeper
from contrail_ha.rendering.base import Layout, Rendered
from contrail_ha.topology.plan import ZOOKEEPER, Plan
from tests.helpers.topo import loopback_plan


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    cache = tmp_path / "cache"
    (cache / "classpath").mkdir(parents=True)
    (cache / "classpath" / "zookeeper.txt").write_text("/jars/zookeeper-3.8.4.jar:/jars/logback-classic.jar\n")
    return Layout(tmp_path / "root", cache=cache)


@pytest.fixture
def plan() -> Plan:
    return loopback_plan("127.0.20", 3)


def _cfg(r: Rendered) -> dict[str, str]:
    text = next(t for p, t in r.files.items() if p.name == "zoo.cfg")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


def test_myid_and_server_lines(plan: Plan, layout: Layout) -> None:
    for n, inst in enumerate(plan.of(ZOOKEEPER), start=1):
        r = zookeeper.render(plan, inst, layout)
        data = layout.data(inst.host.name, "zookeeper")
        assert r.files[data / "myid"] == f"{n}\n"
        cfg = _cfg(r)
        assert cfg["dataDir"] == str(data)
        assert cfg["clientPort"] == "2181"
        assert cfg["clientPortAddress"] == inst.ip
        assert {k: v for k, v in cfg.items() if k.startswith("server.")} == {
            "server.1": "127.0.20.1:2888:3888",
            "server.2": "127.0.20.2:2888:3888",
            "server.3": "127.0.20.3:2888:3888",
        }


def test_fast_failover_timers_and_admin(plan: Plan, layout: Layout) -> None:
    cfg = _cfg(zookeeper.render(plan, plan.of(ZOOKEEPER)[0], layout))
    assert cfg["tickTime"] == "500"
    assert cfg["syncLimit"] == "4"
    assert int(cfg["initLimit"]) >= int(cfg["syncLimit"])
    assert cfg["4lw.commands.whitelist"] == "srvr,stat,mntr,ruok,conf"
    assert cfg["admin.enableServer"] == "false"
    assert cfg["autopurge.purgeInterval"] == "1"
    assert cfg["autopurge.snapRetainCount"] == "3"


def test_ports_from_topology(layout: Layout) -> None:
    plan = loopback_plan("127.0.20", 3, ports={"zookeeper": 12181, "zookeeper_peer": 12888,
                                               "zookeeper_election": 13888})
    inst = plan.instance(ZOOKEEPER, "n2")
    r = zookeeper.render(plan, inst, layout)
    assert r.files[layout.data("n2", "zookeeper") / "myid"] == "2\n"
    cfg = _cfg(r)
    assert cfg["clientPort"] == "12181"
    assert cfg["server.2"] == "127.0.20.2:12888:13888"


def test_process_and_logging(plan: Plan, layout: Layout) -> None:
    inst = plan.of(ZOOKEEPER)[0]
    r = zookeeper.render(plan, inst, layout)
    [spec] = r.processes
    assert spec.name == "zookeeper"
    argv = spec.argv
    assert argv[0] == "java"
    assert "-Xmx128m" in argv and "-Xms128m" in argv
    conf = layout.conf("n1", "zookeeper")
    assert f"-Dlogback.configurationFile={conf / 'logback.xml'}" in argv
    cp = argv[argv.index("-cp") + 1]
    assert cp.startswith("/jars/zookeeper-3.8.4.jar:")
    assert cp == "/jars/zookeeper-3.8.4.jar:/jars/logback-classic.jar"  # exactly the resolved classpath
    assert argv[-2:] == ["org.apache.zookeeper.server.quorum.QuorumPeerMain", str(conf / "zoo.cfg")]
    logback = r.files[conf / "logback.xml"]
    assert str(layout.logs("n1", "zookeeper") / "zookeeper.log") in logback
    assert layout.data("n1", "zookeeper") in r.dirs and layout.logs("n1", "zookeeper") in r.dirs


def test_single_controller_is_standalone(layout: Layout) -> None:
    plan = loopback_plan("127.0.20", 1)
    cfg = _cfg(zookeeper.render(plan, plan.of(ZOOKEEPER)[0], layout))
    assert [k for k in cfg if k.startswith("server.")] == ["server.1"]


def test_pinned_pom_carries_the_provided_jars_the_server_needs() -> None:
    """ZooKeeper's pom marks metrics-core and snappy-java "provided"; the server fails without them."""
    from pathlib import Path

    pom = (Path(__file__).resolve().parents[2] / "java" / "zookeeper" / "pom.xml").read_text()
    for artifact in ("<artifactId>zookeeper</artifactId><version>3.8.4</version>",
                     "<artifactId>metrics-core</artifactId>", "<artifactId>snappy-java</artifactId>"):
        assert artifact in pom
