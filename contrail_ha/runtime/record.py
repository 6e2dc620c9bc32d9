"""Which runtime a cluster runs on: recorded in its state root by ``up``, removed by ``down``.

``up`` keeps a running cluster on its own runtime (a supervisor cannot move between a process and a
container while it runs) and starts a stopped one on containers unless told otherwise."""

from __future__ import annotations

import hashlib
import json
from functools import cache

from contrail_ha.errors import ContrailHaError
from contrail_ha.rendering.base import Layout

RUNTIME_FILE = "runtime.json"
CONTAINERS, PROCESSES = "containers", "processes"
DEPLOYED = "deployed"  # on hosts reached over SSH (contrail-ha deploy)


class RuntimeMismatch(ContrailHaError, ValueError):
    """The cluster runs on one runtime and ``up`` was asked for the other."""


def _recorded(layout: Layout) -> dict[str, str] | None:
    f = layout.root / RUNTIME_FILE
    return dict(json.loads(f.read_text())) if f.exists() else None


def write_deployed(layout: Layout, image: str, via: list[str]) -> None:
    """Record a cluster deployed over SSH: its image, this code's digest, and the command prefix
    by which this machine reaches the hosts' network (the client namespace for stand-in hosts)."""
    import shlex

    layout.root.mkdir(parents=True, exist_ok=True)
    (layout.root / RUNTIME_FILE).write_text(json.dumps({"runtime": DEPLOYED, "image": image, "code": code_digest(),
                                                         "via": shlex.join(via)}))


def deployed(layout: Layout) -> bool:
    """Whether the cluster runs on hosts reached over SSH: its state, processes and containers are
    there, read and acted on over SSH, not through this machine's files and pids."""
    return recorded_runtime(layout) == DEPLOYED


def recorded_runtime(layout: Layout) -> str | None:
    """The runtime of a cluster that is up; None when it is down (or was never up)."""
    rec = _recorded(layout)
    return rec["runtime"] if rec else None


def runtime_of(layout: Layout) -> dict[str, str]:
    """``{"runtime": "processes"}`` or ``{"runtime": "containers", "image": TAG}``."""
    return _recorded(layout) or {"runtime": PROCESSES}


def write(layout: Layout, image: str | None) -> None:
    """Record the runtime ``up`` starts: containers of ``image`` (with this code's digest), else
    processes, unless the cluster already runs on one (``up`` keeps a running cluster's)."""
    f = layout.root / RUNTIME_FILE
    if image is not None:
        f.write_text(json.dumps({"runtime": CONTAINERS, "image": image, "code": code_digest()}))
    elif not f.exists():
        f.write_text(json.dumps({"runtime": PROCESSES}))


def choose(layout: Layout, containers: bool | None) -> str:
    """The runtime ``up`` uses: the one asked for (``containers`` True/False), else the running
    cluster's, else containers."""
    running = recorded_runtime(layout)
    if running == DEPLOYED:
        raise RuntimeMismatch(f"cluster {layout.root.name} is deployed on hosts over SSH: `contrail-ha deploy` "
                              "manages it (`contrail-ha down` stops it)")
    if containers is None:
        return running or CONTAINERS
    wanted = CONTAINERS if containers else PROCESSES
    if running and running != wanted:
        raise RuntimeMismatch(f"cluster {layout.root.name} runs on {running}; `contrail-ha down` first to move it "
                              f"to {wanted}")
    return wanted


@cache
def code_digest() -> str:
    """A digest of this contrail-ha's code: what renders the configuration here and, in an image
    built from this tree, reads it in the containers."""
    from contrail_ha.image.build import REPO, package_files

    h = hashlib.sha256()
    for f in package_files():  # the files the image carries: the same list its tag hashes
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def check_code(layout: Layout) -> None:
    """Refuse to render into a cluster whose containers run another contrail-ha's image: its
    processes would read files of a format they do not know (a running container keeps its
    image; rolling containers to a new image is not built yet)."""
    rec = _recorded(layout)
    if rec and rec.get("runtime") == CONTAINERS and rec.get("code") not in (None, code_digest()):
        raise RuntimeMismatch(f"cluster {layout.root.name} runs the image {rec.get('image')} of another "
                              "contrail-ha than this one; `contrail-ha down` (its data is kept), then `contrail-ha "
                              "up`, moves it to this one")
