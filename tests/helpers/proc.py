"""Run rendered processes for integration tests (real servers on loopback addresses, root namespace)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered


def write_files(r: Rendered) -> None:
    for d in r.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
    for path, text in r.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, r.modes.get(path, 0o644))
    for d in r.dirs:
        if d in r.modes:
            os.chmod(d, r.modes[d])


def start(spec: ProcessSpec, log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **spec.env}
    if "PYTHONPATH" in os.environ:  # a test run from another checkout: our processes import its code
        env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
    with open(log, "ab") as out:
        return subprocess.Popen(spec.argv, env=env, cwd=spec.cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(p: subprocess.Popen[bytes], spec: ProcessSpec | None = None, timeout: float = 30) -> None:
    """Stop a process we started, and its process group, by PID only."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, spec.stop_signal if spec else signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(5)


def wait_for(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """Poll ``pred`` until it returns a truthy value (readiness-driven, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last!r})")


@contextmanager
def running(r: Rendered, logdir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Write ``r``'s files, start its processes in order, stop them in reverse order."""
    write_files(r)
    procs: list[tuple[subprocess.Popen[bytes], ProcessSpec]] = []
    try:
        for spec in r.processes:
            procs.append((start(spec, logdir / f"{spec.name}.log"), spec))
        yield [p for p, _ in procs]
    finally:
        for p, spec in reversed(procs):
            stop(p, spec)


def require_runtime(layout: Layout, *components: str) -> None:
    """Skip the test unless java and the jars of ``components`` (cassandra, kafka, zookeeper) are installed."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    for c in components:
        try:
            layout.classpath(c)
        except FileNotFoundError as e:
            pytest.skip(str(e))
