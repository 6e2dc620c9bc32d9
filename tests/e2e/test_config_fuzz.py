"""A bounded, seeded fuzz run of contrail-api through the VIP (tests/helpers/fuzz.py): no 5xx,
no reset, no request over 10 s, every replica healthy afterwards, nothing left behind.

The long run is scripts/fuzz_config_api.py.
"""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import Cluster
from tests.helpers.fuzz import Fuzzer

REQUESTS = 600
SEED = 20261204


def test_config_api_fuzz(cluster: Cluster) -> None:
    fz = Fuzzer(cluster.api)
    fz.setup()
    t0 = time.monotonic()
    try:
        fz.run(REQUESTS, SEED)
    finally:
        left = fz.cleanup()
    elapsed = time.monotonic() - t0
    print(f"\n{fz.summary()}\nfuzz wall time {elapsed:.1f}s")
    assert not fz.failures(), fz.summary()
    assert len(fz.results) >= REQUESTS * 0.9
    assert not left, f"could not delete: {left}"
    assert not fz.leftovers(), fz.leftovers()
    for i in cluster.plan.of("config-api"):
        assert httpx.get(f"http://{i.address}/health", timeout=10).status_code == 200, i.address
