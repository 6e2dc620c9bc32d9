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
from contrail_ha.topology.plan import NODE_GROUP, Plan
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]
ROOT = Path("/var/lib/contrail-ha/contrail")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ex.Unit]]:
    out = tmp_path_factory.mktemp("export")
    p = subprocess.run([sys.executable, "-m", "contrail_ha.cli", "export", "all", str(out), "-t",
                        str(REPO / "examples" / "ha.yaml"), "--state-root", str(out / "kept")],
                       capture_output=True, text=True, timeout=120)
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


def _k8s(out: Path) -> list[dict]:
    return list(yaml.safe_load_all((out / "kubernetes" / "contrail.yaml").read_text()))


def _materialize(doc: dict, into: Path) -> Path:
    """A ConfigMap or Secret as the kubelet mounts it: one file per key."""
    into.mkdir(parents=True)
    for k, v in (doc.get("data") or doc.get("stringData") or {}).items():
        (into / k).write_text(v)
    return into


def test_kubernetes_daemonsets_by_role_label(exported: tuple[Path, list[ex.Unit]]) -> None:
    out, _ = exported
    docs = _k8s(out)
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace"
    assert kinds.count("DaemonSet") == kinds.count("ConfigMap") == kinds.count("PodDisruptionBudget") == 5
    assert "Deployment" not in kinds
    ds = {d["metadata"]["name"]: d for d in docs if d["kind"] == "DaemonSet"}
    ctrl = ds["contrail-controller"]["spec"]
    pod = ctrl["template"]["spec"]
    assert ctrl["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "contrail-ha.io/controller", "operator": "In",
                                            "values": ["enabled"]}]}]
    node_terms = ds["contrail-node-agent"]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(node_terms) == 4  # wherever any role runs
    assert pod["hostNetwork"] is True and ctrl["selector"]["matchLabels"] == ctrl["template"]["metadata"]["labels"]
    init, main = pod["initContainers"][0], pod["containers"][0]
    assert init["command"][:3] == [IMAGE_PYTHON, "-m", "contrail_ha.export.unpack"]
    assert {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in init["env"]} == {
        "NODE_IP": "status.hostIP", "NODE_NAME": "spec.nodeName"}
    assert main["command"][-1] == f"{ROOT}/self/controller.json"
    assert "--alive" in main["livenessProbe"]["exec"]["command"]
    assert "--alive" not in main["readinessProbe"]["exec"]["command"]
    for c in (init, main):
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory", "ephemeral-storage"}
    # memory from the heaps: (ZooKeeper 256 + config-DB 512 MiB) x 1.5, RabbitMQ 256, one API replica 192, 64
    assert main["resources"]["requests"]["memory"] == "1664Mi" and main["resources"]["limits"]["cpu"] == "2"
    assert ds["contrail-lb"]["spec"]["template"]["spec"]["containers"][0]["securityContext"] == {"privileged": True}
    sec = main["securityContext"]
    assert sec["runAsUser"] == 0 and sec["allowPrivilegeEscalation"] is False and sec["capabilities"]["drop"] == ["ALL"]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert all(d["spec"]["maxUnavailable"] == 1 for d in pdbs)
    assert {d["spec"]["selector"]["matchLabels"]["contrail-ha.io/role"] for d in pdbs} == {
        "lb", "controller", "analytics", "analyticsdb", "node"}


def test_secrets_stay_out_of_configmaps_and_the_same_across_exports(exported: tuple[Path, list[ex.Unit]],
                                                                    tmp_path: Path) -> None:
    out, _ = exported
    docs = _k8s(out)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    # the Erlang cookies, RabbitMQ's users (definitions, the monitor's credentials), the Cassandra
    # roles and monitor logins, the services' configs with their logins, ZooKeeper's SASL logins, the
    # VIP's certificate and key
    assert sorted(d["metadata"]["name"] for d in secrets) == ["contrail-analytics", "contrail-analyticsdb",
                                                             "contrail-controller", "contrail-lb"]
    for group, per_host in (("contrail-controller", 7), ("contrail-analytics", 3), ("contrail-analyticsdb", 6),
                            ("contrail-lb", 1)):
        cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == group)
        secret = next(d for d in secrets if d["metadata"]["name"] == group)
        index = json.loads(cm["data"]["index.json"])
        private = {k for h in index["hosts"] for k, rel in h["files"].items()
                   if rel.endswith((".erlang.cookie", "definitions.json", "monitor.json", "roles.json", "users.json",
                                    "server.properties", "jaas.conf", "vip.pem"))
                   or (any(s in rel for s in ("config-api", "analytics-api", "aggregator", "collector"))
                       and rel.endswith("service.json"))}
        hosts = 2 if group == "contrail-lb" else 3
        assert len(private) == hosts * per_host and not private & set(cm["data"]), group
        assert private == set(secret["stringData"]), group
    public = yaml.safe_dump([d for d in docs if d["kind"] != "Secret"])
    for name in ("rabbitmq-contrail-api", "rabbitmq-contrail-monitor", "erlang-cookie", "config-db-contrail-admin",
                 "config-db-contrail-api", "analytics-db-contrail-analytics", "analytics-db-contrail-monitor",
                 "kafka-contrail-kafka", "kafka-contrail-collector", "kafka-contrail-monitor",
                 "zookeeper-contrail-kafka"):
        assert (out / "secrets" / name).read_text().strip() not in public, name
    assert stat.S_IMODE(os.stat(out / "kubernetes" / "contrail.yaml").st_mode) == 0o600
    p = subprocess.run([sys.executable, "-m", "contrail_ha.cli", "export", "kubernetes", "-", "-t",
                        str(REPO / "examples" / "ha.yaml"), "--state-root", str(out / "kept")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    again = list(yaml.safe_load_all(p.stdout))
    assert [d for d in again if d["kind"] == "Secret"] == secrets  # stdout, and the same secrets


def test_a_config_change_rolls_only_through_its_checksum(tmp_path: Path) -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    units = ex.units(plan, tmp_path, ROOT)

    def sums(p: Plan) -> dict[str, str]:
        docs = kubernetes.manifests(p, ex.units(p, tmp_path, ROOT), ROOT)
        return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
            "contrail-ha.io/config-checksum"] for d in docs if d["kind"] == "DaemonSet"}

    before = sums(plan)
    assert sums(plan) == before  # deterministic
    heap = plan.topology.heap.model_copy(update={"kafka": 512})
    after = sums(Plan(plan.topology.model_copy(update={"heap": heap})))
    changed = {k for k in before if before[k] != after[k]}
    assert "contrail-analyticsdb" in changed and "contrail-lb" not in changed
    assert units


