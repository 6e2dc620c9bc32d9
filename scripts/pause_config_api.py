"""The long run of issue 20's pause nemesis (tests/helpers/pause.py) against a running HA cluster.

Freezes the last contrail-api replica (SIGSTOP) --rounds times for --hold seconds each, with
creates and ref adds in flight on it while their projects and IPAMs are deleted through the other
replicas, then checks every reader. Prints the answers and violations; exits 1 on any violation:

    .venv/bin/python scripts/pause_config_api.py [--rounds 20] [--hold 25] [-t examples/ha.yaml] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contrail_ha.operations import faults  # noqa: E402
from contrail_ha.operations.vip import trust  # noqa: E402
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout  # noqa: E402
from contrail_ha.runtime import netns  # noqa: E402
from contrail_ha.topology.validate import load_topology  # noqa: E402
from tests.helpers import pause  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--hold", type=float, default=25.0, help="seconds each freeze lasts (> the 15 s claim window)")
    ap.add_argument("-t", "--topology", type=Path, default=REPO / "examples" / "ha.yaml")
    ap.add_argument("--json", type=Path, help="write the result (answers, violations, history) here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (the client namespace and the replica's process)", file=sys.stderr)
        return 2
    plan = load_topology(args.topology).plan()
    layout = Layout(DEFAULT_STATE_ROOT / plan.cluster_id)
    ns = netns.ns_name(plan, netns.CLIENT)
    if not (netns.NETNS_DIR / ns).exists():
        print(f"no namespace {ns}: is the cluster up?", file=sys.stderr)
        return 2
    netns.enter(ns)
    apis = plan.of("config-api")
    victim = apis[-1]
    host = victim.host.name
    trust(plan, layout)  # the VIP speaks TLS (tls.vip): its CA verifies it
    res = pause.run(plan.config_api_url, [f"http://{i.address}" for i in apis], f"http://{victim.address}",
                    lambda: faults.pause(plan, layout, host, victim.name),
                    lambda: faults.resume(plan, layout, host, victim.name), rounds=args.rounds, hold=args.hold)
    print(res.summary())
    print(f"requests held across a freeze: {res.held}")
    for v in res.violations[:50]:
        print(v)
    if args.json:
        args.json.write_text(json.dumps({"rounds": res.rounds, "held": res.held, "answers": dict(res.answers),
                                         "violations": res.violations,
                                         "history": [vars(op) for op in res.history]}, indent=1))
    return 1 if res.violations else 0


if __name__ == "__main__":
    sys.exit(main())
