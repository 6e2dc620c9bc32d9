"""One HA cluster (examples/ha.yaml) shared by every e2e test; brought up with the real CLI."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime import netns
from contrail_ha.topology.plan import Plan
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "examples" / "ha.yaml"
CLI = [sys.executable, "-m", "contrail_ha.cli"]


@dataclass
class Cluster:
    plan: Plan
    layout: Layout
    topology: Path
    up_seconds: float

    @property
    def api(self) -> str:
        """The config API on the VIP (https: the VIP speaks TLS only)."""
        return self.plan.config_api_url

    @property
    def analytics(self) -> str:
        """The analytics API on the VIP."""
        return self.plan.analytics_api_url

    @property
    def ca(self) -> str:
        """The cluster CA's certificate: what a user's client verifies the VIP with."""
        from contrail_ha.rendering import pki

        ca = pki.vip_ca(self.plan, self.layout)
        assert ca is not None
        return ca

    @property
    def verify(self) -> ssl.SSLContext:
        """httpx's ``verify=``: the VIP's certificate checked against the cluster CA."""
        return ssl.create_default_context(cafile=self.ca)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args, "-t", str(self.topology)], capture_output=True, text=True,
                              timeout=timeout)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("e2e tests need root (network namespaces)")
    plan = load_topology(TOPOLOGY).plan()
    layout = Layout(DEFAULT_STATE_ROOT / plan.cluster_id)
    if os.environ.get("CONTRAIL_HA_E2E_REUSE") == "1":  # development: keep using a cluster that is up
        netns.enter(netns.ns_name(plan, netns.CLIENT))
        yield _trusting(Cluster(plan, layout, TOPOLOGY, 0.0))
        return
    subprocess.run([*CLI, "down", "--purge", "-t", str(TOPOLOGY)], capture_output=True, text=True, timeout=600)
    t0 = time.monotonic()
    # The suite's cluster runs on processes (faster to start and to fault); tests/e2e/test_zzz_containers.py
    # runs the default, containers.
    p = subprocess.run([*CLI, "up", "--processes", "-t", str(TOPOLOGY)], capture_output=True, text=True,
                       timeout=1500)
    elapsed = time.monotonic() - t0
    sys.stdout.write(p.stdout[-4000:])
    assert p.returncode == 0, f"contrail-ha up failed:\n{p.stdout[-6000:]}\n{p.stderr[-4000:]}"
    print(f"\ncontrail-ha up: {elapsed:.1f}s wall time")
    # Every later socket of this test process is opened from the client namespace, as a user's.
    netns.enter(netns.ns_name(plan, netns.CLIENT))
    yield _trusting(Cluster(plan, layout, TOPOLOGY, elapsed))
    subprocess.run([*CLI, "down", "--purge", "-t", str(TOPOLOGY)], capture_output=True, text=True, timeout=600)


def _trusting(cluster: Cluster) -> Cluster:
    """The client machine trusts the cluster's CA, as a site installs it: httpx (SSL_CERT_FILE) and
    requests (REQUESTS_CA_BUNDLE) verify the VIP's certificate with it, here and in the commands run
    from here. The vnc_api clients are given the CA file explicitly (apicafile), as a user does."""
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = cluster.ca
    return cluster


def vnc_client(cluster: Cluster):
    """The real vnc_api client on the VIP, as a user configures it."""
    from vnc_api.vnc_api import VncApi

    return VncApi(api_server_host=cluster.plan.vip, api_server_port=8082, auth_type="noauth",
                  api_server_use_ssl=True, apicafile=cluster.ca)


@pytest.fixture(scope="module")
def lib(cluster: Cluster):
    return vnc_client(cluster)
