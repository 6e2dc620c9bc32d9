"""A role container's processes run as the image's unprivileged user, not as root.

Contrail's containers ran everything as root. The product's image has a user ``contrail`` (uid
10001): a role container starts as root only long enough to give that user the directories its
processes write (the role's data, logs, sockets and supervisor state: ``GroupSpec.writable``), then
its supervisor drops to it, and every process inherits that. This is the entrypoint pattern of
the common database images (own the volumes, then run as the service's user), and it makes the
state tree work wherever it came from: written by the local orchestrator, unpacked from an export
by another user, or a Kubernetes hostPath the kubelet created as root. Roles that change routes and
addresses (the lb: BIRD, the VIP agent) stay root (:data:`contrail_ha.runtime.containers.PRIVILEGED`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

UID = GID = 10001  # the image's user ``contrail``
RUN_AS = f"{UID}:{GID}"


def parse(run_as: str) -> tuple[int, int]:
    """``"UID:GID"`` -> (uid, gid); a clear error for anything else."""
    try:
        uid, gid = (int(x) for x in run_as.split(":"))
    except ValueError as e:
        raise ValueError(f"run_as must be UID:GID, got {run_as!r}") from e
    if uid < 0 or gid < 0:
        raise ValueError(f"run_as must be UID:GID, got {run_as!r}")
    return uid, gid


def hand_over(paths: Iterable[str | Path], uid: int, gid: int) -> int:
    """Create each directory if missing and give it, and everything under it, to ``uid:gid`` (symbolic
    links themselves, never their targets). Returns how many entries changed owner."""
    changed = 0

    def own(p: str) -> None:
        nonlocal changed
        st = os.lstat(p)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.lchown(p, uid, gid)
            changed += 1

    for top in dict.fromkeys(str(p) for p in paths):
        Path(top).mkdir(parents=True, exist_ok=True)
        own(top)
        for d, subdirs, files in os.walk(top):
            for name in (*subdirs, *files):
                own(os.path.join(d, name))
    return changed


def drop(uid: int, gid: int) -> None:
    """Become ``uid:gid`` for good (no supplementary groups; capabilities go with root)."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
