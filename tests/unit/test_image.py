"""The image's recipe and the engine configuration (no engine needed): what goes in, what stays
out, and that the tag follows the inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from contrail_ha.image import build
from contrail_ha.image.engine import BRIDGE_SUBNET, Engine, EngineError, containers_conf

REPO = Path(__file__).resolve().parents[2]


def test_engine_configuration_fits_this_machine_kind() -> None:
    conf = containers_conf(nofile=20000)
    assert 'runtime = "runc"' in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert '"nofile=20000:20000"' in conf  # never above the hard limit: nothing here may raise it
    assert 'events_logger = "file"' in conf
    assert BRIDGE_SUBNET in conf and not BRIDGE_SUBNET.startswith("10.")


def test_a_missing_engine_is_a_clear_error(tmp_path: Path) -> None:
    eng = Engine(conf_dir=tmp_path, binary="no-such-podman")
    with pytest.raises(EngineError, match="not installed"):
        eng.run("ps")


def test_containerfile_has_the_runtime_only_and_a_non_root_user() -> None:
    text = build.containerfile({"haproxy": "2.6.12-1+deb12u1"}, "abc")
    assert text.splitlines()[1] == f"FROM {build.BASE}" and build.BASE.startswith("localhost/")
    assert "haproxy=2.6.12-1+deb12u1" in text and " bird2 " in text and "openjdk-17-jre-headless" in text
    for dev in ("maven", "chromium", "gcc", "build-essential", "-jdk ", "pytest", "ruff", "mypy"):
        assert dev not in text, dev
    assert f"USER {build.UID}" in text and build.UID != 0
    assert "--no-index" in text and "requirements.lock" in text  # offline, from the locked wheels
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in text  # signals reach the main process; down is fast
    assert 'io.contrail-ha.inputs="abc"' in text
    assert "# syntax=" not in text  # that would pull a frontend image from a registry


def test_the_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not exact: {line}"
            pins[name.lower().replace("_", "-")] = version
    for d in deps:
        req = Requirement(d)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"
    assert not {"pytest", "ruff", "mypy", "hypothesis"} & set(pins)


def test_tag_follows_the_inputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "classpath").mkdir()
    (tmp_path / "classpath" / "zookeeper.txt").write_text("/x/zookeeper-3.8.4.jar")
    monkeypatch.setattr(build, "candidate_versions", lambda: {"haproxy": "1"})
    a = build.plan(tmp_path)
    assert a.tag == f"{build.NAME}:{build.__version__}-{a.inputs}" and a == build.plan(tmp_path)
    (tmp_path / "classpath" / "zookeeper.txt").write_text("/x/zookeeper-3.8.5.jar")
    assert build.plan(tmp_path).tag != a.tag
    monkeypatch.setattr(build, "candidate_versions", lambda: {"haproxy": "2"})
    assert build.plan(tmp_path).tag != a.tag


def test_jars_must_be_resolved_first(tmp_path: Path) -> None:
    with pytest.raises(build.ImageError, match=r"install\.sh"):
        build.jar_paths(tmp_path)
    (tmp_path / "classpath").mkdir()
    (tmp_path / "classpath" / "kafka.txt").write_text(str(tmp_path / "missing.jar"))
    with pytest.raises(build.ImageError, match="missing"):
        build.jar_paths(tmp_path)


def test_mirror_is_read_from_this_machine() -> None:
    m = build.mirror()
    assert m.startswith("http") and m.rstrip("/").endswith("/debian")
