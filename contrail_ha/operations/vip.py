"""How contrail-ha's own clients (the drills, the UI) reach the VIP: its two APIs' URLs and the
TLS context that verifies its certificate (the cluster CA's, or the site's ``tls.ca``).

The replicas behind the lbs speak plain HTTP on the cluster network; only the VIP takes TLS.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp

from contrail_ha.rendering import pki
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import Plan


@dataclass(frozen=True)
class Vip:
    config: str  # base URL of the config API, e.g. https://10.9.0.100:8082
    analytics: str  # base URL of the analytics API
    tls: ssl.SSLContext | None  # None: the VIP speaks plain HTTP (tls.vip off)

    @classmethod
    def of(cls, plan: Plan, layout: Layout) -> Vip:
        return cls(plan.config_api_url, plan.analytics_api_url,
                   pki.vip_context(plan, layout) if plan.topology.tls.vip else None)

    def connector(self, limit: int = 100) -> aiohttp.TCPConnector:
        """A connector verifying the VIP's certificate (call inside the running loop)."""
        return aiohttp.TCPConnector(ssl=self.tls if self.tls is not None else True, limit=limit)

    def session(self, timeout_s: float | None = 60.0, limit: int = 100) -> aiohttp.ClientSession:
        """A client session for the VIP (and the replicas' plain HTTP); call inside the running loop."""
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), connector=self.connector(limit))


def trust(plan: Plan, layout: Layout) -> None:
    """Make this process (and the commands it runs) trust the VIP's CA, as a machine that installed
    it does: OpenSSL's default verify paths (aiohttp, urllib, httpx) read ``SSL_CERT_FILE``,
    requests ``REQUESTS_CA_BUNDLE``. For test harnesses and benchmarks; our own clients use :class:`Vip`."""
    import os

    ca = pki.vip_ca(plan, layout)
    if ca is not None:
        os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = ca
