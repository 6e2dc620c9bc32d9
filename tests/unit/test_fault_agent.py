"""The drill's agent inside a deployed container (contrail_ha.operations.fault_agent): it kills a
process of its supervisor and holds it down, releases it, and reads its state, with the same
control files the local drill uses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from contrail_ha.operations import fault_agent
from contrail_ha.operations.drill_faults import FAULTS
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime.supervisor_state import GroupSpec, SupervisorDir


def _supervised(tmp_path: Path) -> tuple[SupervisorDir, subprocess.Popen[bytes]]:
    sd = SupervisorDir.of_host(Layout(tmp_path), "ctrl1", "controller")
    sd.path.mkdir(parents=True)
    sd.spec_file.write_text(GroupSpec(host="ctrl1", role="controller", run_dir=str(sd.path),
                                      log_dir=str(tmp_path / "logs"), processes=[]).to_json())
    child = subprocess.Popen(["sleep", "60"])
    sd.write_state(json.dumps({"processes": {"config-api-1": {"state": "running", "pid": child.pid}}}))
    return sd, child


def test_kill_holds_the_process_down_and_heal_releases_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    sd, child = _supervised(tmp_path)
    try:
        assert fault_agent.main([str(tmp_path), "ctrl1", "kill", "config-api-1"]) == 0
        assert child.wait(timeout=10) == -9 and sd.held("config-api-1")
        assert json.loads(capsys.readouterr().out)["pid"] == child.pid  # the state it read
        assert fault_agent.main([str(tmp_path), "ctrl1", "heal", "config-api-1"]) == 0
        assert not sd.held("config-api-1")
    finally:
        child.kill()


def test_kill_restart_does_not_hold_and_state_only_reads(tmp_path: Path) -> None:
    sd, child = _supervised(tmp_path)
    try:
        assert fault_agent.main([str(tmp_path), "ctrl1", "state", "config-api-1"]) == 0
        assert child.poll() is None and not sd.held("config-api-1")
        assert fault_agent.main([str(tmp_path), "ctrl1", "kill-restart", "config-api-1"]) == 0
        assert child.wait(timeout=10) == -9 and not sd.held("config-api-1")
    finally:
        child.kill()


def test_an_unknown_supervisor_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fault_agent.main([str(tmp_path), "ctrl9", "kill", "config-api-1"]) == 2
    assert "no supervisor of config-api-1" in capsys.readouterr().err


def test_process_kills_and_host_kill_are_offered_over_ssh() -> None:
    over = {n for n, f in FAULTS.items() if f.over_ssh}
    assert {"api-replica", "zk-leader", "lb-kill", "host-kill"} <= over
    assert not over & {"controller-partition", "lb-link", "api-pause"}
