"""The node agent's pure parts: state.json -> process_info, component -> UVE table, the component structs,
sending on change; and the alarm rules applied to the structs it builds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contrail_ha.probes import bird as bird_probe
from contrail_ha.probes import haproxy as haproxy_probe
from contrail_ha.probes.cassandra import Gossip
from contrail_ha.rendering.base import Layout
from contrail_ha.services.analytics import alarms
from contrail_ha.services.analytics.node_agent import api as na
from contrail_ha.services.analytics.protocol import (
    CONN_UP,
    FUNCTIONAL,
    NODE_TYPE_TABLE,
    PROCESS_BACKOFF,
    PROCESS_EXITED,
    PROCESS_RUNNING,
    PROCESS_STARTING,
    PROCESS_STOPPED,
    UVE_TABLES,
    Origin,
)
from contrail_ha.services.analytics.uve import UveState
from contrail_ha.topology.plan import Plan
from contrail_ha.topology.validate import load_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _plan(name: str) -> Plan:
    return load_topology(EXAMPLES / f"{name}.yaml").plan()


def _uve(table: str, value: dict[str, Any], key: str = "ctrl1") -> alarms.Uve:
    return alarms.Uve(table, key, value, agent_age_s=1.0)


def _alarm_types(table: str, value: dict[str, Any]) -> set[str]:
    return {a["type"].removeprefix(alarms.PREFIX) for a in alarms.evaluate(_uve(table, value), 1)}


# state.json as runtime.supervisor._write_state writes it: ctrl1's controller group after
# `kill -9` of rabbitmq's server with rabbitmq held (a drill), config-db restarting.
CONTROLLER_STATE = {
    "host": "ctrl1", "role": "controller", "supervisor_pid": 4242,
    "processes": {
        "zookeeper": {"state": "running", "pid": 5101, "server_pid": None, "restarts": 0, "last_exit": "",
                      "uptime": 812.4},
        "epmd": {"state": "running", "pid": 5102, "server_pid": None, "restarts": 0, "last_exit": "", "uptime": 812.2},
        "rabbitmq": {"state": "held", "pid": None, "server_pid": None, "restarts": 1,
                     "last_exit": "killed by signal 9", "uptime": 0},
        "config-db": {"state": "backoff", "pid": None, "server_pid": None, "restarts": 3, "last_exit": "exit 1",
                      "uptime": 0},
        "config-api-1": {"state": "running", "pid": 5230, "server_pid": None, "restarts": 0, "last_exit": "",
                         "uptime": 640.0},
    },
}
ANALYTICS_STATE = {
    "host": "ctrl1", "role": "analytics", "supervisor_pid": 4243,
    "processes": {
        "analytics-api-1": {"state": "running", "pid": 6001, "server_pid": None, "restarts": 2, "last_exit": "exit 0",
                            "uptime": 30.1},
        "collector": {"state": "starting", "pid": None, "server_pid": None, "restarts": 0, "last_exit": "",
                      "uptime": 0},
        "aggregator": {"state": "disabled", "pid": None, "server_pid": None, "restarts": 0, "last_exit": "",
                       "uptime": 0},
    },
}
NODE_STATE = {"host": "ctrl1", "role": "node", "supervisor_pid": 4244,
              "processes": {"node-agent": {"state": "running", "pid": 7000, "server_pid": None, "restarts": 0,
                                           "last_exit": "", "uptime": 5.0}}}


# --- mapping ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("process", "table"), [
    ("config-api-1", "ObjectConfigNode"), ("config-api-3", "ObjectConfigNode"),
    ("zookeeper", "ObjectConfigDatabaseInfo"), ("rabbitmq", "ObjectConfigDatabaseInfo"),
    ("epmd", "ObjectConfigDatabaseInfo"), ("config-db", "ObjectConfigDatabaseInfo"),
    ("analytics-api-2", "ObjectCollectorInfo"), ("collector", "ObjectCollectorInfo"),
    ("aggregator", "ObjectCollectorInfo"), ("analytics-db", "ObjectDatabaseInfo"), ("kafka", "ObjectDatabaseInfo"),
    ("haproxy", "ObjectLbNode"), ("bird", "ObjectLbNode"), ("lb-agent", "ObjectLbNode"),
    ("node-agent", None), ("something-else", None),
])
def test_table_of(process: str, table: str | None) -> None:
    assert na.table_of(process) == table
    if table is not None:
        assert table in UVE_TABLES and table in NODE_TYPE_TABLE.values()


def test_component_of_strips_only_a_replica_suffix() -> None:
    assert na.component_of("config-api-12") == "config-api"
    assert na.component_of("analytics-db") == "analytics-db"
    assert na.component_of("lb-agent") == "lb-agent"
    # an unknown process of a role is still reported, in its role's table; the agent never
    assert na.table_of("query-engine", "analytics") == "ObjectCollectorInfo"
    assert na.table_of("node-agent", "controller") is None


@pytest.mark.parametrize(("state", "expected"), [
    ("running", PROCESS_RUNNING), ("held", PROCESS_STOPPED), ("backoff", PROCESS_BACKOFF),
    ("starting", PROCESS_STARTING), ("joining", PROCESS_STARTING), ("disabled", PROCESS_STOPPED),
    ("", PROCESS_EXITED), ("weird", PROCESS_EXITED),
])
def test_process_state(state: str, expected: str) -> None:
    assert na.process_state(state) == expected


@pytest.mark.parametrize(("name", "tables"), [
    ("lb1", ["ObjectLbNode"]),
    ("ctrl1", ["ObjectCollectorInfo", "ObjectConfigDatabaseInfo", "ObjectConfigNode", "ObjectDatabaseInfo"]),
])
def test_host_tables_ha(name: str, tables: list[str]) -> None:
    assert na.host_tables(_plan("ha"), name) == tables


def test_expected_processes_split() -> None:
    plan = _plan("split")
    assert na.expected_processes(plan, "ctrl2") == ["zookeeper", "epmd", "rabbitmq", "config-db", "config-api-1"]
    assert na.host_tables(plan, "adb1") == ["ObjectDatabaseInfo"]
    assert "node-agent" not in na.expected_processes(plan, "an1")


# --- process_info -----------------------------------------------------------------------------------------
def test_process_infos_from_state_json() -> None:
    infos = na.process_infos({"controller": CONTROLLER_STATE, "analytics": ANALYTICS_STATE, "node": NODE_STATE})
    assert sorted(infos) == ["ObjectCollectorInfo", "ObjectConfigDatabaseInfo", "ObjectConfigNode"]
    by = {e["process_name"]: e for entries in infos.values() for e in entries}
    assert "node-agent" not in by
    assert [e["process_name"] for e in infos["ObjectConfigDatabaseInfo"]] == ["config-db", "epmd", "rabbitmq",
                                                                              "zookeeper"]
    assert by["zookeeper"] == {"process_name": "zookeeper", "process_state": PROCESS_RUNNING, "pid": 5101,
                               "start_count": 1, "last_exit": "", "uptime_s": 812.4}
    assert by["rabbitmq"]["process_state"] == PROCESS_STOPPED
    assert by["rabbitmq"]["start_count"] == 2 and by["rabbitmq"]["last_exit"] == "killed by signal 9"
    assert by["config-db"]["process_state"] == PROCESS_BACKOFF and by["config-db"]["start_count"] == 4
    assert by["analytics-api-1"]["start_count"] == 3
    assert by["collector"]["process_state"] == PROCESS_STARTING and by["collector"]["start_count"] == 0
    assert by["aggregator"]["process_state"] == PROCESS_STOPPED


def test_started_once_and_exited_counts_one_start() -> None:
    # exited once, not restarted yet: the supervisor's restarts is still 0
    e = na.process_entry("kafka", {"state": "starting", "pid": None, "restarts": 0, "last_exit": "exit 137",
                                   "uptime": 0})
    assert e["start_count"] == 1 and e["process_state"] == PROCESS_STARTING


def test_missing_supervisor_state_reports_expected_processes_stopped() -> None:
    expected = na.expected_processes(_plan("ha"), "lb1")
    infos = na.process_infos({"lb": None}, expected)
    assert [(e["process_name"], e["process_state"]) for e in infos["ObjectLbNode"]] == [
        ("bird", PROCESS_STOPPED), ("haproxy", PROCESS_STOPPED), ("lb-agent", PROCESS_STOPPED)]
    assert alarms.process_status(_uve("ObjectLbNode", {"NodeStatus": {"process_info": infos["ObjectLbNode"]}}))


def test_dead_supervisor() -> None:
    alive = {5101}.__contains__  # the supervisor (4242) is gone; zookeeper still runs, unsupervised
    infos = na.process_infos({"controller": CONTROLLER_STATE}, alive=alive)
    by = {e["process_name"]: e for entries in infos.values() for e in entries}
    assert by["zookeeper"]["process_state"] == PROCESS_RUNNING
    assert "supervisor 4242 not running" in by["zookeeper"]["last_exit"]
    assert by["epmd"]["process_state"] == PROCESS_EXITED and by["epmd"]["pid"] is None
    assert by["rabbitmq"]["process_state"] == PROCESS_EXITED
    assert by["rabbitmq"]["last_exit"] == "supervisor 4242 not running; killed by signal 9"
    # a live supervisor: the state file is trusted as it is
    infos = na.process_infos({"controller": CONTROLLER_STATE}, alive={4242}.__contains__)
    assert {e["process_name"]: e["process_state"] for e in infos["ObjectConfigDatabaseInfo"]}["epmd"] == PROCESS_RUNNING


def test_held_process_raises_the_process_status_alarm() -> None:
    infos = na.process_infos({"controller": CONTROLLER_STATE})
    value = {"NodeStatus": {"process_info": infos["ObjectConfigDatabaseInfo"]}}
    severity, text = alarms.process_status(_uve("ObjectConfigDatabaseInfo", value))
    assert severity == alarms.CRITICAL
    assert "rabbitmq (PROCESS_STATE_STOPPED: killed by signal 9)" in text
    assert "config-db (PROCESS_STATE_BACKOFF: exit 1)" in text
    assert "zookeeper" not in text
    ok = {"NodeStatus": {"process_info": infos["ObjectConfigNode"]}}
    assert alarms.process_status(_uve("ObjectConfigNode", ok)) is None


def test_agent_nodestatus_merges_with_a_service_nodestatus() -> None:
    """The agent's process_info and a service's process_status end up in one NodeStatus (uve merge)."""
    infos = na.process_infos({"controller": CONTROLLER_STATE})
    agent = Origin(source="ctrl1", node_type=na.NODE_TYPE, module=na.MODULE, instance_id="ctrl1")
    own = {"module_id": na.MODULE, "instance_id": "ctrl1", "state": FUNCTIONAL, "description": "",
           "connection_infos": [{"type": "Collector", "name": "", "server_addrs": ["10.10.0.21:8086"],
                                 "status": CONN_UP, "description": "sending"}]}
    api = {"module_id": "contrail-api", "instance_id": "config-api-1", "state": FUNCTIONAL, "description": "",
           "connection_infos": [{"type": "Zookeeper", "name": "zookeeper", "server_addrs": [], "status": CONN_UP,
                                 "description": ""}]}
    u = UveState("ObjectConfigNode", "ctrl1")
    u.apply(str(agent), "NodeStatus", {"process_info": infos["ObjectConfigNode"], "process_status": [own]}, 1_000)
    u.apply("ctrl1:Config:contrail-api:config-api-1", "NodeStatus", {"process_status": [api]}, 2_000)
    value = u.aggregate(3_000, stale_s=1e9)
    ns = value["NodeStatus"]
    assert [p["process_name"] for p in ns["process_info"]] == ["config-api-1"]
    assert sorted(p["module_id"] for p in ns["process_status"]) == ["contrail-api", na.MODULE]
    assert alarms.evaluate(alarms.Uve("ObjectConfigNode", "ctrl1", value, 0.5), 3_000) == []


# --- sending on change ------------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, Any] | None]] = []

    def uve(self, table: str, key: str, struct: str, data: dict[str, Any] | None) -> None:
        self.sent.append((table, key, struct, data))


def _ns(state: str, uptime: float, collector_description: str = "sending to 10.10.0.21:8086") -> dict[str, Any]:
    return {"process_info": [{"process_name": "zookeeper", "process_state": state, "pid": 1, "start_count": 1,
                              "last_exit": "", "uptime_s": uptime}],
            "process_status": [{"module_id": na.MODULE, "instance_id": "ctrl1", "state": FUNCTIONAL,
                                "description": "", "connection_infos": [
                                    {"type": "Collector", "name": "", "server_addrs": ["10.10.0.21:8086"],
                                     "status": CONN_UP, "description": collector_description}]}]}


def test_publisher_sends_only_changes() -> None:
    now = [0.0]
    rec = Recorder()
    pub = na.Publisher(rec, "ctrl1", refresh=60.0, clock=lambda: now[0])
    assert pub.publish("ObjectConfigDatabaseInfo", "NodeStatus", _ns(PROCESS_RUNNING, 1.0))
    assert not pub.publish("ObjectConfigDatabaseInfo", "NodeStatus", _ns(PROCESS_RUNNING, 1.0))
    now[0] = 1.0  # only the uptime and the collector's wording moved: not sent
    assert not pub.publish("ObjectConfigDatabaseInfo", "NodeStatus", _ns(PROCESS_RUNNING, 2.0, "other words"))
    now[0] = 2.0
    assert pub.publish("ObjectConfigDatabaseInfo", "NodeStatus", _ns(PROCESS_STOPPED, 0.0))
    assert rec.sent[-1][:3] == ("ObjectConfigDatabaseInfo", "ctrl1", "NodeStatus")
    assert pub.sent["ObjectConfigDatabaseInfo"]["NodeStatus"]["process_info"][0]["process_state"] == PROCESS_STOPPED
    now[0] = 63.0  # uptimes are refreshed, slowly
    assert pub.publish("ObjectConfigDatabaseInfo", "NodeStatus", _ns(PROCESS_STOPPED, 5.0))
    assert pub.publish("ObjectLbNode", "HaproxyStatus", {"backends": [], "detail": "x"})
    assert len(rec.sent) == 4


# --- ZooKeeper --------------------------------------------------------------------------------------------
SRVR_LEADER = """Zookeeper version: 3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c, built on 2024-02-12 22:16 UTC
Latency min/avg/max: 0/0.5417/7
Received: 3391
Sent: 3392
Connections: 4
Outstanding: 0
Zxid: 0x100000054
Mode: leader
Node count: 187
Proposal sizes last/min/max: 48/32/412
"""


def test_zookeeper_status() -> None:
    zk = na.zookeeper_status("10.10.0.21:2181", SRVR_LEADER)
    assert zk == {"address": "10.10.0.21:2181", "mode": "leader", "serving": True, "detail": ""}
    assert na.zookeeper_status("a:1", SRVR_LEADER.replace("leader", "standalone"))["mode"] == "standalone"
    assert alarms.zookeeper_quorum(_uve("ObjectConfigDatabaseInfo", {"ZookeeperStatus": zk})) is None
    no_quorum = na.zookeeper_status("10.10.0.21:2181", "This ZooKeeper instance is not currently serving requests\n")
    assert no_quorum["mode"] == "not serving" and no_quorum["serving"] is False
    down = na.zookeeper_status("10.10.0.21:2181", None, "unreachable: Connection refused")
    assert down == {"address": "10.10.0.21:2181", "mode": "down", "serving": False,
                    "detail": "unreachable: Connection refused"}
    for bad in (no_quorum, down):
        severity, text = alarms.zookeeper_quorum(_uve("ObjectConfigDatabaseInfo", {"ZookeeperStatus": bad}))
        assert severity == alarms.CRITICAL and bad["mode"] in text


# --- RabbitMQ ---------------------------------------------------------------------------------------------
NODES = ["rabbit@10.10.0.21", "rabbit@10.10.0.22", "rabbit@10.10.0.23"]


def _cluster_status(running: list[str], partitions: dict[str, list[str]] | None = None) -> dict[str, Any]:
    # `rabbitmqctl cluster_status --formatter json` (3.12), trimmed of listeners/versions/feature_flags
    return {"alarms": [], "cluster_name": "rabbit@10.10.0.21", "disk_nodes": NODES, "ram_nodes": [],
            "running_nodes": running, "partitions": partitions or {}, "maintenance_status": {}}


def test_rabbitmq_status() -> None:
    ok = na.rabbitmq_status(NODES[0], _cluster_status(NODES[::-1]), NODES)
    assert ok == {"node": NODES[0], "running_nodes": NODES, "cluster_nodes": NODES, "partitions": [], "detail": ""}
    assert alarms.rabbitmq_cluster(_uve("ObjectConfigDatabaseInfo", {"RabbitmqStatus": ok})) is None

    one_down = na.rabbitmq_status(NODES[0], _cluster_status(NODES[:2]), NODES)
    severity, text = alarms.rabbitmq_cluster(_uve("ObjectConfigDatabaseInfo", {"RabbitmqStatus": one_down}))
    assert severity == alarms.MAJOR and NODES[2] in text

    split = na.rabbitmq_status(NODES[0], _cluster_status(NODES[:1], {NODES[0]: [NODES[2], NODES[1]]}), NODES)
    assert split["partitions"] == [{"node": NODES[0], "unreachable": [NODES[1], NODES[2]]}]
    assert alarms.rabbitmq_cluster(_uve("ObjectConfigDatabaseInfo", {"RabbitmqStatus": split}))[0] == alarms.CRITICAL

    silent = na.rabbitmq_status(NODES[0], None, NODES, "Error: unable to perform an operation on node")
    assert silent["running_nodes"] == [] and silent["detail"].startswith("Error")
    assert silent["cluster_nodes"] == NODES  # nothing runs, as far as this node can tell
    # the CLI's log lines carry a time: it is dropped, so the detail stays the same from one run to the next
    assert na.rabbitmq_status(NODES[0], None, NODES, "12:44:41.227 [error] x")["detail"] == "[error] x"
    assert alarms.rabbitmq_cluster(_uve("ObjectConfigDatabaseInfo", {"RabbitmqStatus": silent}))[0] == alarms.MAJOR


# --- Cassandra --------------------------------------------------------------------------------------------
RING = ["10.10.0.21", "10.10.0.22", "10.10.0.23"]


def test_cassandra_ring_as_the_local_node_sees_it() -> None:
    tracker = na.HeartbeatTracker()

    def gossip(hb: int, status2: str = "NORMAL", hb3: int = 50) -> dict[str, Gossip]:
        return {RING[0]: Gossip(1700000001, hb, "NORMAL"), RING[1]: Gossip(1700000002, hb, status2),
                RING[2]: Gossip(1700000003, hb3, "NORMAL")}

    ages = tracker.update(gossip(100), now=0.0)
    st = na.cassandra_status("contrail_database", RING[0], RING, gossip(100), ages)
    assert st == {"cluster": "contrail_database", "address": RING[0], "detail": "",
                  "nodes": [{"address": ip, "status": "U", "state": "N"} for ip in RING]}
    assert alarms.cassandra_node_down(_uve("ObjectConfigDatabaseInfo", {"CassandraStatus": st})) is None

    # ctrl3's heartbeat stops moving while the others' keep going: it is down after the stale time
    tracker.update(gossip(105), now=5.0)
    ages = tracker.update(gossip(113), now=13.0)
    assert ages[RING[2]] == 13.0 and ages[RING[0]] == 0.0
    st = na.cassandra_status("contrail_database", RING[0], RING, gossip(113), ages, stale_s=12.0)
    assert [n["status"] for n in st["nodes"]] == ["U", "U", "D"]
    assert st["detail"] == "10.10.0.23 gossip heartbeat stalled"
    severity, text = alarms.cassandra_node_down(_uve("ObjectConfigDatabaseInfo", {"CassandraStatus": st}))
    assert severity == alarms.MAJOR and "10.10.0.23" in text and "contrail_database" in text

    # a graceful stop is announced: down at once; a joining node is UJ
    st = na.cassandra_status("contrail_database", RING[0], RING, gossip(114, "shutdown", 114), {})
    assert st["nodes"][1] == {"address": RING[1], "status": "D", "state": "N"}
    st = na.cassandra_status("contrail_database", RING[0], RING, gossip(114, "BOOT", 114), {})
    assert st["nodes"][1] == {"address": RING[1], "status": "U", "state": "J"}


def test_cassandra_member_missing_from_gossip_and_local_node_down() -> None:
    endpoints = {RING[0]: Gossip(1, 10, "NORMAL"), RING[1]: Gossip(2, 10, "NORMAL"),
                 "10.10.0.99": Gossip(3, 10, "NORMAL"), "10.10.0.98": Gossip(4, 10, "LEFT")}
    st = na.cassandra_status("contrail_analytics", RING[0], RING, endpoints, {})
    assert [(n["address"], n["status"]) for n in st["nodes"]] == [
        (RING[0], "U"), (RING[1], "U"), (RING[2], "D"), ("10.10.0.99", "U")]
    assert "10.10.0.23 not in the gossip" in st["detail"] and "10.10.0.99 not in the topology" in st["detail"]

    down = na.cassandra_status("contrail_analytics", RING[1], RING, None, error="cql 10.10.0.22:9042: refused")
    assert down["nodes"] == [{"address": RING[1], "status": "D", "state": "N"}]
    assert down["detail"] == "cql 10.10.0.22:9042: refused"
    _, text = alarms.cassandra_node_down(_uve("ObjectDatabaseInfo", {"CassandraStatus": down}, "ctrl2"))
    assert "contrail_analytics" in text and RING[1] in text


# --- Kafka ------------------------------------------------------------------------------------------------
BROKERS = {0: "10.10.0.21:9092", 1: "10.10.0.22:9092", 2: "10.10.0.23:9092"}


def test_kafka_status() -> None:
    healthy = [(0, [0, 1, 2], [0, 1, 2]), (1, [1, 2, 0], [1, 2, 0])]
    k = na.kafka_status(1, "10.10.0.22:9092", BROKERS, healthy)
    assert k == {"broker_id": 1, "address": "10.10.0.22:9092", "registered": True, "brokers": [0, 1, 2],
                 "under_replicated_partitions": 0, "offline_partitions": 0, "detail": ""}
    assert alarms.kafka_under_replicated(_uve("ObjectDatabaseInfo", {"KafkaStatus": k})) is None

    # broker 2 gone: its partitions shrink their ISR; one partition whose only replica was 2 is offline
    parts = [(0, [0, 1, 2], [0, 1]), (1, [1, 2, 0], [1, 0]), (0, [0, 1], [0, 1]), (-1, [2], [])]
    k = na.kafka_status(2, "10.10.0.23:9092", {0: BROKERS[0], 1: BROKERS[1]}, parts)
    assert (k["registered"], k["brokers"], k["under_replicated_partitions"], k["offline_partitions"]) == (
        False, [0, 1], 3, 1)
    assert k["detail"] == "broker 2 not registered"
    severity, text = alarms.kafka_under_replicated(_uve("ObjectDatabaseInfo", {"KafkaStatus": k}))
    assert severity == alarms.MAJOR and text == "Kafka: 3 under-replicated and 1 offline partition(s)"

    none = na.kafka_status(0, "10.10.0.21:9092", None, error="KafkaError{code=_TRANSPORT}")
    assert none["registered"] is False and "metadata unavailable" in none["detail"]


# --- lb: HAProxy, lb agent, BIRD ----------------------------------------------------------------------------
STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,type,check_status,check_code,addr
contrail-api,FRONTEND,,,0,3,4096,120,OPEN,0,,,
contrail-analytics-api,FRONTEND,,,0,1,4096,12,OPEN,0,,,
contrail-api-backend,ctrl1-config-api-1,0,0,0,2,,40,UP,2,L7OK,200,10.10.0.21:8082
contrail-api-backend,ctrl2-config-api-1,0,0,0,2,,40,DOWN,2,L7STS,503,10.10.0.22:8082
contrail-api-backend,ctrl3-config-api-1,0,0,0,2,,40,UP 1/2,2,L4CON,,10.10.0.23:8082
contrail-api-backend,BACKEND,0,0,0,3,410,120,UP,1,,,
contrail-analytics-api-backend,ctrl1-analytics-api-1,0,0,0,1,,12,UP,2,L7OK,200,10.10.0.21:8081
contrail-analytics-api-backend,BACKEND,0,0,0,1,410,12,UP,1,,,
stats,FRONTEND,,,1,1,4096,9,OPEN,0,,,
stats,BACKEND,0,0,0,0,410,0,UP,1,,,

"""


