"""The long run of the config-API races (tests/helpers/races.py) against a running HA cluster.

Runs every scenario (or those named with --scenario) for --rounds rounds from the client
namespace (entered by the script when run as root outside it), prints a table per scenario -
rounds, rounds where every racing request answered 200, violations by kind - with examples, and
exits 1 on any violation (2 when the cluster cannot be reached):

    .venv/bin/python scripts/race_config_api.py [--rounds 25] [--scenario NAME]... [-t examples/ha.yaml] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contrail_ha.operations.vip import trust  # noqa: E402
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout  # noqa: E402
from contrail_ha.runtime import netns  # noqa: E402
from contrail_ha.topology.validate import load_topology  # noqa: E402
from tests.helpers import races  # noqa: E402

KINDS = ["lost", "duplicate", "orphan", "dangling", "asymmetric", "bad-409", "inconsistent", "5xx", "unanswered"]


def enter_client_namespace(ns: str) -> None:
    """Move into the client namespace unless this process is already in it (needs root)."""
    target = netns.NETNS_DIR / ns
    if not target.exists():
        sys.exit(f"no namespace {ns}: is the cluster up?")
    if os.stat(target).st_ino != os.stat("/proc/self/ns/net").st_ino:
        netns.enter(ns)


def table(results: list[races.ScenarioResult]) -> str:
    head = ["scenario", "rounds", "all-200", *KINDS, "503/refused", "unchecked", "unconfirmed", "setup-fail", "s"]
    rows = [head]
    for r in results:
        k = r.by_kind()
        rows.append([r.scenario, str(r.rounds), str(r.all_200), *(str(k.get(x, 0)) for x in KINDS),
                     str(r.unavailable), str(r.unchecked), str(r.unconfirmed), str(r.setup_failures),
                     f"{r.seconds:.0f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-t", "--topology", default=str(REPO / "examples" / "ha.yaml"))
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--scenario", action="append", choices=[s.name for s in races.SCENARIOS],
                    help="run only this scenario (repeatable); default all")
    ap.add_argument("--json", help="also write the full results (every violation) to this file")
    ap.add_argument("--examples", type=int, default=2, help="violations printed per kind and scenario")
    ap.add_argument("--sequential", action="store_true",
                    help="self-check of the harness: send each round's racing requests one after another "
                         "(no race: every invariant must hold)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no line per violation while running")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 1000:
        ap.error("--rounds must be 1-1000")
    plan = load_topology(Path(args.topology)).plan()
    enter_client_namespace(netns.ns_name(plan, netns.CLIENT))
    trust(plan, Layout(DEFAULT_STATE_ROOT / plan.cluster_id))  # the VIP speaks TLS (tls.vip): its CA verifies it
    vip = plan.config_api_url
    replicas = [f"http://{i.address}" for i in plan.of("config-api")]
    h = races.Harness(vip, replicas, sequential=args.sequential)
    r = races.send(h.client, vip, "GET", "/hello")
    if r.status != 200:
        print(f"cannot reach contrail-api at {vip}: {r.brief()}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    results = []
    try:
        for sc in [races.BY_NAME[n] for n in args.scenario] if args.scenario else races.SCENARIOS:
            print(f"== {sc.name}: {sc.description} ({args.rounds} rounds)", file=sys.stderr, flush=True)
            res = h.run(sc, args.rounds, log)
            print(res.summary(), file=sys.stderr, flush=True)
            results.append(res)
    finally:
        h.close()
    print()
    print(table(results))
    for res in results:
        print(f"\n{res.scenario}: outcomes {dict(sorted(res.outcomes.items()))}")
        for kind in KINDS:
            vs = [v for v in res.violations if v.kind == kind]
            for v in vs[:args.examples]:
                print(f"  e.g. {v}")
        if res.leftovers:
            print(f"  leftovers (not deleted): {res.leftovers[:5]}")
    if args.json:
        Path(args.json).write_text(json.dumps([x.to_json() for x in results], indent=1, default=str))
    bad = sum(len(x.violations) for x in results)
    print(f"\n{bad} violation(s) in {sum(x.rounds for x in results)} rounds")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
