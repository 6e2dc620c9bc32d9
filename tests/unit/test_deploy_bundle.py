"""The deployment's per-host projects (contrail_ha.deploy.bundle) and playbook variables: what
Ansible copies to each host, and what makes a second run change nothing."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import yaml

from contrail_ha import export as ex
from contrail_ha.deploy import bundle, runner
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime import containers, ownership
from contrail_ha.topology.validate import load_topology, parse

REPO = Path(__file__).resolve().parents[2]


def _archive(plan, tmp_path: Path, host: str, image: str = "localhost/contrail-ha:x") -> bytes:
    root = DEFAULT_STATE_ROOT / plan.cluster_id
    units = [u for u in ex.units(plan, tmp_path / "kept", root) if u.host == host]
    return bundle.host_archive(plan, host, units, root, image)


def test_a_hosts_archive_is_its_exported_project_owned_by_the_images_user(tmp_path: Path) -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    data = _archive(plan, tmp_path, "ctrl1")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert "docker-compose.yaml" in names and ".env" in names
        assert "state/hosts/ctrl1/supervisor/controller/spec.json" in names
        assert not any(n.startswith("state/hosts/ctrl2") for n in names)  # only this host's tree
        assert {(m.uid, m.gid) for m in members} == {(ownership.UID, ownership.GID)}
        assert {m.mtime for m in members} == {bundle.MTIME}
        # every directory comes before what it holds, so extraction never creates one with another mode
        seen: set[str] = set()
        for m in members:
            parent = m.name.rsplit("/", 1)[0] if "/" in m.name else ""
            assert not parent or parent in seen, m.name
            seen.add(m.name)
        cookie = [m for m in members if m.name.endswith(".erlang.cookie")]
        assert cookie and all(m.mode & 0o077 == 0 for m in cookie)  # the secret stays its owner's
    services = bundle.services(data)
    assert set(services) == {"contrail-controller", "contrail-analytics", "contrail-analyticsdb",
                             "contrail-node-agent"}
    for svc in services.values():
        assert svc["network_mode"] == "host" and svc["volumes"] == [f"./state:{DEFAULT_STATE_ROOT / plan.cluster_id}"]
        assert svc["labels"][containers.LABEL] == plan.cluster_id
        assert "10.10.0.23" in " ".join(svc["extra_hosts"])


def test_the_archive_is_the_same_for_the_same_input_and_labels_what_changed(tmp_path: Path) -> None:
    """Unchanged: byte for byte (Ansible leaves the host alone). Changed: only the containers whose
    rendered files changed get a new config label (Compose recreates those alone)."""
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    a, b = _archive(plan, tmp_path, "ctrl1"), _archive(plan, tmp_path, "ctrl1")
    assert a == b
    text = (REPO / "examples" / "ha.yaml").read_text()
    bigger = yaml.safe_load(text)
    bigger.setdefault("heap", {})["analytics_db"] = 640
    changed = parse(bigger).plan()
    before = {n: s["labels"][containers.CONFIG_LABEL] for n, s in bundle.services(a).items()}
    after = {n: s["labels"][containers.CONFIG_LABEL] for n, s in bundle.services(_archive(changed, tmp_path,
                                                                                           "ctrl1")).items()}
    assert after["contrail-analyticsdb"] != before["contrail-analyticsdb"]
    # (the node agent reads the whole topology: its label follows any change)
    for same in ("contrail-controller", "contrail-analytics"):
        assert after[same] == before[same]
    # a new image changes every service's definition: Compose rolls them all (one host at a time)
    other = bundle.services(_archive(plan, tmp_path, "ctrl1", image="localhost/contrail-ha:y"))
    assert {s["image"] for s in other.values()} == {"localhost/contrail-ha:y"}


def test_write_keeps_an_unchanged_archive_and_hides_it(tmp_path: Path) -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    layout = Layout(tmp_path / plan.cluster_id)
    paths = bundle.write(plan, layout.root, DEFAULT_STATE_ROOT / plan.cluster_id, "img", tmp_path / "b")
    assert set(paths) == {h.name for h in plan.topology.hosts}
    stamp = {h: p.stat().st_mtime_ns for h, p in paths.items()}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in paths.values())  # it carries the secrets
    bundle.write(plan, layout.root, DEFAULT_STATE_ROOT / plan.cluster_id, "img", tmp_path / "b")
    assert {h: p.stat().st_mtime_ns for h, p in paths.items()} == stamp


def test_playbook_variables_name_every_role_and_template_per_host(tmp_path: Path) -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    layout = Layout(tmp_path / plan.cluster_id)
    v = runner.variables(plan, layout, "localhost/contrail-ha:x", standin=True)
    assert v["contrail_ha_services"] == containers.CONTAINER_NAMES
    assert v["contrail_ha_dir"] == f"/opt/contrail-ha/{plan.cluster_id}"
    assert "@NOFILE@" in v["contrail_ha_containers_conf"] and 'runtime = "runc"' in v["contrail_ha_containers_conf"]
    assert v["contrail_ha_container"] == "{{ contrail_ha_service }}-{{ inventory_hostname }}"
    for name in ("site.yaml", "down.yaml", "prepare.yaml", "first-start.yaml", "roll.yaml"):
        yaml.safe_load((runner.PLAYBOOKS / name).read_text())  # well-formed
    plays = yaml.safe_load((runner.PLAYBOOKS / "site.yaml").read_text())
    # the tiers in `up`'s order, each first started together, then rolled one host at a time
    tiers = [p["vars"]["contrail_ha_role"] for p in plays if "vars" in p]
    assert tiers == [t for t in ("controller", "analyticsdb", "analytics", "lb", "node") for _ in (0, 1)]
    assert [p.get("serial") for p in plays if "vars" in p] == [None, 1] * 5