def test_haproxy_status() -> None:
    h = na.haproxy_status(haproxy_probe.parse_stat(STAT))
    assert h == {"detail": "", "backends": [
        {"name": "contrail-analytics-api-backend", "servers": [{"name": "ctrl1-analytics-api-1", "status": "UP"}]},
        {"name": "contrail-api-backend", "servers": [{"name": "ctrl1-config-api-1", "status": "UP"},
                                                     {"name": "ctrl2-config-api-1", "status": "DOWN"},
                                                     {"name": "ctrl3-config-api-1", "status": "UP 1/2"}]}]}
    severity, text = alarms.lb_backends(_uve("ObjectLbNode", {"HaproxyStatus": h}, "lb1"))
    assert severity == alarms.MAJOR and text.endswith("contrail-api-backend/ctrl2-config-api-1 DOWN")
    down = na.haproxy_status(None, "stats socket /x/haproxy.sock: [Errno 111] Connection refused")
    assert down["backends"] == [] and "Connection refused" in down["detail"]


def test_lb_agent_status() -> None:
    st = {"host": "lb1", "vip": "10.10.100.10", "announced": False, "reason": "no backend has an UP server",
          "at": 1000.0}
    a = na.lb_agent_status(st, now=1000.5)
    assert a == {"announced": False, "reason": "no backend has an UP server"}
    severity, text = alarms.lb_vip(_uve("ObjectLbNode", {"LbAgentStatus": a}, "lb1"))
    assert severity == alarms.MAJOR and text == "lb lb1 withdrew the VIP: no backend has an UP server"
    up = na.lb_agent_status({**st, "announced": True, "reason": "contrail-api-backend 3 UP"}, now=1001.0)
    assert alarms.lb_vip(_uve("ObjectLbNode", {"LbAgentStatus": up}, "lb1")) is None
    assert "not updated" in na.lb_agent_status({**st, "announced": True}, now=1100.0)["reason"]
    assert na.lb_agent_status(None, now=0.0, error="no state yet") == {"announced": False, "reason": "no state yet"}


