"""Idle CPU of a running cluster: what the whole machine spends while nobody calls it.

Reads the kernel's CPU counters (``/proc/stat``) over a window and reports the busy share in
cores (user + system + irq + softirq + steal), and how it splits between the cluster's own
processes and everything else, from each process's CPU time (``/proc/<pid>/stat``). The cluster's
processes are the supervisors' trees and, on containers, the engine's (conmon, the API service).
Run as root with the cluster up and idle:

    .venv/bin/python benchmarks/idle_cpu.py [--seconds 60] [--settle 30] [--json]

Compare runtimes within one run of this script per runtime on the same machine, back to back:
the machine is shared and noisy, so ratios, not absolute numbers, are what is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
ENGINE = ("conmon", "podman")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies since boot, all CPUs."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f[:8])
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def _procs() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, comm, utime+stime jiffies)."""
    out: dict[int, tuple[int, str, int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2:].split()
        out[int(d.name)] = (int(rest[1]), comm, int(rest[11]) + int(rest[12]))
    return out


def cluster_pids(procs: dict[int, tuple[int, str, int]]) -> set[int]:
    """The supervisors' trees (processes and containers alike: the supervisor is the container's main
    process), conmon and Podman's API service."""
    roots = {pid for pid in procs if _cmd(pid).find("contrail_ha.runtime.supervisor") >= 0}
    roots |= {pid for pid, (_, comm, _) in procs.items() if comm in ENGINE}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(children.get(p, []))
    return seen


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def measure(seconds: float) -> dict[str, float]:
    b0, t0 = machine_busy()
    p0 = _procs()
    ours0 = cluster_pids(p0)
    time.sleep(seconds)
    b1, t1 = machine_busy()
    p1 = _procs()
    ours = ours0 | cluster_pids(p1)
    # a process that started during the window counts from zero; one that ended is not counted
    ours_j = sum(p1[p][2] - (p0[p][2] if p in p0 else 0) for p in ours if p in p1)
    ncpu = os.cpu_count() or 1
    busy_cores = (b1 - b0) / (t1 - t0) * ncpu
    cluster_cores = ours_j / TICK / seconds
    return {"seconds": seconds, "machine_busy_cores": round(busy_cores, 3),
            "cluster_cores": round(cluster_cores, 3),
            "other_cores": round(max(busy_cores - cluster_cores, 0.0), 3),
            "cluster_processes": len([p for p in ours if p in p1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--settle", type=float, default=30, help="wait this long before measuring")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    time.sleep(a.settle)
    r = measure(a.seconds)
    if a.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"{k:22} {v}")


if __name__ == "__main__":
    main()
