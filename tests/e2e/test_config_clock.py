"""Issue 20: a contrail-api replica whose clock runs 60 s ahead (libfaketime) refuses writes with a
clear 503 instead of winning every last-write-wins conflict; writes through the VIP go on, and a
later PUT through a correct replica wins; the replica writes again once its clock is right."""

from __future__ import annotations

import time
import uuid as uuidlib
from typing import Any

import httpx

from contrail_ha.operations import faults
from tests.e2e.conftest import Cluster


def _wait(what: str, check: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last})")


def test_replica_with_a_clock_60s_ahead_refuses_writes(cluster: Cluster) -> None:
    plan, layout = cluster.plan, cluster.layout
    apis = plan.of("config-api")
    victim, good = apis[-1], apis[0]
    host = victim.host.name
    skewed, correct, vip = f"http://{victim.address}", f"http://{good.address}", plan.config_api_url
    name = f"clock-{uuidlib.uuid4().hex[:8]}"
    with httpx.Client(timeout=30) as c:
        r = c.post(f"{vip}/projects", json={"project": {"fq_name": ["default-domain", name], "parent_type": "domain"}})
        assert r.status_code == 200, r.text
        project = r.json()["project"]["uuid"]
        try:
            faults.skew(plan, layout, host, victim.name, 60)

            def clock_refused() -> str | None:
                h = c.get(f"{skewed}/health")
                dep = h.json().get("dependencies", {}).get("clock", {}) if h.status_code in (200, 503) else {}
                return dep.get("reason") if dep and not dep.get("ok") else None

            why = _wait("the skewed replica reports its clock", clock_refused)
            assert "ahead of the cluster" in why, why

            def refused() -> httpx.Response | None:
                r = c.put(f"{skewed}/project/{project}", json={"project": {"display_name": "from-the-future"}})
                assert r.status_code == 503, (r.status_code, r.text)  # never written, starting or not
                return r if "clock" in r.text else None

            # a write through the skewed replica: 503 naming the clock (once it serves, or while its
            # start-up waits for the clock), nothing written
            r = _wait("a write through the skewed replica refused for its clock", refused)
            assert "ahead of the cluster" in r.text, r.text
            r = c.post(f"{skewed}/projects",
                       json={"project": {"fq_name": ["default-domain", name + "-x"], "parent_type": "domain"}})
            assert r.status_code == 503 and "clock" in r.text, (r.status_code, r.text)
            # it still serves reads; the VIP serves writes through the others
            assert c.get(f"{skewed}/project/{project}").status_code in (200, 503)
            r = c.put(f"{vip}/project/{project}", json={"project": {"display_name": "now"}})
            assert r.status_code == 200, r.text
            r = c.put(f"{correct}/project/{project}", json={"project": {"display_name": "later"}})
            assert r.status_code == 200, r.text
            for base in (vip, correct):
                assert c.get(f"{base}/project/{project}").json()["project"]["display_name"] == "later"
            assert c.post(f"{vip}/fqname-to-id", json={"type": "project", "fq_name": ["default-domain", name + "-x"]}
                          ).status_code == 404
        finally:
            faults.unskew(plan, layout, host, victim.name)
        _wait("the replica writes again with its true clock",
              lambda: c.get(f"{skewed}/health").status_code == 200)
        r = c.put(f"{skewed}/project/{project}", json={"project": {"display_name": "back"}})
        assert r.status_code == 200, r.text
        assert c.delete(f"{vip}/project/{project}").status_code == 200
