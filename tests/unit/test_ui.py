"""The web UI's server: its JSON API and the page, without a cluster (status comes from a given function)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from aiohttp.test_utils import TestServer

from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.validate import load_topology
from contrail_ha.ui import server

REPO = Path(__file__).resolve().parents[2]


def _get(app: Any, paths: list[str]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        ts = TestServer(app, host="127.0.0.1")
        await ts.start_server()
        try:
            async with httpx.AsyncClient(base_url=str(ts.make_url("")), timeout=10) as c:
                return [await c.get(p) for p in paths]
        finally:
            await ts.close()
    return asyncio.run(go())


def test_api_and_page(tmp_path: Path) -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    layout = Layout(tmp_path)
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "drill-20260101T000000.json").write_text(json.dumps([{"fault": "zk-leader",
                                                                                  "data_ok": True}]))
    checks = [Check("zookeeper", "ctrl1", True, "leader"), Check("kafka", "cluster", False, "2 under-replicated")]
    app = server.build(plan, layout, lambda p, lay: checks)
    ov, st, dr, page, js, bad = _get(app, ["/api/overview", "/api/status", "/api/drills", "/", "/static/app.js",
                                           "/api/uves/no-such-node"])
    o = ov.json()
    assert o["cluster"] == "contrail" and o["vip"] == "10.10.100.10"
    assert [h["name"] for h in o["hosts"]] == ["lb1", "lb2", "ctrl1", "ctrl2", "ctrl3"]
    assert "config-database-node" in o["uve_types"]
    s = st.json()
    assert s["healthy"] is False and [c["component"] for c in s["checks"]] == ["zookeeper", "kafka"]
    assert dr.json() == [{"file": "drill-20260101T000000.json", "results": [{"fault": "zk-leader", "data_ok": True}]}]
    assert page.status_code == 200 and "<title>contrail-ha</title>" in page.text and "/static/app.js" in page.text
    assert js.status_code == 200 and "loadStatus" in js.text
    assert bad.status_code == 404 and "unknown UVE type" in bad.json()["error"]
