#!/usr/bin/env python3
"""The long fuzz run of contrail-api (tests/helpers/fuzz.py) against the VIP.

Run from the client namespace, e.g.::

    ip netns exec contrail-client .venv/bin/python scripts/fuzz_config_api.py --requests 10000

Prints a summary (count by status and kind, time percentiles, every failing request with a
curl repro) and exits 1 on any 5xx, connection reset or request over 10 s, or when the fuzzer's
objects could not all be deleted or a replica is unhealthy afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.helpers.fuzz import Fuzzer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="https://10.10.100.10:8082", help="the config API (the VIP)")
    ap.add_argument("--ca", default="/var/lib/contrail-ha/contrail/secrets/ca.crt",
                    help="the CA that verifies the VIP's certificate")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replicas", default="10.10.0.21,10.10.0.22,10.10.0.23",
                    help="replica addresses whose /health must be 200 afterwards")
    args = ap.parse_args()
    os.environ["SSL_CERT_FILE"] = args.ca
    fz = Fuzzer(args.url)
    fz.setup()
    t0 = time.monotonic()

    def progress(n: int) -> None:
        if n % 500 == 0:
            bad = len(fz.failures())
            print(f"  {n} requests, {time.monotonic() - t0:.0f}s, failures {bad}", flush=True)

    fz.run(args.requests, args.seed, progress)
    elapsed = time.monotonic() - t0
    left = fz.cleanup()
    leftovers = fz.leftovers()
    print(fz.summary())
    print(f"wall time: {elapsed:.1f}s ({len(fz.results) / max(elapsed, 1e-9):.1f} requests/s)")
    health = {}
    for ip in args.replicas.split(","):
        try:
            health[ip] = httpx.get(f"http://{ip}:8082/health", timeout=5).status_code
        except httpx.HTTPError as e:
            health[ip] = repr(e)
    print(f"replica health: {health}")
    print(f"not deleted: {left}")
    print(f"left behind: {leftovers}")
    ok = not fz.failures() and not left and not leftovers and all(v == 200 for v in health.values())
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
