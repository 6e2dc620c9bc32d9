"""The exported Compose files against the real tools: the compose-spec schema that Debian's
docker-compose ships, and ``docker-compose config`` itself (which validates and resolves a project
as ``up`` would). A file only our own tests read could drift from what Compose accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from contrail_ha.rendering.base import DEFAULT_STATE_ROOT
from contrail_ha.topology.validate import load_topology

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")  # Debian's docker-compose
VALIDATOR = jsonschema.Draft201909Validator  # the schema's $schema, spelt in a form jsonschema does not look up


def _export(topology: str, out: Path) -> Path:
    import sys

    p = subprocess.run([sys.executable, "-m", "contrail_ha.cli", "export", "compose", str(out), "-t",
                        str(REPO / "examples" / topology), "--state-root", str(out / "kept")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return out / "compose"


def _compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("docker-compose"), "docker-compose missing: scripts/install.sh installs it"
    return subprocess.run(["docker-compose", *args], cwd=project, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("topology", ["ha.yaml", "split.yaml"])
def test_every_exported_project_is_valid_compose(topology: str, tmp_path: Path) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = VALIDATOR(schema)
    plan = load_topology(REPO / "examples" / topology).plan()
    projects = sorted(p for p in _export(topology, tmp_path).iterdir() if p.is_dir())
    assert {p.name for p in projects} == {h.name for h in plan.topology.hosts}
    for project in projects:
        doc = yaml.safe_load((project / "docker-compose.yaml").read_text())
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], f"{project.name}: {errors}"
        p = _compose(project, "config", "-q")
        assert p.returncode == 0, f"{project.name}: {p.stderr}"
        services = _compose(project, "config", "--services").stdout.split()
        assert sorted(services) == sorted(doc["services"]) and services
        resolved = yaml.safe_load(_compose(project, "config").stdout)
        for name, svc in resolved["services"].items():  # ./state resolved against the project's directory
            [vol] = svc["volumes"]
            source, target = (vol["source"], vol["target"]) if isinstance(vol, dict) else vol.split(":")[:2]
            assert source == str(project / "state") and target == str(DEFAULT_STATE_ROOT / plan.cluster_id), name
        assert (project / ".env").read_text() == f"COMPOSE_PROJECT_NAME=contrail-ha-{project.name}\n"


def test_the_checks_reject_what_compose_rejects(tmp_path: Path) -> None:
    """Both checks really check: a top-level ``name`` (newer Compose only) fails both."""
    schema = json.loads(SCHEMA.read_text())
    project = _export("ha.yaml", tmp_path) / "ctrl1"
    f = project / "docker-compose.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["name"] = "contrail-ha-ctrl1"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema, cls=VALIDATOR)
    p = _compose(project, "config", "-q")
    assert p.returncode != 0 and "name" in p.stderr, p.stderr


def test_the_local_runtime_merges_its_override_into_the_exported_file() -> None:
    """What `up --containers` gives docker-compose: the exported file with this machine's differences
    merged by Compose itself (the state root mounted once, at its own path)."""
    import tempfile

    from contrail_ha.rendering.base import Layout
    from contrail_ha.runtime import cluster, compose_run, containers

    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    tmp = Path(tempfile.mkdtemp(prefix="c-", dir="/tmp"))  # short: unix socket paths are rendered
    try:
        layout = Layout(tmp / plan.cluster_id)
        specs = [containers.in_image(g.spec) for g, _ in cluster.rendered_groups(plan, layout) if g.node == "lb1"]
        d = compose_run.write_project(plan, layout, "lb1", specs, "localhost/contrail-ha:x")
        p = _compose(d, "-f", compose_run.BASE_FILE, "-f", compose_run.LOCAL_FILE, "config")
        assert p.returncode == 0, p.stderr
        services = yaml.safe_load(p.stdout)["services"]
        assert set(services) == {"contrail-lb", "contrail-node-agent"}
        for svc in services.values():
            assert svc["network_mode"] == f"ns:/run/netns/{plan.cluster_id}-lb1" and svc["pid"] == "host"
            mounts = [(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
                      for v in svc["volumes"]]
            assert [m for m in mounts if m[1] == str(layout.root)] == [(str(layout.root), str(layout.root))]
            test = svc["healthcheck"]["test"]
            assert test[test.index(containers.IMAGE_PYTHON):][:3] == [containers.IMAGE_PYTHON, "-m",
                                                                     "contrail_ha.runtime.health"]
            assert svc["labels"][containers.LABEL] == plan.cluster_id
        assert services["contrail-lb"]["privileged"] is True
        # merged, the node agent keeps the exported least privilege (the override does not widen it)
        agent = services["contrail-node-agent"]
        assert agent["cap_drop"] == ["ALL"] and "privileged" not in agent and agent["user"] == "0:0"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