PROTOCOLS_BGP = """\
Name       Proto      Table      State  Since         Info
uplink     BGP        ---        up     04:21:51.959  Established
"""
PROTOCOLS_BGP_DOWN = """\
Name       Proto      Table      State  Since         Info
uplink     BGP        ---        start  04:21:51.018  Active        Socket: Connection refused
"""
PROTOCOLS_BABEL = """\
Name       Proto      Table      State  Since         Info
uplink     Babel      ---        up     04:21:51.018
"""
BABEL_NEIGHBORS = """\
uplink:
IP address                Interface  Metric Routes Hellos Expires
fe80::a8c1:abff:fe10:1    eth0           96      0     16   0.142
fe80::a8c1:abff:fe10:3    eth0        65535      1      2   0.010
"""


def test_bird_status() -> None:
    ok = na.bird_status("bgp", bird_probe.parse_protocols(PROTOCOLS_BGP))
    assert ok == {"protocol": "bgp", "sessions": [{"name": "uplink", "state": "Established"}], "detail": ""}
    down = na.bird_status("bgp", bird_probe.parse_protocols(PROTOCOLS_BGP_DOWN))
    assert down["sessions"] == [{"name": "uplink", "state": "Active"}] and down["detail"] == "uplink Active"
    babel = na.bird_status("babel", bird_probe.parse_protocols(PROTOCOLS_BABEL),
                           bird_probe.parse_babel_neighbors(BABEL_NEIGHBORS))
    assert babel == {"protocol": "babel", "detail": "", "sessions": [
        {"name": "fe80::a8c1:abff:fe10:1", "state": "up"}, {"name": "fe80::a8c1:abff:fe10:3", "state": "unreachable"}]}
    lonely = na.bird_status("babel", bird_probe.parse_protocols(PROTOCOLS_BABEL), [])
    assert lonely["detail"] == "no reachable Babel neighbour"
    assert na.bird_status("bgp", {})["detail"] == "protocol uplink missing"
    dead = na.bird_status("bgp", None, error="BIRD not answering: Unable to connect to server control socket")
    assert dead["sessions"] == [] and "Unable to connect" in dead["detail"]


