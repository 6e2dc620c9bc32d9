"""`contrail-ha export`: Compose and Kubernetes artifacts that run what the local runtime runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contrail_ha import export as ex
from contrail_ha.export import compose, kubernetes, unpack
from contrail_ha.runtime.containers import IMAGE_PYTHON
from contrail_ha.topology.plan import NODE_GROUP
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]
ROOT = Path("/var/lib/contrail-ha/contrail")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ex.Unit]]:
    out = tmp_path_factory.mktemp("export")
    p = subprocess.run([sys.executable, "-m", "contrail_ha.cli", "export", "all", str(out), "-t",
                        str(REPO / "examples" / "ha.yaml")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    return out, ex.units(plan, out, ROOT)


def test_every_role_group_of_every_host_is_a_container(exported: tuple[Path, list[ex.Unit]]) -> None:
    _, units = exported
    got = {(u.host, u.group) for u in units}
    assert got == {("lb1", "lb"), ("lb2", "lb"), *((f"ctrl{i}", g) for i in (1, 2, 3)
                                                   for g in ("controller", "analytics", "analyticsdb")),
                   *((h, NODE_GROUP) for h in ("lb1", "lb2", "ctrl1", "ctrl2", "ctrl3"))}
    for u in units:
        for p in u.spec.processes:
            if p.argv[:2] == [IMAGE_PYTHON, "-m"]:
                assert p.argv[2].startswith("contrail_ha.")
            else:
                assert not p.argv[0].endswith(("python", "python3")), p.argv[:3]  # no local interpreter left


def test_compose_per_host(exported: tuple[Path, list[ex.Unit]]) -> None:
    out, _ = exported
    doc = yaml.safe_load((out / "compose" / "ctrl1" / "docker-compose.yaml").read_text())
    assert set(doc["services"]) == {"contrail-controller", "contrail-analytics", "contrail-analyticsdb",
                                    "contrail-node-agent"}
    for name, svc in doc["services"].items():
        assert svc["network_mode"] == "host" and svc["restart"] == "unless-stopped"
        assert f"./state:{ROOT}" in svc["volumes"]
        spec = Path(svc["command"][-1])
        assert svc["command"][:4] == [IMAGE_PYTHON, "-m", "contrail_ha.runtime.supervisor", "--container"]
        assert svc["volumes"] == [f"./state:{ROOT}"]  # nothing of the exporting machine (its jar cache) mounted
        assert svc["image"].startswith("localhost/contrail-ha:")
        assert (out / "compose" / "ctrl1" / "state" / spec.relative_to(ROOT)).is_file(), name
        assert "privileged" not in svc
        # the health check: the same supervisor spec's processes run and answer their probes, checked as the
        # image's user, as which they run; the container's root can only hand the directories over
        assert svc["healthcheck"]["test"] == ["CMD", "setpriv", "--reuid=10001", "--regid=10001", "--clear-groups",
                                              "--", IMAGE_PYTHON, "-m", "contrail_ha.runtime.health", str(spec)]
        assert svc["cap_drop"] == ["ALL"] and set(svc["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID",
                                                                      "SETGID"}
        assert svc["security_opt"] == ["no-new-privileges"]
        exported_spec = json.loads((out / "compose" / "ctrl1" / "state" / spec.relative_to(ROOT)).read_text())
        assert exported_spec["run_as"] == "10001:10001"
        assert any(w.endswith("/data") or "/data/" in w for w in exported_spec["writable"]) or name in (
            "contrail-node-agent", "contrail-analytics")
    lb = yaml.safe_load((out / "compose" / "lb1" / "docker-compose.yaml").read_text())
    assert lb["services"]["contrail-lb"]["privileged"] is True and "cap_drop" not in lb["services"]["contrail-lb"]
    # BFD's timers first where the lb shares cores with the databases; the others keep the engine's 1024
    assert lb["services"]["contrail-lb"]["cpu_shares"] == 8192 and "cpu_shares" not in svc
    lb_spec = Path(lb["services"]["contrail-lb"]["command"][-1]).relative_to(ROOT)
    assert json.loads((out / "compose" / "lb1" / "state" / lb_spec).read_text())["run_as"] == ""  # stays root
    cookie = out / "compose" / "ctrl1" / "state" / "hosts" / "ctrl1" / "rabbitmq" / "home" / ".erlang.cookie"
    assert stat.S_IMODE(os.stat(cookie).st_mode) == 0o400
    assert cookie.read_text() == (out / "compose" / "ctrl2" / "state" / "hosts" / "ctrl2" / "rabbitmq" / "home" /
                                  ".erlang.cookie").read_text()  # one cluster, one cookie


def test_kubernetes_manifests_and_unpack_round_trip(exported: tuple[Path, list[ex.Unit]], tmp_path: Path) -> None:
    out, units = exported
    docs = list(yaml.safe_load_all((out / "kubernetes" / "contrail.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace" and kinds.count("Deployment") == len(units) == kinds.count("ConfigMap")
    deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    d = deps["contrail-controller-ctrl2"]["spec"]
    pod = d["template"]["spec"]
    assert d["replicas"] == 1 and d["strategy"]["type"] == "Recreate"
    assert pod["hostNetwork"] is True and pod["nodeSelector"] == {"kubernetes.io/hostname": "ctrl2"}
    assert d["selector"]["matchLabels"] == d["template"]["metadata"]["labels"]
    assert pod["initContainers"][0]["command"][:3] == [IMAGE_PYTHON, "-m", "contrail_ha.export.unpack"]
    assert deps["contrail-lb-lb1"]["spec"]["template"]["spec"]["containers"][0]["securityContext"] == \
        {"privileged": True}
    sec = pod["containers"][0]["securityContext"]
    assert sec["runAsUser"] == 0 and sec["allowPrivilegeEscalation"] is False and sec["capabilities"]["drop"] == ["ALL"]
    assert pod["initContainers"][0]["securityContext"] == {"runAsUser": 0}
    # what the init container does with the ConfigMap gives the same tree as the compose export
    cm = next(x for x in docs if x["kind"] == "ConfigMap" and x["metadata"]["name"] == "contrail-controller-ctrl2")
    cfg = tmp_path / "cm"
    cfg.mkdir()
    for k, v in cm["data"].items():
        (cfg / k).write_text(v)
    n = unpack.unpack(cfg, tmp_path / "root")
    unit = next(u for u in units if (u.host, u.group) == ("ctrl2", "controller"))
    assert n == len(unit.files)
    for rel, text in unit.files.items():
        assert (tmp_path / "root" / rel).read_text() == text
    assert all((tmp_path / "root" / d).is_dir() for d in unit.dirs)
    home = tmp_path / "root" / "hosts" / "ctrl2" / "rabbitmq" / "home"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


def test_unpack_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    (tmp_path / "files.json").write_text(json.dumps({"files": {"f0": "../../etc/passwd"}, "modes": {}, "dirs": []}))
    (tmp_path / "f0").write_text("x")
    with pytest.raises(ValueError, match="outside the state root"):
        unpack.unpack(tmp_path, tmp_path / "root")


def test_readme_and_no_registry_image(exported: tuple[Path, list[ex.Unit]]) -> None:
    out, _ = exported
    readme = (out / "README.md").read_text()
    assert "net.ipv4.ip_nonlocal_bind=1" in readme and "contrail-ha image save" in readme
    assert not (out / "Dockerfile").exists()  # no FROM debian:12 from a registry: the product's own image
    assert json.loads((out / "manifest.json").read_text())[0]["container"].startswith("contrail-")
    units = ex.units(load_topology(REPO / "examples" / "split.yaml").plan(), out / "split", ROOT)
    assert len(compose.project("adb1", [u for u in units if u.host == "adb1"], ROOT, "img")["services"]) == 2
    assert kubernetes.manifests(units, "contrail", ROOT)[0]["metadata"]["name"] == "contrail-ha-contrail"
