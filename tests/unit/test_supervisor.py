"""The role supervisor: enable, restart after kill -9, hold, reload, stop in reverse order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from contrail_ha.rendering.base import ProcessSpec
from contrail_ha.runtime.supervisor import GroupSpec


def _state(run: Path) -> dict:
    try:
        return json.loads((run / "state.json").read_text())["processes"]
    except (OSError, ValueError, KeyError):
        return {}


def _wait(pred, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes], Path]]:
    run = tmp_path / "run"
    spec = GroupSpec(host="h1", role="test", run_dir=str(run), log_dir=str(tmp_path / "logs"), processes=[
        ProcessSpec(name="first", argv=["sleep", "300"]),
        # writes its stop order into a file when terminated
        ProcessSpec(name="second", argv=["sh", "-c", f"trap 'echo second >> {tmp_path}/order; exit 0' TERM; "
                                                      "while true; do sleep 0.1; done"]),
    ])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    with open(tmp_path / "sup.out", "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "contrail_ha.runtime.supervisor", str(spec_file)],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: (run / "supervisor.pid").exists())
    yield run, p, spec_file
    if p.poll() is None:
        p.terminate()
        p.wait(20)


def test_only_enabled_processes_run(group: tuple[Path, subprocess.Popen[bytes], Path]) -> None:
    run, _, _ = group
    (run / "first.enabled").touch()
    st = _wait(lambda: (s := _state(run)) and s["first"]["state"] == "running" and s)
    assert st["second"]["state"] == "disabled" and st["second"]["pid"] is None


def test_restart_after_kill_and_hold(group: tuple[Path, subprocess.Popen[bytes], Path]) -> None:
    run, _, _ = group
    (run / "first.enabled").touch()
    pid = _wait(lambda: _state(run).get("first", {}).get("pid"))
    os.kill(pid, signal.SIGKILL)
    new = _wait(lambda: (p := _state(run)["first"]["pid"]) and p != pid and p)
    st = _state(run)["first"]
    assert new != pid and st["restarts"] == 1 and st["last_exit"] == "killed by signal 9"
    # held: killed and kept down until the hold is removed
    (run / "first.held").touch()
    os.kill(new, signal.SIGKILL)
    _wait(lambda: _state(run)["first"]["state"] == "held")
    time.sleep(1.0)  # no restart while held (a negative check needs a wait)
    assert _state(run)["first"]["pid"] is None
    (run / "first.held").unlink()
    _wait(lambda: _state(run)["first"]["state"] == "running", timeout=15)


def test_sigterm_stops_in_reverse_order_and_exits(group: tuple[Path, subprocess.Popen[bytes], Path],
                                                  tmp_path: Path) -> None:
    run, p, _ = group
    (run / "first.enabled").touch()
    (run / "second.enabled").touch()
    st = _wait(lambda: (s := _state(run)) and all(v["state"] == "running" for v in s.values()) and s)
    pids = [st["first"]["pid"], st["second"]["pid"]]
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    assert (tmp_path / "order").read_text() == "second\n"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert not (run / "supervisor.pid").exists()


def test_reload_restarts_changed_process(group: tuple[Path, subprocess.Popen[bytes], Path]) -> None:
    run, p, spec_file = group
    (run / "first.enabled").touch()
    pid = _wait(lambda: _state(run).get("first", {}).get("pid"))
    spec = GroupSpec.from_json(spec_file.read_text())
    spec.processes[0] = ProcessSpec(name="first", argv=["sleep", "301"])
    spec_file.write_text(spec.to_json())
    p.send_signal(signal.SIGHUP)
    new = _wait(lambda: (x := _state(run)["first"]["pid"]) and x != pid and x)
    # the state names the child as soon as it is forked; its cmdline is the new one once it has exec'd
    assert _wait(lambda: Path(f"/proc/{new}/cmdline").read_bytes().split(b"\0")[1:2] == [b"301"])


def test_config_change_reloads_by_signal_when_the_process_has_one(tmp_path: Path) -> None:
    """Only the rendered files changed (their digest): the process gets its reload signal, keeps its pid."""
    run = tmp_path / "run"
    script = f"trap 'echo reloaded >> {tmp_path}/reloads' USR2; while true; do sleep 0.1; done"

    def spec(digest: str, argv: list[str]) -> GroupSpec:
        return GroupSpec(host="h1", role="test", run_dir=str(run), log_dir=str(tmp_path / "logs"), processes=[
            ProcessSpec(name="lb", argv=argv, env={"CONTRAIL_HA_CONFIG": digest}, reload_signal=signal.SIGUSR2)])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec("a", ["sh", "-c", script]).to_json())
    with open(tmp_path / "sup.out", "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "contrail_ha.runtime.supervisor", str(spec_file)],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: (run / "supervisor.pid").exists())
        (run / "lb.enabled").touch()
        pid = _wait(lambda: _state(run).get("lb", {}).get("pid"))
        time.sleep(0.3)  # let the shell install its trap
        spec_file.write_text(spec("b", ["sh", "-c", script]).to_json())
        p.send_signal(signal.SIGHUP)
        _wait(lambda: (tmp_path / "reloads").exists() and (tmp_path / "reloads").read_text() == "reloaded\n")
        assert _state(run)["lb"]["pid"] == pid  # reloaded, not restarted
        # a changed command still restarts it
        spec_file.write_text(spec("b", ["sh", "-c", script + " # v2"]).to_json())
        p.send_signal(signal.SIGHUP)
        _wait(lambda: (x := _state(run)["lb"]["pid"]) and x != pid)
    finally:
        p.terminate()
        p.wait(20)


def _container(tmp_path: Path, *procs: ProcessSpec) -> tuple[subprocess.Popen[bytes], Path]:
    spec = GroupSpec(host="h1", role="test", run_dir=str(tmp_path / "run"), log_dir=str(tmp_path / "logs"),
                     processes=list(procs))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    out = tmp_path / "container.log"
    with open(out, "wb") as f:
        p = subprocess.Popen([sys.executable, "-m", "contrail_ha.runtime.supervisor", "--container", str(spec_file)],
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    return p, out


def test_container_mode_logs_every_process_to_stdout(tmp_path: Path) -> None:
    p, out = _container(tmp_path, ProcessSpec(name="talker", argv=["sh", "-c", "echo hello; echo oops >&2; sleep 300"]))
    try:
        text = _wait(lambda: (t := out.read_text()) and "talker | oops" in t and t)
        assert "talker | hello" in text
        assert not (tmp_path / "logs" / "talker.out").exists()  # nothing to an unrotated file
    finally:
        p.terminate()
        assert p.wait(20) == 0  # a requested stop is a clean exit


def test_container_exits_nonzero_when_a_process_crash_loops(tmp_path: Path) -> None:
    p, out = _container(tmp_path, ProcessSpec(name="steady", argv=["sleep", "300"]),
                        ProcessSpec(name="broken", argv=["sh", "-c", "echo cannot start; exit 3"]))
    try:
        assert p.wait(60) == 1  # the engine sees the container fail and restarts it
    finally:
        if p.poll() is None:
            p.kill()
    text = out.read_text()
    assert text.count("broken | cannot start") >= 5
    assert "broken crash-loops" in text and "exit 3" in text
    steady = _state(tmp_path / "run")["steady"]
    assert steady["pid"] is None  # the others were stopped, not left behind


def test_realtime_priority_and_its_fallback(tmp_path: Path) -> None:
    """A process asking for SCHED_FIFO runs under it; one the kernel refuses (priority 100) still starts,
    with the normal scheduler and a line in its log saying so."""
    run = tmp_path / "run"
    spec = GroupSpec(host="h1", role="rt", run_dir=str(run), log_dir=str(tmp_path / "logs"), processes=[
        ProcessSpec(name="rt", argv=["sleep", "300"], realtime_priority=10),
        ProcessSpec(name="refused", argv=["sleep", "300"], realtime_priority=100),
    ])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    run.mkdir()
    (run / "rt.enabled").touch()
    (run / "refused.enabled").touch()
    p = subprocess.Popen([sys.executable, "-m", "contrail_ha.runtime.supervisor", str(spec_file)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        rt = _wait(lambda: _state(run).get("rt", {}).get("pid"))
        refused = _wait(lambda: _state(run).get("refused", {}).get("pid"))
        # the pid is recorded right after fork; the child sets its scheduler (and says so) after that
        log = tmp_path / "logs" / "refused.out"
        assert _wait(lambda: "SCHED_FIFO 100 not permitted" in log.read_text())
        assert _wait(lambda: os.sched_getscheduler(rt) == os.SCHED_FIFO)
        assert os.sched_getparam(rt).sched_priority == 10
        assert os.sched_getscheduler(refused) == os.SCHED_OTHER
    finally:
        p.terminate()
        p.wait(20)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_new_member_starts_only_once_its_peers_answer(tmp_path: Path) -> None:
    """The join gate: closed while the peer's port is shut and the data directory empty; the process
    starts once the peer listens, and a member with data starts at once."""
    import socket

    port = _free_port()
    fresh, data = tmp_path / "fresh", tmp_path / "data"
    (fresh / "sub").mkdir(parents=True)  # empty directories do not make a member
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "some.db").write_text("x")
    peer = f"tcp://127.0.0.1:{port}"
    p, out = _container(tmp_path, ProcessSpec(name="joiner", argv=["sleep", "300"], join_after=[peer],
                                              fresh_dir=str(fresh)),
                        ProcessSpec(name="member", argv=["sleep", "300"], join_after=[peer], fresh_dir=str(data)),
                        ProcessSpec(name="any", argv=["sleep", "300"], join_any=True, fresh_dir=str(fresh),
                                    join_after=[peer, f"tcp://127.0.0.1:{_free_port()}"]))
    try:
        assert _wait(lambda: _state(tmp_path / "run").get("member", {}).get("pid"))
        time.sleep(2 * 0.2 + 1)  # several supervisor ticks with the gate closed
        st = _state(tmp_path / "run")
        assert st["joiner"]["state"] == "joining" and st["joiner"]["pid"] is None
        assert st["any"]["state"] == "joining" and st["any"]["pid"] is None
        assert _wait(lambda: "joiner is a new member" in out.read_text())
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen()
            assert _wait(lambda: _state(tmp_path / "run").get("joiner", {}).get("pid"), timeout=15)
            assert _wait(lambda: _state(tmp_path / "run").get("any", {}).get("pid"), timeout=15)
        assert "joiner: its peers answer; starting it" in out.read_text()
    finally:
        p.terminate()
        assert p.wait(20) == 0


def test_join_gate_changes_do_not_restart_a_running_process() -> None:
    from contrail_ha.runtime.supervisor import _gate_only_changed, gate_waits_for

    a = ProcessSpec(name="n", argv=["x"])
    assert _gate_only_changed(a, ProcessSpec(name="n", argv=["x"], join_after=["tcp://1.2.3.4:5"], fresh_dir="/d"))
    assert not _gate_only_changed(a, ProcessSpec(name="n", argv=["y"], join_after=["tcp://1.2.3.4:5"]))
    assert gate_waits_for(a, lambda url: "down") == []  # no gate
    gated = ProcessSpec(name="n", argv=["x"], join_after=["u1", "u2"], fresh_dir="/nonexistent")
    assert gate_waits_for(gated, lambda url: None if url == "u1" else f"{url} down") == ["u2 down"]
    assert gate_waits_for(replace(gated, join_any=True), lambda url: None if url == "u1" else "down") == []
    assert gate_waits_for(replace(gated, join_any=True), lambda url: f"{url} down") == ["u1 down", "u2 down"]
