"""Which runtime ``up`` uses: containers by default, a running cluster keeps its own, a switch is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import record


def _running(tmp_path: Path, runtime: str | None) -> Layout:
    layout = Layout(tmp_path / "c1")
    layout.root.mkdir(parents=True)
    if runtime:
        (layout.root / record.RUNTIME_FILE).write_text(json.dumps({"runtime": runtime}))
    return layout


def test_a_stopped_cluster_starts_on_containers_unless_asked(tmp_path: Path) -> None:
    layout = _running(tmp_path, None)
    assert record.recorded_runtime(layout) is None
    assert record.choose(layout, None) == record.CONTAINERS
    assert record.choose(layout, False) == record.PROCESSES
    assert record.choose(layout, True) == record.CONTAINERS


@pytest.mark.parametrize("runtime", [record.CONTAINERS, record.PROCESSES])
def test_a_running_cluster_keeps_its_runtime(tmp_path: Path, runtime: str) -> None:
    layout = _running(tmp_path, runtime)
    assert record.choose(layout, None) == runtime
    assert record.choose(layout, runtime == record.CONTAINERS) == runtime
    with pytest.raises(record.RuntimeMismatch, match=f"runs on {runtime}; `contrail-ha down` first"):
        record.choose(layout, runtime != record.CONTAINERS)


def test_a_cluster_on_another_contrail_has_image_is_not_rendered_into(tmp_path: Path) -> None:
    """Its running containers would read files of a format their code does not know (a node agent
    refuses a topology with keys it has never seen): refused, with the way out."""
    layout = Layout(tmp_path)
    record.write(layout, "localhost/contrail-ha:0.1.0-aaaa")
    rec = json.loads((tmp_path / record.RUNTIME_FILE).read_text())
    assert rec["code"] == record.code_digest() and len(rec["code"]) == 16
    record.check_code(layout)  # this code's own image: fine
    (tmp_path / record.RUNTIME_FILE).write_text(json.dumps({**rec, "code": "0123456789abcdef"}))
    with pytest.raises(record.RuntimeMismatch, match=r"another contrail-ha.*`contrail-ha down`"):
        record.check_code(layout)
    (tmp_path / record.RUNTIME_FILE).write_text(json.dumps({"runtime": "containers", "image": "x"}))
    record.check_code(layout)  # recorded before the digest was: not refused
    (tmp_path / record.RUNTIME_FILE).unlink()
    record.write(layout, None)
    assert json.loads((tmp_path / record.RUNTIME_FILE).read_text()) == {"runtime": "processes"}
    record.check_code(layout)