# --- configuration and the agent's process collection ------------------------------------------------------
def test_config_round_trip_and_extra_keys_refused(tmp_path: Path) -> None:
    plan = _plan("ha")
    cfg = na.config_for(plan, Layout(tmp_path / "root", tmp_path / "cache"), "ctrl2")
    assert (cfg.listen_ip, cfg.listen_port) == ("10.10.0.22", 8100)
    assert cfg.collectors == ["10.10.0.21:8086", "10.10.0.22:8086", "10.10.0.23:8086"]
    f = tmp_path / "agent.json"
    f.write_text(cfg.model_dump_json())
    loaded = na.AgentConfig.load(f)
    assert loaded == cfg and (loaded.interval, loaded.probe_interval, loaded.rabbitmq_interval) == (1.0, 5.0, 5.0)
    with pytest.raises(ValidationError):
        na.AgentConfig.model_validate({**json.loads(f.read_text()), "bogus": 1})
    agent = na.Agent(loaded)
    assert [p.name for p in agent.probes] == ["zookeeper", "rabbitmq", "config-db", "analytics-db", "kafka"]
    assert [(p.table, p.struct) for p in agent.probes] == [
        ("ObjectConfigDatabaseInfo", "ZookeeperStatus"), ("ObjectConfigDatabaseInfo", "RabbitmqStatus"),
        ("ObjectConfigDatabaseInfo", "CassandraStatus"), ("ObjectDatabaseInfo", "CassandraStatus"),
        ("ObjectDatabaseInfo", "KafkaStatus")]
    lb = na.Agent(na.config_for(plan, Layout(tmp_path / "root"), "lb1"))
    assert [p.name for p in lb.probes] == ["haproxy", "lb-agent", "bird"]


