"""The services' /health probe of ``status``: every service asked at once, answers kept in order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from contrail_ha.probes import services
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import CONFIG_API, LB_AGENT, Instance
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]


def test_checks_ask_every_service_concurrently_and_keep_each_answer_with_its_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    lock = threading.Lock()
    running, most = 0, 0
    clients: set[int] = set()
    broken = plan.of(CONFIG_API)[1]

    def fake_health(inst: Instance, timeout: float = 2.0, *, degraded_fails: bool = False,
                    client: httpx.Client | None = None) -> tuple[bool, str]:
        nonlocal running, most
        assert degraded_fails and client is not None
        with lock:
            running += 1
            most = max(most, running)
            clients.add(id(client))
        time.sleep(0.2)
        with lock:
            running -= 1
        return (False, "503 from the test") if inst is broken else (True, f"healthy {inst.address}")

    monkeypatch.setattr(services, "health", fake_health)
    checks = services.checks(plan, Layout(tmp_path))
    http = [c for c in checks if c.component != LB_AGENT]
    expected = [i for comp in services.HTTP_SERVICES for i in plan.of(comp)]
    assert len(http) == len(expected) and most > 1 and len(clients) == 1
    for c, inst in zip(http, expected, strict=True):
        assert c.component == inst.component and c.data["address"] == inst.address
        assert c.ok == (inst is not broken)
        assert c.detail == ("503 from the test" if inst is broken else f"healthy {inst.address}")
    assert [c.target for c in http if not c.ok] == [f"{broken.host.name}/{broken.name}"]
    lbs = [c for c in checks if c.component == LB_AGENT]
    assert len(lbs) == len(plan.lbs) and not any(c.ok for c in lbs)  # no agent state written here
