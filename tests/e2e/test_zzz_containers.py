"""Runs after the process cluster is down: the default HA topology on the default runtime, containers
(``up`` with no runtime flag, as the README's first command runs it).

Every role of every host is a container of the product's image, started by docker-compose from the
very file ``export compose`` writes; each container's health check passes; ``down`` leaves no
container, API service or namespace behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import yaml

from contrail_ha.image.engine import Engine
from contrail_ha.runtime import compose_run, containers
from contrail_ha.runtime.netns import NETNS_DIR
from tests.e2e.conftest import CLI as _CLI
from tests.e2e.conftest import Cluster

# As an operator runs it: from the machine's own network namespace (this test process lives in the
# cluster's client namespace, where no registry, mirror or PyPI is reachable for an image build).
# The machine's namespace is held open from collection time, before the cluster fixture entered the client's.
_MACHINE_NS = os.open("/proc/self/ns/net", os.O_RDONLY)
CLI = ["nsenter", f"--net=/proc/{os.getpid()}/fd/{_MACHINE_NS}", *_CLI]


def test_the_default_topology_on_containers(cluster: Cluster, tmp_path: Path) -> None:
    engine = Engine()
    plan, topo = cluster.plan, str(cluster.topology)
    try:
        p = subprocess.run([*CLI, "up", "-t", topo], capture_output=True, text=True, timeout=1500)
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
        assert "running (containers)" in p.stdout
        names = containers.ours(engine, plan.cluster_id)
        assert len(names) == 16, names  # 4 roles on each controller, lb + node agent on each lb
        assert set(containers.states(engine, plan.cluster_id).values()) == {"running"}
        # the project docker-compose ran is the file `export compose` writes for that host
        ex = subprocess.run([*CLI, "export", "compose", str(tmp_path), "-t", topo,
                             "--image", json.loads((cluster.layout.root / "runtime.json").read_text())["image"]],
                            capture_output=True, text=True, timeout=300)
        assert ex.returncode == 0, ex.stdout + ex.stderr
        for h in plan.topology.hosts:
            ran = compose_run.project_dir(cluster.layout, h.name) / compose_run.BASE_FILE
            assert ran.read_text() == (tmp_path / "compose" / h.name / compose_run.BASE_FILE).read_text(), h.name
            services = yaml.safe_load(ran.read_text())["services"]
            assert {s["container_name"] for s in services.values()} <= set(names)
        deadline = time.monotonic() + 300  # BGP sessions and BFD settle after the last wave
        while True:
            st = subprocess.run([*CLI, "status", "--json", "-t", topo], capture_output=True, text=True, timeout=600)
            checks = json.loads(st.stdout)["checks"]
            bad = [c for c in checks if not c["ok"]]
            if (st.returncode == 0 and not bad) or time.monotonic() > deadline:
                break
            time.sleep(5)
        assert st.returncode == 0 and not bad, bad
        boxes = [c for c in checks if c["component"] == "container"]
        assert len(boxes) == 16 and all("healthy" in c["detail"] for c in boxes), boxes
    finally:
        down = subprocess.run([*CLI, "down", "--purge", "-t", topo], capture_output=True, text=True, timeout=900)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert containers.ours(engine, plan.cluster_id) == []
    assert compose_run.ApiService(engine).pid() is None
    prefix = f"{plan.cluster_id}-"
    assert not NETNS_DIR.exists() or [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)] == []


def test_the_exported_files_start_a_cluster_alone(cluster: Cluster) -> None:
    """``up --all-at-once``: every host's containers started together, as ``docker compose up -d`` of the
    exported files on each host; nothing enables processes in waves or runs a start-up step. The
    containers order themselves (a new RabbitMQ node waits for a running one, a new Kafka broker for
    ZooKeeper; the policy comes from RabbitMQ's boot definitions, the topics from the collectors) and
    the cluster comes up healthy with no process restarted."""
    engine = Engine()
    plan, topo = cluster.plan, str(cluster.topology)
    try:
        p = subprocess.run([*CLI, "up", "--all-at-once", "-t", topo], capture_output=True, text=True, timeout=1500)
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
        assert "(all at once)" in p.stdout and "starting rabbitmq" not in p.stdout  # no waves
        for h in plan.topology.hosts:
            local = yaml.safe_load((compose_run.project_dir(cluster.layout, h.name)
                                    / compose_run.LOCAL_FILE).read_text())
            assert all("CONTRAIL_HA_ORCHESTRATED" not in s["environment"] for s in local["services"].values())
        deadline = time.monotonic() + 120  # `up` returned once every check passed; a BGP flap may follow
        while True:
            st = subprocess.run([*CLI, "status", "--json", "-t", topo], capture_output=True, text=True, timeout=600)
            checks = json.loads(st.stdout)["checks"]
            if (st.returncode == 0 and all(c["ok"] for c in checks)) or time.monotonic() > deadline:
                break
            time.sleep(5)
        assert st.returncode == 0 and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
        # the gated members were ordered by their gates, not by crash-and-retry
        restarted = {c["target"]: c["data"]["restarts"] for c in checks if c["component"] == "process"
                     and c["target"].split("/")[-1] in ("rabbitmq", "kafka") and c["data"].get("restarts")}
        assert restarted == {}, restarted
        # each later RabbitMQ node saw it was new and started once a peer answered (whether it had to wait
        # depends on how fast the first one came up); the whole log: the gate speaks early
        logs = [engine.run("logs", containers.name(h.name, "controller"), timeout=60) for h in plan.controllers[1:]]
        gated = "\n".join(r.stdout + r.stderr for r in logs)
        assert gated.count("rabbitmq is a new member") == 2 and gated.count("its peers answer; starting it") >= 2
    finally:
        down = subprocess.run([*CLI, "down", "--purge", "-t", topo], capture_output=True, text=True, timeout=900)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert containers.ours(engine, plan.cluster_id) == []
