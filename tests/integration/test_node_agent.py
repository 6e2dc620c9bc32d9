"""The node agent against a real single-node ZooKeeper on 127.0.72.1, run by a real role supervisor.

The test starts the controller supervisor (with only ZooKeeper in its group) and the agent as
``python -m contrail_ha.services.analytics.node_agent agent.json``, and reads what the agent would
send from its ``GET /status``: ZooKeeper serving in standalone mode and running; then, once the
supervisor has stopped ZooKeeper, the process stopped (published within a couple of seconds of the
supervisor's state.json) and ZooKeeper not serving, each raising its alarm. No collector listens:
the generator keeps its state queued, which does not affect what the agent publishes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from contrail_ha.rendering import zookeeper as zk_render
from contrail_ha.rendering.base import DEFAULT_CACHE, Layout
from contrail_ha.runtime.supervisor import GroupSpec
from contrail_ha.services.analytics import alarms
from contrail_ha.services.analytics.node_agent import api as na
from contrail_ha.services.analytics.protocol import PROCESS_RUNNING, PROCESS_STOPPED
from contrail_ha.topology.plan import ZOOKEEPER, Plan
from tests.helpers import proc
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PREFIX = "127.0.72"
HOST = "n1"
TABLE = "ObjectConfigDatabaseInfo"


@dataclass
class Env:
    plan: Plan
    layout: Layout
    run_dir: Path  # the controller supervisor's
    url: str  # the agent's

    def status(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/status", timeout=2.0)
        r.raise_for_status()
        return r.json().get(TABLE, {})

    def supervisor_state(self) -> str | None:
        try:
            return json.loads((self.run_dir / "state.json").read_text())["processes"]["zookeeper"]["state"]
        except (OSError, ValueError, KeyError):
            return None


def _zk(structs: dict[str, Any]) -> dict[str, Any]:
    return structs.get("ZookeeperStatus", {})


def _zk_process(structs: dict[str, Any]) -> dict[str, Any]:
    procs = structs.get("NodeStatus", {}).get("process_info", [])
    return next((p for p in procs if p["process_name"] == "zookeeper"), {})


def _stop(p: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to a process this test started (by PID), SIGKILL if it does not exit."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    plan = loopback_plan(PREFIX, 1, roles=("controller",))
    layout = Layout(tmp_path / "root", cache=DEFAULT_CACHE)
    proc.require_runtime(layout, "zookeeper")
    inst = plan.instance(ZOOKEEPER, HOST)
    r = zk_render.render(plan, inst, layout)
    proc.write_files(r)
    run_dir = layout.host_dir(HOST) / "supervisor" / "controller"
    spec = GroupSpec(host=HOST, role="controller", run_dir=str(run_dir), log_dir=str(layout.host_dir(HOST) / "logs"),
                     processes=r.processes)
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(spec.to_json())

    cfg = na.config_for(plan, layout, HOST, collectors=[f"{PREFIX}.1:8086"],  # nothing listens there
                        interval=0.5, probe_interval=1.0, rabbitmq_interval=3600.0)
    agent_json = tmp_path / "agent.json"
    agent_json.write_text(cfg.model_dump_json(indent=1))
    logs = tmp_path / "logs"
    logs.mkdir()
    started: list[tuple[subprocess.Popen[bytes], float]] = []
    try:
        with open(logs / "supervisor.out", "wb") as out:
            started.append((subprocess.Popen([sys.executable, "-m", "contrail_ha.runtime.supervisor",
                                              str(run_dir / "spec.json")], stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path), 30.0))
        (run_dir / "zookeeper.enabled").touch()
        with open(logs / "node-agent.out", "wb") as out:
            started.append((subprocess.Popen([sys.executable, "-m", "contrail_ha.services.analytics.node_agent",
                                              str(agent_json)], stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path), 15.0))
        yield Env(plan, layout, run_dir, f"http://{cfg.listen_ip}:{cfg.listen_port}")
    finally:
        for p, timeout in reversed(started):
            _stop(p, timeout)
        print("\n--- node agent log ---\n" + (logs / "node-agent.out").read_text()[-3000:])


def test_zookeeper_serving_then_stopped(env: Env) -> None:
    def healthy() -> bool:
        r = httpx.get(f"{env.url}/health", timeout=2.0)
        return r.status_code == 200 and r.json()["ok"] is True

    proc.wait_for(healthy, 30, "node agent /health")

    # ZooKeeper comes up under its supervisor: the agent reports it running and serving, standalone
    structs = proc.wait_for(lambda: (s := env.status()) and _zk(s).get("serving") and
                            _zk_process(s).get("process_state") == PROCESS_RUNNING and s, 60, "zookeeper serving")
    assert isinstance(structs, dict)
    zk = _zk(structs)
    assert (zk["mode"], zk["serving"], zk["address"]) == ("standalone", True, f"{PREFIX}.1:2181")
    assert zk["detail"] == ""
    p = _zk_process(structs)
    assert p["pid"] and p["start_count"] == 1 and p["last_exit"] == ""
    own = structs["NodeStatus"]["process_status"]
    assert [(s["module_id"], s["instance_id"]) for s in own] == [(na.MODULE, HOST)]
    assert own[0]["description"] == ""  # the controller supervisor runs
    uve = alarms.Uve(TABLE, HOST, structs, agent_age_s=0.5)
    assert alarms.zookeeper_quorum(uve) is None
    # the plan also puts rabbitmq (+ epmd) and the config DB on n1; no supervisor runs them here
    assert alarms.process_status(uve) == (alarms.CRITICAL, "Process(es) not running: " + ", ".join(
        f"{n} (PROCESS_STATE_STOPPED: no supervisor reports it)" for n in ("config-db", "epmd", "rabbitmq")))
    # nor the config DB: reported down, the agent keeps going
    assert structs["CassandraStatus"]["nodes"] == [{"address": f"{PREFIX}.1", "status": "D", "state": "N"}]
    assert "Connection refused" in structs["CassandraStatus"]["detail"]

    # The supervisor stops ZooKeeper: the agent publishes the stopped process within ~1 s of state.json
    (env.run_dir / "zookeeper.enabled").unlink()
    proc.wait_for(lambda: env.supervisor_state() == "disabled", 30, "supervisor stopped zookeeper", interval=0.05)
    t0 = time.monotonic()
    proc.wait_for(lambda: _zk_process(env.status()).get("process_state") == PROCESS_STOPPED, 10,
                  "zookeeper reported stopped", interval=0.05)
    published_s = time.monotonic() - t0
    print(f"\nprocess state published {published_s:.2f}s after the supervisor's state.json")
    assert published_s < 2.0, f"process state published {published_s:.2f}s after state.json"

    structs = proc.wait_for(lambda: (s := env.status()) and _zk(s).get("serving") is False and s, 10,
                            "zookeeper reported not serving")
    assert isinstance(structs, dict)
    zk = _zk(structs)
    assert zk["mode"] == "down" and "unreachable" in zk["detail"]
    uve = alarms.Uve(TABLE, HOST, structs, agent_age_s=0.5)
    assert alarms.zookeeper_quorum(uve) is not None
    severity, text = alarms.process_status(uve)
    assert severity == alarms.CRITICAL and "zookeeper (PROCESS_STATE_STOPPED" in text
    r = httpx.get(f"{env.url}/health", timeout=2.0)
    assert r.status_code == 200 and r.json()["probes"]["zookeeper"].startswith("unreachable")

    # rabbitmqctl (run once here) finds no node: nothing running, and why
    t0 = time.monotonic()
    rabbit = proc.wait_for(lambda: env.status().get("RabbitmqStatus"), 40, "RabbitmqStatus")
    print(f"RabbitmqStatus after {time.monotonic() - t0:.1f}s more: {rabbit}")
    assert isinstance(rabbit, dict) and rabbit["node"] == f"rabbit@{PREFIX}.1"
    assert rabbit["running_nodes"] == [] and rabbit["detail"]
    assert alarms.rabbitmq_cluster(alarms.Uve(TABLE, HOST, {"RabbitmqStatus": rabbit}, 0.5)) is not None
