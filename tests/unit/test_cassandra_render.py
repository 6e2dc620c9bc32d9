"""Cassandra rendering and ring assessment: no servers, a fake jar cache."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from contrail_ha.probes.cassandra import HEARTBEAT_LAG_DOWN, Gossip, View, assess
from contrail_ha.rendering import cassandra
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import ANALYTICS_DB, CONFIG_DB, KAFKA
from tests.helpers.topo import loopback_plan

CLASSPATH = "/m2/cassandra-all-5.0.6.jar:/m2/jamm-0.4.0.jar:/m2/guava.jar"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    cache = tmp_path / "cache"
    (cache / "classpath").mkdir(parents=True)
    (cache / "classpath" / "cassandra.txt").write_text(CLASSPATH + "\n")
    return Layout(tmp_path / "state", cache=cache)


def _render(component: str, host: str, layout: Layout, n: int = 4, **kw: object):
    plan = loopback_plan("127.0.10", n)
    inst = plan.instance(component, host)
    r = cassandra.render(plan, inst, layout, **kw)
    conf = layout.conf(host, component)
    return plan, inst, r, yaml.safe_load(r.files[conf / "cassandra.yaml"])


def _prop(argv: list[str], name: str) -> str | None:
    for a in argv:
        if a.startswith(f"-D{name}="):
            return a.split("=", 1)[1]
    return None


def test_config_db_yaml(layout: Layout) -> None:
    _, _, r, y = _render(CONFIG_DB, "n2", layout)
    assert y["cluster_name"] == "contrail_database"
    assert y["native_transport_port"] == 9041
    assert y["storage_port"] == 7012
    assert y["listen_address"] == y["rpc_address"] == "127.0.10.2"
    seeds = y["seed_provider"][0]["parameters"][0]["seeds"]
    assert seeds == "127.0.10.1:7012,127.0.10.2:7012,127.0.10.3:7012"  # the first three nodes only
    assert y["num_tokens"] <= 16
    data = layout.data("n2", "config-db")
    assert y["data_file_directories"] == [str(data / "data")]
    for key, sub in (("commitlog_directory", "commitlog"), ("hints_directory", "hints"),
                     ("saved_caches_directory", "saved_caches"), ("cdc_raw_directory", "cdc_raw")):
        assert y[key] == str(data / sub)
        assert data / sub in r.dirs
    assert layout.logs("n2", "config-db") in r.dirs


def test_analytics_db_yaml(layout: Layout) -> None:
    _, _, _, y = _render(ANALYTICS_DB, "n4", layout)
    assert y["cluster_name"] == "contrail_analytics"
    assert y["native_transport_port"] == 9042
    assert y["storage_port"] == 7010
    assert y["listen_address"] == "127.0.10.4"
    # n4 is not a seed: it bootstraps into the ring of the first three
    assert y["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.10.1:7010,127.0.10.2:7010,127.0.10.3:7010"


def test_process(layout: Layout) -> None:
    plan, _, r, _ = _render(CONFIG_DB, "n1", layout)
    p, keeper = r.processes
    assert p.name == "config-db"
    assert p.stop_signal == signal.SIGTERM and p.stop_timeout >= 60
    argv = p.argv
    assert argv[0] == "setpriv" and argv[-1] == "org.apache.cassandra.service.CassandraDaemon"
    java = argv.index("java")
    assert argv[:java] == cassandra.NO_MEMLOCK
    assert argv[argv.index("-cp") + 1] == CLASSPATH
    heap = plan.topology.heap.config_db
    assert f"-Xms{heap}m" in argv and f"-Xmx{heap}m" in argv
    conf = layout.conf("n1", "config-db")
    assert _prop(argv, "cassandra.config") == f"file://{conf}/cassandra.yaml"
    assert _prop(argv, "logback.configurationFile") == f"file://{conf}/logback.xml"
    assert _prop(argv, "cassandra.storagedir") == str(layout.data("n1", "config-db"))
    assert _prop(argv, "cassandra.logdir") == str(layout.logs("n1", "config-db"))
    assert _prop(argv, "cassandra-foreground") == "yes"
    assert _prop(argv, "cassandra.skip_wait_for_gossip_to_settle") == "0"
    assert _prop(argv, "cassandra.jmx.local.port") == "7201"
    assert "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED" in argv
    assert "-javaagent:/m2/jamm-0.4.0.jar" in argv
    assert f"{layout.logs('n1', 'config-db')}/system.log" in r.files[conf / "logback.xml"]
    # everything before -cp is a flag
    assert all(a.startswith("-") for a in argv[java + 1:argv.index("-cp")])
    assert keeper.name == "config-db-roles" and keeper.argv[-1] == str(conf / "roles.json")
    assert _prop(argv, "cassandra.auth_bcrypt_gensalt_log2_rounds") == "4"  # random secrets: cheap logins


def test_roles_and_logins(layout: Layout) -> None:
    """Issue 13: no anonymous login and no default superuser: PasswordAuthenticator and
    CassandraAuthorizer; the keeper's file names the admin, each client's role with its keyspaces
    only, the monitor's grants; passwords are generated per cluster and role, in files only their
    owner reads."""
    plan, _, r, y = _render(CONFIG_DB, "n1", layout)
    assert y["authenticator"] == "PasswordAuthenticator" and y["authorizer"] == "CassandraAuthorizer"
    assert "credentials_validity" not in y  # Cassandra's 2 s: a dropped login goes within seconds
    conf = layout.conf("n1", "config-db")
    assert r.modes[conf / "roles.json"] == r.modes[conf / "monitor.json"] == 0o600
    roles = json.loads(r.files[conf / "roles.json"])
    assert roles["admin"]["name"] == cassandra.ADMIN_ROLE != "cassandra"
    by_name = {x["name"]: x for x in roles["roles"]}
    assert by_name["contrail-api"]["keyspaces"] == ["config_db_uuid", "useragent"]
    assert by_name[cassandra.MONITOR_ROLE]["keyspaces"] == [] and by_name[cassandra.MONITOR_ROLE]["grants"]
    secrets = [roles["admin"]["password"], *(x["password"] for x in roles["roles"])]
    assert len(set(secrets)) == 3 and all(len(pw) >= 20 and pw != "cassandra" for pw in secrets)
    assert roles["system_auth_rf"] == 3 and roles["keyspace_rf"] == plan.topology.replication.config_db
    assert json.loads(r.files[conf / "monitor.json"]) == {"user": cassandra.MONITOR_ROLE,
                                                         "password": by_name[cassandra.MONITOR_ROLE]["password"]}
    _, _, ra, _ = _render(ANALYTICS_DB, "n1", layout)
    aroles = json.loads(ra.files[layout.conf("n1", "analytics-db") / "roles.json"])
    assert [x["keyspaces"] for x in aroles["roles"]] == [["ContrailAnalyticsCql"], []]
    assert aroles["admin"]["password"] != roles["admin"]["password"]  # one secret per cluster


def test_analytics_heap_and_jmx(layout: Layout) -> None:
    plan, _, r, _ = _render(ANALYTICS_DB, "n1", layout)
    argv = r.processes[0].argv
    assert f"-Xmx{plan.topology.heap.analytics_db}m" in argv
    assert _prop(argv, "cassandra.jmx.local.port") == "7200"
    _, _, r, _ = _render(ANALYTICS_DB, "n1", layout, jmx=False)
    argv = r.processes[0].argv
    assert _prop(argv, "cassandra.jmx.local.port") is None
    assert not any(a.startswith("-Dcom.sun.management.jmxremote") for a in argv)


def test_refuses_other_components(layout: Layout) -> None:
    plan = loopback_plan("127.0.10", 1)
    with pytest.raises(ValueError):
        cassandra.render(plan, plan.instance(KAFKA, "n1"), layout)


# --- assess: the ring from every node's gossip ----------------------------------------------

A, B, C = "127.0.10.1", "127.0.10.2", "127.0.10.3"


def _g(hb: int, status: str = "NORMAL", gen: int = 100) -> Gossip:
    return Gossip(generation=gen, heartbeat=hb, status=status)


def test_all_up() -> None:
    views = {ip: View(ip, endpoints={A: _g(50), B: _g(60), C: _g(70)}) for ip in (A, B, C)}
    assert [assess(ip, views).code for ip in (A, B, C)] == ["UN", "UN", "UN"]
    assert all(assess(ip, views).healthy for ip in (A, B, C))


def test_unreachable_node_is_down_with_reason() -> None:
    views = {A: View(A, endpoints={A: _g(50), C: _g(70)}), B: View(B, endpoints={A: _g(50), C: _g(70)}),
             C: View(C, error="Connection refused")}
    n = assess(C, views, storage_open=False)
    assert n.code == "DN" and "refused" in n.reason


def test_isolated_node_is_down() -> None:
    # C answers the probe, but neither peer has heard its heartbeat for a while
    stale = _g(70 - HEARTBEAT_LAG_DOWN - 5)
    views = {A: View(A, endpoints={A: _g(50), B: _g(60), C: stale}),
             B: View(B, endpoints={A: _g(50), B: _g(60), C: stale}),
             C: View(C, endpoints={A: _g(10), B: _g(10), C: _g(70)})}
    n = assess(C, views)
    assert n.code == "DN" and n.cql and "do not hear" in n.reason and not n.healthy
    # A is still heard by B: one deaf peer out of two is not a majority, but A is not healthy
    a = assess(A, views, names={C: "n3"})
    assert a.code == "UN" and not a.healthy and a.reason == "not heard by n3"


def test_ring_not_converged_yet() -> None:
    # B knows C only from its seed contact (no STATUS yet): C is up but not yet healthy
    views = {A: View(A, endpoints={A: _g(50), B: _g(60), C: _g(70)}),
             B: View(B, endpoints={A: _g(50), B: _g(60), C: _g(70, status="")}),
             C: View(C, endpoints={A: _g(50), B: _g(60), C: _g(70)})}
    n = assess(C, views)
    assert n.code == "UN" and not n.healthy
    assert assess(A, views).healthy and assess(B, views).healthy


def test_restarted_node_unknown_generation_and_shutdown() -> None:
    views = {A: View(A, endpoints={C: _g(70, gen=99)}), B: View(B, endpoints={C: _g(70, status="shutdown")}),
             C: View(C, endpoints={C: _g(3, gen=200)})}
    assert assess(C, views).code == "DN"
    # unreachable and announced shut down
    views[C] = View(C, error="Connection refused")
    views[A] = View(A, endpoints={C: _g(70, status="shutdown")})
    n = assess(C, views, storage_open=False)
    assert n.code == "DN" and "shutdown" in n.reason


def test_joining_node() -> None:
    views = {A: View(A, endpoints={C: _g(5, status="BOOT")}), B: View(B, endpoints={C: _g(5, status="BOOT")}),
             C: View(C, error="Connection refused")}
    assert assess(C, views, storage_open=True).code == "UJ"
    # a hung node: CQL times out even though the kernel still accepts on the storage port
    views[C] = View(C, error="Timed out creating connection (2.0 seconds)")
    assert assess(C, views, storage_open=True).code == "DJ"


def test_seeds_start_together_and_the_others_join_one_at_a_time(layout: Layout) -> None:
    for comp in (CONFIG_DB, ANALYTICS_DB):
        procs = {h: _render(comp, h, layout, n=5)[2].processes[0] for h in ("n1", "n2", "n3", "n4", "n5")}
        for h in ("n1", "n2", "n3"):  # the seeds
            assert procs[h].join_after == [] and procs[h].fresh_dir == ""
        port = _render(comp, "n1", layout, n=5)[1].port
        assert procs["n4"].join_after == [f"tcp://127.0.10.{i}:{port}" for i in (1, 2, 3)]
        assert procs["n5"].join_after == [f"tcp://127.0.10.{i}:{port}" for i in (1, 2, 3, 4)]
        assert not procs["n5"].join_any and procs["n5"].fresh_dir == str(layout.data("n5", comp))
