"""Which runtime a cluster runs on: recorded in its state root by ``up``, removed by ``down``.

``up`` keeps a running cluster on its own runtime (a supervisor cannot move between a process and a
container while it runs) and starts a stopped one on containers unless told otherwise."""

from __future__ import annotations

import json

from contrail_ha.errors import ContrailHaError
from contrail_ha.rendering.base import Layout

RUNTIME_FILE = "runtime.json"
CONTAINERS, PROCESSES = "containers", "processes"


class RuntimeMismatch(ContrailHaError, ValueError):
    """The cluster runs on one runtime and ``up`` was asked for the other."""


def _recorded(layout: Layout) -> dict[str, str] | None:
    f = layout.root / RUNTIME_FILE
    return dict(json.loads(f.read_text())) if f.exists() else None


def recorded_runtime(layout: Layout) -> str | None:
    """The runtime of a cluster that is up; None when it is down (or was never up)."""
    rec = _recorded(layout)
    return rec["runtime"] if rec else None


def runtime_of(layout: Layout) -> dict[str, str]:
    """``{"runtime": "processes"}`` or ``{"runtime": "containers", "image": TAG}``."""
    return _recorded(layout) or {"runtime": PROCESSES}


def choose(layout: Layout, containers: bool | None) -> str:
    """The runtime ``up`` uses: the one asked for (``containers`` True/False), else the running
    cluster's, else containers."""
    running = recorded_runtime(layout)
    if containers is None:
        return running or CONTAINERS
    wanted = CONTAINERS if containers else PROCESSES
    if running and running != wanted:
        raise RuntimeMismatch(f"cluster {layout.root.name} runs on {running}; `contrail-ha down` first to move it "
                              f"to {wanted}")
    return wanted
