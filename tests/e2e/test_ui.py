"""The web UI on the shared cluster, rendered by a real browser (Debian's headless Chromium)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import httpx

from tests.e2e.conftest import Cluster
from tests.helpers.proc import wait_for as wait

LISTEN = "127.0.0.1:18180"  # inside the client namespace, where this test process lives
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _dom(url: str) -> str:
    """The page's DOM after its scripts ran (Chromium's --dump-dom)."""
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([shutil.which("chromium") or "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                            "--virtual-time-budget=15000", "--dump-dom", url],
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_ui_shows_status_topology_and_uves(cluster: Cluster) -> None:
    ui = subprocess.Popen([sys.executable, "-m", "contrail_ha.cli", "ui", "--listen", LISTEN, "-t",
                           str(cluster.topology)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        wait(lambda: httpx.get(f"http://{LISTEN}/api/overview", timeout=2).status_code == 200, 30, "UI up")
        status = httpx.get(f"http://{LISTEN}/api/status", timeout=60).json()
        assert len(status["checks"]) > 50
        assert {c["component"] for c in status["checks"]} >= {"zookeeper", "haproxy", "collector", "node-agent"}
        assert httpx.get(f"http://{LISTEN}/api/uves/config-database-node/ctrl1", timeout=10).json()["NodeStatus"]
        assert "default-project" in httpx.get(f"http://{LISTEN}/api/config/projects", timeout=10).text
        dom = wait(lambda: (d := _dom(f"http://{LISTEN}/")) and "read at" in d and d, 180, "status rendered")
        assert "contrail · VIP 10.10.100.10" in dom
        assert "<td>zookeeper</td>" in dom and "<td>ctrl1</td>" in dom  # the checks table was filled by the script
        assert "healthy:" in dom or "degraded:" in dom
        topo = _dom(f"http://{LISTEN}/#topology")
        assert "<td>10.10.0.21</td>" in topo and "controller, analytics, analyticsdb" in topo
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(20)