def test_collect_processes_reads_state_files_and_sends_changes(tmp_path: Path) -> None:
    plan = _plan("ha")
    layout = Layout(tmp_path / "root", tmp_path / "cache")
    agent = na.Agent(na.config_for(plan, layout, "ctrl1"))
    rec = Recorder()
    agent.publisher = na.Publisher(rec, "ctrl1")

    def write(role: str, state: dict[str, Any]) -> None:
        d = layout.host_dir("ctrl1") / "supervisor" / role
        d.mkdir(parents=True, exist_ok=True)
        (d / "state.json").write_text(json.dumps({**state, "supervisor_pid": os.getpid()}))

    running = {name: {**p, "state": "running", "pid": os.getpid()}
               for name, p in CONTROLLER_STATE["processes"].items()}
    write("controller", {**CONTROLLER_STATE, "processes": running})
    write("analytics", ANALYTICS_STATE)  # no analyticsdb state yet: its processes are reported stopped
    agent.collect_processes()
    assert agent.collected == 1
    assert sorted(t for t, *_ in rec.sent) == ["ObjectCollectorInfo", "ObjectConfigDatabaseInfo", "ObjectConfigNode",
                                               "ObjectDatabaseInfo"]
    assert {key for _, key, _, _ in rec.sent} == {"ctrl1"}
    db = agent.publisher.sent["ObjectDatabaseInfo"]["NodeStatus"]
    assert {p["process_name"]: p["process_state"] for p in db["process_info"]} == {
        "analytics-db": PROCESS_STOPPED, "kafka": PROCESS_STOPPED}
    [own] = db["process_status"]
    assert own["module_id"] == na.MODULE and own["instance_id"] == "ctrl1"
    assert own["state"] == "Non-Functional" and "analyticsdb: no state.json" in own["description"]
    assert alarms.process_connectivity(_uve("ObjectDatabaseInfo", {"NodeStatus": db})) is not None
    # the controller's supervisor runs (this pid): the agent is Functional in the controller's tables
    cfg_db = agent.publisher.sent["ObjectConfigDatabaseInfo"]["NodeStatus"]
    assert cfg_db["process_status"][0]["state"] == FUNCTIONAL
    assert _alarm_types("ObjectConfigDatabaseInfo", {"NodeStatus": cfg_db}) == set()

    agent.collect_processes()  # nothing changed: nothing sent
    assert len(rec.sent) == 4

    held = {**running, "rabbitmq": CONTROLLER_STATE["processes"]["rabbitmq"]}
    write("controller", {**CONTROLLER_STATE, "processes": held})
    agent.collect_processes()
    assert [t for t, *_ in rec.sent[4:]] == ["ObjectConfigDatabaseInfo"]
    value = {"NodeStatus": rec.sent[-1][3]}
    assert "process-status" in _alarm_types("ObjectConfigDatabaseInfo", value)