def test_unpack_places_this_nodes_host_and_points_self_at_its_spec(exported: tuple[Path, list[ex.Unit]],
                                                                   tmp_path: Path) -> None:
    out, units = exported
    docs = _k8s(out)
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "contrail-controller")
    sec = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "contrail-controller")
    cfg, secret = _materialize(cm, tmp_path / "cm"), _materialize(sec, tmp_path / "secret")
    host, n = unpack.unpack(cfg, secret, tmp_path / "root", "10.10.0.22", "node-b")  # by address
    unit = next(u for u in units if (u.host, u.group) == ("ctrl2", "controller"))
    assert host == "ctrl2" and n == len(unit.files)
    for rel, text in unit.files.items():
        assert (tmp_path / "root" / rel).read_text() == text
    assert all((tmp_path / "root" / d).is_dir() for d in unit.dirs)
    home = tmp_path / "root" / "hosts" / "ctrl2" / "rabbitmq" / "home"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / ".erlang.cookie").st_mode) == 0o400
    spec = tmp_path / "root" / "self" / "controller.json"
    assert spec.resolve() == (tmp_path / "root" / unit.spec_file.relative_to(ROOT)).resolve()
    assert unpack.unpack(cfg, secret, tmp_path / "r2", "192.0.2.1", "ctrl3")[0] == "ctrl3"  # else by name
    env = {**os.environ, "NODE_IP": "192.0.2.9", "NODE_NAME": "stranger"}
    p = subprocess.run([sys.executable, "-m", "contrail_ha.export.unpack", str(cfg), str(secret),
                        str(tmp_path / "r3")], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 1 and "no controller host of the topology" in p.stderr and "ctrl1 (10.10.0.21)" in p.stderr
    assert not (tmp_path / "r3").exists()


def test_unpack_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    index = {"group": "controller", "hosts": [{"host": "h", "ip": "10.0.0.1", "files": {"f0": "../../etc/passwd"},
                                               "modes": {}, "dirs": [], "spec": "s.json"}]}
    (tmp_path / "index.json").write_text(json.dumps(index))
    (tmp_path / "f0").write_text("x")
    with pytest.raises(ValueError, match="outside the state root"):
        unpack.unpack(tmp_path, None, tmp_path / "root", "10.0.0.1", "h")


def test_readme_and_no_registry_image(exported: tuple[Path, list[ex.Unit]]) -> None:
    out, _ = exported
    readme = (out / "README.md").read_text()
    assert "net.ipv4.ip_nonlocal_bind=1" in readme and "contrail-ha image save" in readme
    assert "kubectl label node ctrl1 contrail-ha.io/controller=enabled contrail-ha.io/analytics=enabled " \
        "contrail-ha.io/analyticsdb=enabled" in readme and "kubectl label node lb1 contrail-ha.io/lb=enabled" in readme
    assert not (out / "Dockerfile").exists()  # no FROM debian:12 from a registry: the product's own image
    assert json.loads((out / "manifest.json").read_text())[0]["container"].startswith("contrail-")
    split = load_topology(REPO / "examples" / "split.yaml").plan()
    units = ex.units(split, out / "split", ROOT)
    assert len(compose.project(split, "adb1", [u for u in units if u.host == "adb1"], ROOT, "img")["services"]) == 2
    assert kubernetes.manifests(split, units, ROOT)[0]["metadata"]["name"] == "contrail-ha-split"
