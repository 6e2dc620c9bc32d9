"""What a container costs one HTTP server, in isolation: the same minimal aiohttp app as a process
and in the product's image (Podman + runc, host network), with Podman's default seccomp filter and
without it (``--security-opt seccomp=unconfined``), loaded from this machine over loopback.

Why: with the whole cluster, one contrail-api replica served 11-13% fewer requests in a container
(docs/benchmarks.md, issue 11), and the cluster's noise hid the cause. Here nothing else runs; the
variants alternate (rotated each round, so drift and order hit all alike) and the figure is the
ratio of medians. Run as root, with nothing else heavy running:

    .venv/bin/python benchmarks/container_overhead.py [--rounds 5] [--seconds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contrail_ha.cli_image import build_image  # noqa: E402
from contrail_ha.image.engine import Engine  # noqa: E402
from contrail_ha.runtime.containers import IMAGE_PYTHON  # noqa: E402

PORT = 38088
NAME = "contrail-ha-bench-http"
# /hello: the HTTP stack alone (syscall-bound); /read: a JSON body decoded and encoded per request,
# about what an object read costs in Python once its row is fetched
APP = """
import json, sys
from aiohttp import web
body = json.dumps({"virtual-network": {"fq_name": ["default-domain", "p", "vn"], "uuid": "u" * 36,
                   "network_ipam_refs": [{"to": ["default-domain", "p", f"ipam-{i}"], "attr": {"k": i}}
                                         for i in range(40)]}})
async def hello(r): return web.Response(text="hello")
async def read(r): return web.Response(text=json.dumps(json.loads(body)), content_type="application/json")
app = web.Application()
app.router.add_get("/hello", hello)
app.router.add_get("/read", read)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
VARIANTS = ("process", "container", "container-unconfined")


def _start(variant: str, image: str, engine: Engine) -> Callable[[], None]:
    """Start the app as ``variant``; returns how to stop it."""
    if variant == "process":
        p = subprocess.Popen([sys.executable, "-c", APP, str(PORT)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)

        def stop() -> None:
            p.terminate()
            p.wait(10)
        return stop
    extra = ["--security-opt", "seccomp=unconfined"] if variant == "container-unconfined" else []
    engine.run("run", "-d", "--rm", "--name", NAME, "--network", "host", "--user", "10001:10001", *extra,
               image, IMAGE_PYTHON, "-c", APP, str(PORT), timeout=120)

    def stop_container() -> None:
        engine.run("rm", "-f", "-t", "2", NAME, timeout=60, check=False)
    return stop_container


async def _ready(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"http://127.0.0.1:{PORT}/hello") as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the benchmark server did not answer")


async def _load(path: str, seconds: float, concurrency: int) -> float:
    """Requests per second over ``seconds`` with ``concurrency`` closed-loop clients."""
    conn = aiohttp.TCPConnector(limit=concurrency)
    done = 0
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as s:
        end = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < end:
                async with s.get(f"http://127.0.0.1:{PORT}{path}") as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    engine = Engine()
    image = build_image(lambda m: print(m, file=sys.stderr))
    engine.run("rm", "-f", NAME, timeout=60, check=False)
    runs: dict[str, dict[str, list[float]]] = {v: {"hello": [], "read": []} for v in VARIANTS}
    for k in range(a.rounds):
        order = VARIANTS[k % len(VARIANTS):] + VARIANTS[:k % len(VARIANTS)]
        for v in order:
            stop = _start(v, image, engine)
            try:
                asyncio.run(_ready())
                asyncio.run(_load("/hello", 1.0, a.concurrency))  # warm-up
                for path in ("hello", "read"):
                    runs[v][path].append(round(asyncio.run(_load(f"/{path}", a.seconds, a.concurrency)), 1))
            finally:
                stop()
            print(f"round {k + 1} {v}: " + ", ".join(f"{p} {runs[v][p][-1]}/s" for p in ("hello", "read")),
                  file=sys.stderr)
    med = {v: {p: statistics.median(xs) for p, xs in r.items()} for v, r in runs.items()}
    print("| figure | " + " | ".join(VARIANTS) + " | container / process | unconfined / container |")
    print("|---" * (len(VARIANTS) + 3) + "|")
    for p in ("hello", "read"):
        cells = [", ".join(str(x) for x in runs[v][p]) for v in VARIANTS]
        print(f"| {p} req/s | " + " | ".join(cells) +
              f" | {med['container'][p] / med['process'][p]:.2f} |"
              f" {med['container-unconfined'][p] / med['container'][p]:.2f} |")
    if a.json:
        a.json.write_text(json.dumps({"runs": runs, "medians": med, "image": image}, indent=2))


if __name__ == "__main__":
    main()
