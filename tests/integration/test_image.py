"""The product's image on the real engine (Podman + runc, the project's CONTAINERS_CONF): built
with no registry, carrying the runtime and nothing else, and the supervisor's container contract
(output in the container's log, a crash-looping component fails the container)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contrail_ha.image import build
from contrail_ha.image.engine import Engine
from contrail_ha.rendering.base import ProcessSpec
from contrail_ha.runtime.supervisor_state import GroupSpec

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def engine() -> Engine:
    eng = Engine()
    if not eng.available():
        pytest.fail("podman is not installed: scripts/install.sh installs it")
    return eng


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    return build.build(engine, log=print)


def run(engine: Engine, image: str, *argv: str, timeout: float = 120, check: bool = True) -> str:
    return engine.run("run", "--rm", "--network", "none", image, *argv, timeout=timeout, check=check).stdout


def test_build_is_reused_when_nothing_changed(engine: Engine, image: str) -> None:
    assert image == build.plan().tag and engine.image_exists(image)
    assert build.build(engine, log=print) == image  # no rebuild
    labels = json.loads(engine.run("image", "inspect", "--format", "{{json .Labels}}", image).stdout)
    assert labels["io.contrail-ha.inputs"] == build.plan().inputs


def test_image_runs_the_product_as_a_non_root_user(engine: Engine, image: str) -> None:
    assert run(engine, image).strip().startswith("contrail-ha, version")
    assert run(engine, image, "id", "-u").strip() == str(build.UID)
    assert "HAProxy version" in run(engine, image, "haproxy", "-v")
    bird = engine.run("run", "--rm", "--network", "none", image, "bird", "--version", check=False)
    assert "BIRD version 2" in bird.stdout + bird.stderr
    java = engine.run("run", "--rm", "--network", "none", image, "java", "-version", check=False)
    assert 'version "17' in java.stdout + java.stderr
    assert run(engine, image, "sh", "-c", "test -x /usr/lib/rabbitmq/bin/rabbitmq-server && echo ok").strip() == "ok"


def test_image_carries_every_pinned_jar_at_its_rendered_path(engine: Engine, image: str) -> None:
    jars = [str(j) for j in build.jar_paths()]
    script = "for j in " + " ".join(jars) + '; do test -f "$j" || echo "missing $j"; done; echo done'
    assert run(engine, image, "sh", "-c", script).strip() == "done"


def test_image_has_no_build_or_test_tools(engine: Engine, image: str) -> None:
    script = ("for t in mvn gcc cc make chromium javac pytest ruff mypy apt-get-build-dep; do "
              "command -v $t >/dev/null && echo found $t; done; echo done")
    assert run(engine, image, "sh", "-c", script).strip() == "done"
    size = engine.image_size(image)
    print(f"\nimage {image}: {size / 1e6:.0f} MB")
    assert size < 1_500_000_000


def test_save_and_load_round_trip(engine: Engine, image: str, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    build.save(engine, image, archive)
    assert archive.stat().st_size > 100_000_000
    copy = f"localhost/contrail-ha-loadtest:{uuid.uuid4().hex[:8]}"
    engine.run("tag", image, copy)
    engine.run("rmi", copy)
    assert "Loaded image" in build.load(engine, archive) or engine.image_exists(image)


@pytest.fixture
def group_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "group"
    d.mkdir()
    d.chmod(0o777)  # the container's user writes its state there
    yield d


def _spec(d: Path, *procs: ProcessSpec) -> Path:
    spec = GroupSpec(host="h1", role="test", run_dir="/group/run", log_dir="/group/logs", processes=list(procs))
    (d / "spec.json").write_text(spec.to_json())
    return d / "spec.json"


@contextmanager
def _supervisor(engine: Engine, image: str, group_dir: Path) -> Iterator[str]:
    """A detached container whose main process is the role supervisor of ``group_dir``'s spec;
    removed afterwards. Yields its name."""
    name = f"contrail-ha-test-{uuid.uuid4().hex[:8]}"
    engine.run("run", "-d", "--name", name, "--network", "none", "-v", f"{group_dir}:/group", image,
               "python", "-m", "contrail_ha.runtime.supervisor", "--container", "/group/spec.json")
    try:
        yield name
    finally:
        engine.run("rm", "-f", "-t", "5", name, timeout=60, check=False)


def test_supervisor_in_a_container_logs_to_the_engine(engine: Engine, image: str, group_dir: Path) -> None:
    _spec(group_dir, ProcessSpec(name="talker", argv=["sh", "-c", "echo from-the-component; sleep 300"]))
    with _supervisor(engine, image, group_dir) as name:
        deadline = time.monotonic() + 60
        logs = ""
        while time.monotonic() < deadline and "talker | from-the-component" not in logs:
            logs = engine.run("logs", name, timeout=30).stdout
            time.sleep(0.5)
        assert "talker | from-the-component" in logs


def test_a_crash_looping_component_fails_its_container(engine: Engine, image: str, group_dir: Path) -> None:
    _spec(group_dir, ProcessSpec(name="steady", argv=["sleep", "300"]),
          ProcessSpec(name="broken", argv=["sh", "-c", "echo cannot start; exit 3"]))
    r = engine.run("run", "--rm", "--network", "none", "-v", f"{group_dir}:/group", image,
                   "python", "-m", "contrail_ha.runtime.supervisor", "--container", "/group/spec.json",
                   timeout=120, check=False)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "broken crash-loops" in r.stdout


def test_image_health_check_is_its_processes_probes(engine: Engine, image: str, group_dir: Path) -> None:
    """The image's HEALTHCHECK (no arguments: the container's one supervisor) runs every process's probe."""
    config = json.loads(engine.run("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout)
    assert config["Test"][-3:] == ["/opt/contrail-ha/venv/bin/python", "-m", "contrail_ha.runtime.health"], config
    server = ProcessSpec(name="server", argv=["python", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
                         cwd="/group", health="http://127.0.0.1:8000/")
    _spec(group_dir, server, ProcessSpec(name="deaf", argv=["sleep", "300"], health="tcp://127.0.0.1:8001"))
    with _supervisor(engine, image, group_dir) as name:
        deadline = time.monotonic() + 60
        out = ""
        # until the server has started (it may take a while on a loaded machine) and only the deaf one fails
        while time.monotonic() < deadline and not ("deaf: tcp://127.0.0.1:8001" in out
                                                   and "server" not in out.split("problems")[-1]):
            assert engine.run("healthcheck", "run", name, timeout=60, check=False).returncode != 0
            log = json.loads(engine.run("inspect", name, "--format", "{{json .State.Health.Log}}").stdout)
            out = log[-1]["Output"] if log else ""
            time.sleep(0.5)
        assert "deaf: tcp://127.0.0.1:8001" in out and "server" not in out.split("problems")[-1], out
    _spec(group_dir, server)
    with _supervisor(engine, image, group_dir) as name:
        deadline = time.monotonic() + 60
        while engine.run("healthcheck", "run", name, timeout=60, check=False).returncode != 0:
            assert time.monotonic() < deadline, "never healthy"
            time.sleep(0.5)


def test_the_wheels_build_without_a_package_index(image: str, tmp_path: Path) -> None:
    """Once the cache holds the locked wheels and the build backend (the image fixture filled it), the
    next build's wheels need no network at all: run in a network namespace with no interface but lo."""
    import subprocess
    import sys

    code = ("import pathlib, sys; from contrail_ha.image import build; "
            "build.wheels(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), log=print, timeout=600)")
    p = subprocess.run(["unshare", "--net", "--", sys.executable, "-c", code, str(tmp_path / "deps"),
                        str(tmp_path / "app")], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    assert [w.name.split("-")[0] for w in (tmp_path / "app").glob("*.whl")] == ["contrail_ha"]
    assert len(list((tmp_path / "deps").glob("*.whl"))) >= 20


def test_older_builds_are_pruned_but_not_the_current_one(engine: Engine, image: str) -> None:
    old = f"{build.NAME}:0.0.0-{uuid.uuid4().hex[:12]}"
    engine.run("tag", image, old)
    removed = build.prune(engine, keep=image)
    assert old in removed and image not in removed
    assert engine.image_exists(image) and not engine.image_exists(old)
    assert engine.image_exists(f"{build.NAME}:{build.__version__}")  # the version tag is not a build's


def test_a_role_container_hands_its_directories_over_then_drops_root(engine: Engine, image: str,
                                                                    tmp_path: Path) -> None:
    """Started as root with only the hand-over's capabilities (as the exported files start it), the
    supervisor gives the role's directories to the image's user - data left by an earlier root run
    included - and it and its processes run as that user."""
    from contrail_ha.runtime.containers import HAND_OVER_CAPS
    from contrail_ha.runtime.ownership import UID

    d = tmp_path / "group"
    (d / "data").mkdir(parents=True)
    (d / "data" / "left-by-root").write_text("x")
    spec = GroupSpec(host="h1", role="test", run_dir="/group/run", log_dir="/group/logs", processes=[
        ProcessSpec(name="writer", argv=["sh", "-c", "id -u > /group/data/uid.tmp && mv /group/data/uid.tmp "
                                                     "/group/data/uid; sleep 300"])],
        writable=["/group/data"], run_as=f"{UID}:{UID}")
    (d / "spec.json").write_text(spec.to_json())
    name = f"contrail-ha-test-{uuid.uuid4().hex[:8]}"
    engine.run("run", "-d", "--name", name, "--network", "none", "--user", "0:0", "--cap-drop", "ALL",
               *(f"--cap-add={c}" for c in HAND_OVER_CAPS), "--security-opt", "no-new-privileges",
               "-v", f"{d}:/group", image, "python", "-m", "contrail_ha.runtime.supervisor", "--container",
               "/group/spec.json")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (d / "data" / "uid").exists():
            time.sleep(0.3)
        assert (d / "data" / "uid").read_text().strip() == str(UID), engine.run("logs", name).stdout[-2000:]
        for p in (d / "data", d / "data" / "left-by-root", d / "run", d / "run" / "state.json", d / "logs"):
            assert p.stat().st_uid == UID, p
        rows = [ln.split(None, 1) for ln in engine.run("top", name, "user", "args").stdout.splitlines()[1:]]
        # only the init (tini, which forwards signals) stays root; the supervisor and its processes do not
        assert [r for r in rows if r[0] == "root"] == [r for r in rows if r[1].startswith("/usr/bin/tini")], rows
        assert sum(r[0] == "contrail" for r in rows) >= 3, rows
    finally:
        engine.run("rm", "-f", "-t", "5", name, timeout=60, check=False)
