"""Turn `contrail-ha drill --json` output into the Markdown table of docs/ha.md.

    .venv/bin/python benchmarks/drill_report.py drill.json [more.json ...]

One row per fault over all its repetitions: figures as min-max, failures summed by kind, data
checks summed (they must all be 0); then the history checkers' table (the register and the
object graph), when the results have them.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def span(values: list[float | None], unit: str = "") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return f"{lo:g}{unit}" if lo == hi else f"{lo:g}-{hi:g}{unit}"


def report(runs: list[dict[str, Any]]) -> str:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by[r["fault"]].append(r)
    out = ["| fault | runs | requests | failed (kind: count, all runs) | longest outage s | longest gap s "
           "| writes back s | out of rotation s | p99 ms | recovery s | acked creates | messages "
           "| lost / dup / differ / msgs lost |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fault, rs in by.items():
        failed: dict[str, int] = defaultdict(int)
        for r in rs:
            for k, v in r["failed"].items():
                failed[k] += v
        loss = (sum(r["lost"] + r["mismatched"] for r in rs), sum(r["duplicate_fq_names"] + r["duplicate_vn_ids"]
                                                                for r in rs),
                sum(r["replicas_disagree"] for r in rs), sum(r["analytics_lost"] + r["analytics_duplicates"]
                                                            for r in rs))
        minority = {}
        for r in rs:
            for k, v in r.get("minority_writes", {}).items():
                minority[k] = minority.get(k, 0) + v
        extra = f"; minority replica answered {minority}" if minority else ""
        out.append(
            f"| {fault} | {len(rs)} | {sum(r['requests'] for r in rs)} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(failed.items())) or '0'}{extra} | "
            f"{span([r['longest_outage_s'] for r in rs])} | {span([r.get('longest_gap_s') for r in rs])} | "
            f"{span([r['writes_back_s'] for r in rs])} | "
            f"{span([r.get('out_of_rotation_s') for r in rs])} | {span([r['p99_during_fault_ms'] for r in rs])} | "
            f"{span([r['recovery_s'] for r in rs])}{'' if all(r['recovered'] for r in rs) else ' (not all)'} | "
            f"{sum(r['acked_creates'] for r in rs)} | {sum(r['analytics_sent'] for r in rs)} | "
            f"{' / '.join(map(str, loss))} |")
    return "\n".join(out)


def checkers(runs: list[dict[str, Any]]) -> str:
    """The history checkers per fault: the register's (linearizability) and the object graph's."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by[r["fault"]].append(r)
    out = ["| fault | runs | register ops (unknown outcome) | linearizable | graph requests | graph creates acked "
           "| graph deletes acked (projects) | graph answers 5xx (503 / 504) | violations |",
           "|---|---|---|---|---|---|---|---|---|"]
    for fault, rs in by.items():
        answers: dict[str, int] = defaultdict(int)
        for r in rs:
            for k, v in r.get("graph_answers", {}).items():
                answers[k] += v
        creates = sum(v for k, v in answers.items() if k.startswith("create-") and k.endswith(" 200"))
        deletes = sum(v for k, v in answers.items() if k.startswith("delete-") and k.endswith(" 200"))
        projects = answers.get("delete-project 200", 0)
        unavailable = (sum(v for k, v in answers.items() if k.endswith(" 503")),
                       sum(v for k, v in answers.items() if k.endswith(" 504")))
        lin = "all" if all(r["register_linearizable"] for r in rs) else "NO"
        if any(r.get("register_undecided") for r in rs):
            lin += " (some undecided)"
        violations = sum(r.get("graph_violations", 0) for r in rs) + \
            sum(0 if r["register_linearizable"] else 1 for r in rs)
        out.append(f"| {fault} | {len(rs)} | {sum(r['register_ops'] for r in rs)} "
                   f"({sum(r['register_unknown'] for r in rs)}) | {lin} | {sum(r.get('graph_ops', 0) for r in rs)} "
                   f"| {creates} | {deletes} ({projects}) | {unavailable[0]} / {unavailable[1]} | {violations} |")
    return "\n".join(out)


def main() -> None:
    runs: list[dict[str, Any]] = []
    for f in sys.argv[1:]:
        runs += json.loads(Path(f).read_text())
    if not runs:
        raise SystemExit("usage: drill_report.py DRILL.json [...]")
    print(report(runs))
    if any("graph_ops" in r for r in runs):
        print()
        print(checkers(runs))


if __name__ == "__main__":
    main()
