"""What containers cost: idle CPU and the config API benchmark, processes against containers.

Brings the cluster up on each runtime in turn (alternating, ``--rounds`` times each, so that drift of
a shared machine hits both alike), measures idle CPU (``idle_cpu.py``) and runs ``config_api.py``,
brings it down, and prints each figure per runtime with the containers/processes ratio of medians.
Needs nothing running (it refuses when a cluster is up); run as root:

    .venv/bin/python benchmarks/runtime_cost.py [--rounds 2] [--seconds 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import idle_cpu

REPO = Path(__file__).resolve().parents[1]
CLI = [str(REPO / ".venv" / "bin" / "contrail-ha")]
PY = str(REPO / ".venv" / "bin" / "python")
RUNTIMES = {"processes": ["--processes"], "containers": ["--containers"]}


def _run(argv: list[str], timeout: float) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def one(runtime: str, seconds: float, idle_s: float) -> dict[str, float]:
    t0 = time.monotonic()
    _run([*CLI, "up", *RUNTIMES[runtime]], timeout=900)
    out: dict[str, float] = {"up_s": round(time.monotonic() - t0, 1)}
    try:
        time.sleep(30)  # settle: start-up work (compactions, JIT) is not idle
        idle = idle_cpu.measure(idle_s)
        out["idle_cores"] = idle["machine_busy_cores"]
        out["idle_cluster_cores"] = idle["cluster_cores"]
        bench = json.loads(_run([PY, str(REPO / "benchmarks" / "config_api.py"), "--seconds", str(seconds),
                                 "--json"], timeout=900))
        for k, v in bench.items():
            out[f"{k} req/s"] = v["per_s"]
            out[f"{k} p99 ms"] = v["p99_ms"]
    finally:
        _run([*CLI, "down"], timeout=600)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8, help="per config API workload")
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {r: [] for r in RUNTIMES}
    for i in range(a.rounds):
        for runtime in RUNTIMES:
            print(f"round {i + 1}: {runtime}", file=sys.stderr, flush=True)
            runs[runtime].append(one(runtime, a.seconds, a.idle_seconds))
            print(f"  {runs[runtime][-1]}", file=sys.stderr, flush=True)
    if a.json:
        a.json.write_text(json.dumps(runs, indent=2))
    keys = list(runs["processes"][0])
    print(f"| figure (median of {a.rounds}) | processes | containers | containers / processes |")
    print("|---|---|---|---|")
    for k in keys:
        p = statistics.median(r[k] for r in runs["processes"])
        c = statistics.median(r[k] for r in runs["containers"])
        print(f"| {k} | {p:g} | {c:g} | {c / p:.2f} |" if p else f"| {k} | {p:g} | {c:g} | - |")


if __name__ == "__main__":
    main()
