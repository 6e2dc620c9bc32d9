"""The write path's cost of issue 20's fencing: the same contrail-api code before and after, in one run.

Starts two extra contrail-api processes on the first controller of a running cluster, side by side
on the same config DB, ZooKeeper and RabbitMQ: one from this tree ("after") and one from the tree
of ``--before`` (default: the last commit without fencing), exported with ``git archive`` to a
temporary directory. Both get the first replica's own service file, with another port. Then each
workload runs against each in turn, ``--rounds`` times, alternating (so a noisy neighbour hits
both alike); the figures are medians over the rounds, and the ratio is after / before:

    .venv/bin/python benchmarks/fencing_cost.py [-t examples/ha.yaml] [--seconds 5] [--rounds 3]

Needs a running cluster (``contrail-ha up``); run as root. The extra processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.config_api import run_load  # noqa: E402
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT  # noqa: E402
from contrail_ha.runtime import netns  # noqa: E402
from contrail_ha.topology.plan import CONFIG_API  # noqa: E402
from contrail_ha.topology.validate import load_topology  # noqa: E402

BEFORE = "ee4bea0"  # the last commit before issue 20's fencing
PORTS = {"before": 18082, "after": 18083}


def export_tree(ref: str, into: Path) -> Path:
    """``contrail_ha`` as of ``ref``, in ``into`` (no worktree: the repository is left as it is)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "contrail_ha"], check=True,
                             capture_output=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into


def start_replica(ns: str, conf: dict[str, Any], name: str, tree: Path, work: Path) -> subprocess.Popen[bytes]:
    path = work / f"{name}.json"
    path.write_text(json.dumps({**conf, "name": f"bench-{name}", "listen_port": PORTS[name]}))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
    with open(work / f"{name}.log", "ab") as log:
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "contrail_ha.services.config_api",
                                 str(path)], env=env, cwd=str(work), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


async def wait_ready(base: str, p: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{base}: the replica exited ({p.returncode})")
            try:
                async with s.get(f"{base}/projects") as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{base}: not ready after {timeout:.0f} s")


async def post(s: aiohttp.ClientSession, url: str, rtype: str, body: dict[str, Any]) -> str:
    async with s.post(url, json={rtype: body}) as r:
        if r.status != 200:
            raise RuntimeError(f"POST {url}: {r.status} {await r.text()}")
        return str((await r.json())[rtype]["uuid"])


async def fixtures(base: str, tag: str) -> dict[str, Any]:
    """A project with an IPAM and 64 networks to update, under ``base``'s own names."""
    async with aiohttp.ClientSession() as s:
        p = f"bench-fence-{tag}"
        await post(s, f"{base}/projects", "project", {"fq_name": ["default-domain", p]})
        ipam = await post(s, f"{base}/network-ipams", "network-ipam", {"fq_name": ["default-domain", p, "ipam"],
                                                                        "parent_type": "project"})
        vns = [await post(s, f"{base}/virtual-networks", "virtual-network",
                          {"fq_name": ["default-domain", p, f"vn{k}"], "parent_type": "project"}) for k in range(64)]
    return {"project": p, "ipam": ipam, "vns": vns}


def workloads(base: str, fx: dict[str, Any]) -> dict[str, tuple[Any, str, Any]]:
    vns, ipam = fx["vns"], fx["ipam"]
    return {
        "read": (lambda w, i: f"{base}/virtual-network/{vns[(w + i) % len(vns)]}", "GET", None),
        "create": (lambda w, i: f"{base}/virtual-networks", "POST", lambda w, i: {"virtual-network": {
            "fq_name": ["default-domain", fx["project"], f"c-{w}-{i}-{uuid.uuid4().hex[:6]}"],
            "parent_type": "project"}}),
        "update (PUT)": (lambda w, i: f"{base}/virtual-network/{vns[w % len(vns)]}", "PUT",
                         lambda w, i: {"virtual-network": {"display_name": f"d-{w}-{i}"}}),
        "ref add/delete": (lambda w, i: f"{base}/ref-update", "POST", lambda w, i: {
            "operation": "ADD" if i % 2 else "DELETE", "type": "virtual-network", "uuid": vns[w % len(vns)],
            "ref-type": "network-ipam", "ref-uuid": ipam, "attr": {"ipam_subnets": []} if i % 2 else None}),
    }


async def measure(bases: dict[str, str], seconds: float, rounds: int, concurrency: int) -> dict[str, Any]:
    fx = {name: await fixtures(base, f"{name}-{uuid.uuid4().hex[:6]}") for name, base in bases.items()}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for r in range(rounds):
        order = list(bases) if r % 2 == 0 else list(reversed(bases))
        for wname in workloads("", fx[order[0]]):
            for name in order:
                url, method, body = workloads(bases[name], fx[name])[wname]
                got = await run_load(url, method, body, seconds, concurrency)
                runs.setdefault(wname, {}).setdefault(name, []).append(got)
    out: dict[str, Any] = {}
    for wname, by in runs.items():
        row = {name: {k: round(statistics.median(x[k] for x in xs), 1) for k in ("per_s", "p50_ms", "p99_ms", "errors")}
               for name, xs in by.items()}
        row["throughput after/before"] = round(row["after"]["per_s"] / max(row["before"]["per_s"], 0.1), 2)
        row["p50 after/before"] = round(row["after"]["p50_ms"] / max(row["before"]["p50_ms"], 0.01), 2)
        out[wname] = row
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--topology", default=str(REPO / "examples" / "ha.yaml"))
    ap.add_argument("--before", default=BEFORE, help="the commit to compare with (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    plan = load_topology(a.topology).plan()
    first = plan.of(CONFIG_API)[0]
    conf = json.loads((DEFAULT_STATE_ROOT / plan.cluster_id / "hosts" / first.host.name / first.name / "conf"
                       / "service.json").read_text())
    ns = netns.ns_name(plan, first.host.name)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="fencing-cost-") as tmp:
        work = Path(tmp)
        (work / "before").mkdir()
        trees = {"before": export_tree(a.before, work / "before"), "after": REPO}
        try:
            for name, tree in trees.items():
                procs.append(start_replica(ns, conf, name, tree, work))
            netns.enter(netns.ns_name(plan, netns.CLIENT))
            bases = {name: f"http://{conf['listen_ip']}:{PORTS[name]}" for name in trees}
            for base, p in zip(bases.values(), procs, strict=True):
                await wait_ready(base, p)
            results = await measure(bases, a.seconds, a.rounds, a.concurrency)
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
    if a.json:
        print(json.dumps(results, indent=2))
        return
    print(f"contrail-api on {first.host.name}, before ({a.before}) and after fencing, {a.concurrency} clients, "
          f"{a.seconds:.0f} s x {a.rounds} rounds alternating (medians)")
    print(f"{'workload':16} {'before/s':>9} {'after/s':>9} {'ratio':>6} {'p50 before':>11} {'p50 after':>10} "
          f"{'p99 before':>11} {'p99 after':>10}")
    for wname, row in results.items():
        b, f = row["before"], row["after"]
        print(f"{wname:16} {b['per_s']:>9} {f['per_s']:>9} {row['throughput after/before']:>6} {b['p50_ms']:>11} "
              f"{f['p50_ms']:>10} {b['p99_ms']:>11} {f['p99_ms']:>10}")


if __name__ == "__main__":
    if sys.platform != "linux":
        sys.exit("linux only")
    asyncio.run(main())
