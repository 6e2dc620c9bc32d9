"""The container runtime's Compose projects (no engine): the exported file as it is, plus an override
of what differs on this machine (the host's network namespace, the host's PID namespace, the state
root at its own path); the image's interpreter for our own processes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from contrail_ha import export as ex
from contrail_ha.export import compose
from contrail_ha.rendering.base import Layout, ProcessSpec, python
from contrail_ha.runtime import cluster, compose_run, containers
from contrail_ha.runtime.supervisor import ORCHESTRATED_ENV
from contrail_ha.runtime.supervisor_state import GroupSpec
from contrail_ha.topology.plan import Plan
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="c-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _project(tmp_path: Path) -> tuple[Path, Layout]:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    layout = Layout(tmp_path / plan.cluster_id)  # tmp_path: short (unix socket paths are rendered)
    specs = [containers.in_image(g.spec) for g, _ in cluster.rendered_groups(plan, layout) if g.node == "ctrl1"]
    return compose_run.write_project(plan, layout, "ctrl1", specs, "localhost/contrail-ha:x"), layout


def test_local_project_is_the_exported_file_plus_an_override(short_tmp: Path) -> None:
    tmp_path = short_tmp
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    d, layout = _project(tmp_path)
    units = [u for u in ex.units(plan, layout.root, layout.root) if u.host == "ctrl1"]  # its secrets, as `export`
    exported = compose.write(plan, units, tmp_path / "export" / "compose", layout.root, "localhost/contrail-ha:x")[0]
    assert (d / "docker-compose.yaml").read_text() == exported.read_text()  # the very file users deploy
    assert (d / ".env").read_text() == (exported.parent / ".env").read_text()
    for svc in yaml.safe_load(exported.read_text())["services"].values():  # what real hosts need too
        assert svc["labels"][containers.LABEL] == plan.cluster_id
        assert sorted(svc["extra_hosts"]) == sorted(f"{h.name}:{h.ip}" for h in plan.topology.hosts)
    override = yaml.safe_load((d / compose_run.LOCAL_FILE).read_text())["services"]
    assert set(override) == set(yaml.safe_load(exported.read_text())["services"])
    for svc in override.values():
        assert svc["network_mode"] == f"ns:/run/netns/{plan.cluster_id}-ctrl1" and svc["pid"] == "host"
        assert f"{layout.root}:{layout.root}" in svc["volumes"]
        assert "labels" not in svc and "extra_hosts" not in svc  # the exported file's own
        assert svc["environment"][ORCHESTRATED_ENV] == "1"
        # only what differs on this machine: no command, image, health check or restart policy of its own
        assert not {"command", "image", "healthcheck", "restart", "privileged"} & set(svc)
    # --all-at-once: the supervisors start their processes themselves, as the exported files run them
    alone = compose_run.local_override(plan, layout, "ctrl1", list(override_roles(plan, layout)), orchestrated=False)
    assert all(ORCHESTRATED_ENV not in s["environment"] for s in alone["services"].values())
    assert {n: {k: v for k, v in s.items() if k != "environment"} for n, s in alone["services"].items()} == {
        n: {k: v for k, v in s.items() if k != "environment"} for n, s in override.items()}


def override_roles(plan: Plan, layout: Layout) -> list[str]:
    return [g.role for g, _ in cluster.rendered_groups(plan, layout) if g.node == "ctrl1"]


def test_our_processes_get_the_images_interpreter() -> None:
    spec = GroupSpec(host="h", role="r", run_dir="/r", log_dir="/l", processes=[
        ProcessSpec(name="api", argv=[python(), "-m", "contrail_ha.services.config_api", "/c.json"]),
        ProcessSpec(name="zk", argv=["java", "-cp", "/x.jar", "Main"])])
    out = containers.in_image(spec)
    api = out.processes[0].argv
    assert api[0] == containers.IMAGE_PYTHON and api[1:] == spec.processes[0].argv[1:]
    assert out.processes[1].argv == spec.processes[1].argv
