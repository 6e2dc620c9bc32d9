"""The analytics plane on the shared HA cluster, read through VIP:8081 as an operator would.

Every host's node agent reports its processes; killing one shows up as a NodeStatus change and an
alarm, config changes become object logs, and messages survive a Kafka broker and an aggregator
being killed at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from contrail_ha.operations import faults
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.protocol import PROCESS_RUNNING, Origin
from contrail_ha.topology.plan import AGGREGATOR, ANALYTICS_API, COLLECTOR, KAFKA
from tests.e2e.conftest import Cluster
from tests.helpers.aio import Loop
from tests.helpers.proc import wait_for as wait


def api(cluster: Cluster) -> str:
    return f"{cluster.analytics}/analytics"


def get(cluster: Cluster, path: str, **params: Any) -> Any:
    r = httpx.get(f"{api(cluster)}{path}", params=params, timeout=10)
    assert r.status_code == 200, f"GET {path}: HTTP {r.status_code} {r.text[:300]}"
    return r.json()


def query(cluster: Cluster, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = httpx.post(f"{api(cluster)}/query", json=body, timeout=30)
    assert r.status_code == 200, f"query: HTTP {r.status_code} {r.text[:300]}"
    return r.json()["value"]


def process_state(uve: dict[str, Any], name: str) -> str | None:
    for p in uve.get("NodeStatus", {}).get("process_info", []):
        if p["process_name"] == name:
            return p["process_state"]
    return None


def alarm_types(uve: dict[str, Any]) -> list[str]:
    return [a["type"].rsplit("-defined-", 1)[-1] for a in uve.get("UVEAlarms", {}).get("alarms", [])]


def test_every_host_reports_node_status(cluster: Cluster) -> None:
    plan = cluster.plan
    wanted = {"config-node": plan.controllers, "config-database-node": plan.controllers,
              "analytics-node": plan.analytics, "database-node": plan.analyticsdb, "lb-node": plan.lbs}
    for uve_type, hosts in wanted.items():
        names = wait(lambda t=uve_type, hs=hosts: {e["name"] for e in get(cluster, f"/uves/{t}s")} >=
                     {h.name for h in hs} and True, 60, f"{uve_type} UVEs of every host")
        assert names
    uve = get(cluster, "/uves/config-database-node/ctrl1")
    assert process_state(uve, "zookeeper") == PROCESS_RUNNING
    assert uve["ZookeeperStatus"]["serving"] is True
    assert {n["status"] for n in uve["CassandraStatus"]["nodes"]} == {"U"}
    node = get(cluster, "/uves/config-node/ctrl2")
    assert any(ps["module_id"] == "contrail-api" for ps in node["NodeStatus"]["process_status"])
    lb = get(cluster, "/uves/lb-node/lb1")
    assert process_state(lb, "haproxy") == PROCESS_RUNNING


def test_killed_process_raises_alarm_within_10s_and_clears(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    host = "ctrl2"
    faults.kill(plan, layout, host, "rabbitmq", hold=True)
    t0 = time.monotonic()
    try:
        def alarmed() -> dict[str, Any] | None:
            uve = get(cluster, f"/uves/config-database-node/{host}")
            if process_state(uve, "rabbitmq") != PROCESS_RUNNING and "process-status" in alarm_types(uve):
                return uve
            return None
        uve = wait(alarmed, 30, "process-status alarm for the killed rabbitmq", interval=0.2)
        seen = time.monotonic() - t0
        # the time is a figure for docs/analytics.md (the acceptance asks for <= 10 s), not a test bound
        print(f"\nrabbitmq killed on {host}: NodeStatus down and alarm through the VIP after {seen:.2f}s")
        listed = get(cluster, "/alarms")["config-database-node"]
        assert any(e["name"] == host for e in listed)
        [a] = [a for a in uve["UVEAlarms"]["alarms"] if a["type"].endswith("process-status")]
        assert "rabbitmq" in a["description"]
    finally:
        faults.heal(plan, layout, host, "rabbitmq")
    wait(lambda: (u := get(cluster, f"/uves/config-database-node/{host}")) and
         process_state(u, "rabbitmq") == PROCESS_RUNNING and "process-status" not in alarm_types(u),
         120, "alarm cleared after restart")


def test_config_changes_are_object_logs(cluster: Cluster) -> None:
    name = f"objlog-{uuid.uuid4().hex[:6]}"
    t0 = int(time.time() * 1e6)
    r = httpx.post(f"{cluster.api}/projects", json={"project": {"fq_name": ["default-domain", name]}},
                   headers={"X-User-Name": "e2e-operator", "X-Forwarded-For": "203.0.113.7"}, timeout=10)
    assert r.status_code == 200, r.text
    u = r.json()["project"]["uuid"]
    assert httpx.put(f"{cluster.api}/project/{u}", json={"project": {"display_name": "renamed"}},
                     timeout=10).status_code == 200
    assert httpx.delete(f"{cluster.api}/project/{u}", timeout=10).status_code == 200
    body = {"table": "ConfigObjectTable", "start_time": t0, "end_time": "now",
            "select_fields": ["MessageTS", "ObjectId", "ObjectLog"],
            "where": [[{"name": "ObjectId", "value": f"project:default-domain:{name}", "op": 1}]],
            "sort_fields": ["MessageTS"], "sort": 1}
    rows = wait(lambda: len(r := query(cluster, body)) >= 3 and r, 30, "three object logs")
    assert [x["ObjectLog"]["operation"] for x in rows] == ["CREATE", "UPDATE", "DELETE"]
    assert rows[0]["ObjectLog"]["user"] == "e2e-operator" and rows[0]["ObjectLog"]["uuid"] == u
    # the address HAProxy saw (this test's, in the client namespace), not the one the client claimed
    assert rows[0]["ObjectLog"]["remote"] == cluster.plan.client_link[1]
    assert rows[1]["ObjectLog"]["old"]["display_name"] == name
    assert rows[1]["ObjectLog"]["new"]["display_name"] == "renamed"
    # the time range really bounds the result
    assert query(cluster, {**body, "end_time": t0 - 1, "start_time": t0 - 60_000_000}) == []


def test_replicas_answer_identically(cluster: Cluster) -> None:
    replicas = cluster.plan.of(ANALYTICS_API)
    assert len(replicas) >= 2
    path = "/analytics/uves/config-database-node/ctrl1"

    def same() -> list[Any] | None:
        answers = [httpx.get(f"http://{r.address}{path}", timeout=10).json() for r in replicas]
        return answers if all(a == answers[0] for a in answers) else None
    answers = wait(same, 30, "identical answers from every analytics-api replica")
    assert answers[0]["NodeStatus"]["process_info"]


def test_no_message_lost_when_broker_and_aggregator_die(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    broker_host = plan.of(KAFKA)[-1].host.name
    agg_host = plan.of(AGGREGATOR)[0].host.name
    tag = uuid.uuid4().hex[:8]
    n = 3000
    t0 = int(time.time() * 1e6)
    loop = Loop()
    gen = Generator(Origin(source="e2e-client", node_type="Test", module="e2e-loss", instance_id=tag),
                    [i.address for i in plan.of(COLLECTOR)])

    async def send() -> list[str]:
        gen.start()
        ids = []
        for i in range(n):
            ids.append(gen.message("E2eLossTest", {"tag": tag, "n": i}))
            if i % 100 == 99:
                await asyncio.sleep(0.05)
        assert await gen.flush(120), gen.reason
        return ids

    fut = asyncio.run_coroutine_threadsafe(send(), loop.loop)
    try:
        wait(lambda: gen.stats["sent"] >= 500, 60, "first 500 messages sent")
        faults.kill(plan, layout, broker_host, "kafka", hold=True)
        faults.kill(plan, layout, agg_host, "aggregator", hold=True)
        ids = fut.result(300)
    finally:
        faults.heal(plan, layout, broker_host, "kafka")
        faults.heal(plan, layout, agg_host, "aggregator")
        loop.run(gen.stop())
        loop.close()
    body = {"table": "MessageTable", "start_time": t0, "end_time": "now",
            "select_fields": ["MessageId", "Xmlmessage"],
            "where": [[{"name": "Messagetype", "value": "E2eLossTest", "op": 1}]], "limit": 10000}
    rows = wait(lambda: len(r := [x for x in query(cluster, body) if x["Xmlmessage"]["tag"] == tag]) >= n and r,
                120, f"{n} messages stored")
    assert len(rows) == n
    assert sorted(x["MessageId"] for x in rows) == sorted(ids)
    assert sorted(x["Xmlmessage"]["n"] for x in rows) == list(range(n))
    wait(lambda: faults.process_state(plan, layout, broker_host, "kafka")["state"] == "running", 60, "kafka back")
