"""Start-up steps run on threads as soon as the steps they depend on are done."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait


def run_steps(steps: dict[str, tuple[list[str], Callable[[], None]]], abort: threading.Event) -> None:
    """Run named steps on threads as soon as their dependencies are done; the first failure aborts all."""
    done: set[str] = set()
    running: dict[Future[None], str] = {}
    with ThreadPoolExecutor(max_workers=len(steps)) as ex:
        while len(done) < len(steps):
            for name, (deps, fn) in steps.items():
                if name not in done and name not in running.values() and all(d in done for d in deps):
                    running[ex.submit(fn)] = name
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in finished:
                name = running.pop(f)
                err = f.exception()
                if err is not None:
                    abort.set()
                    raise err
                done.add(name)
