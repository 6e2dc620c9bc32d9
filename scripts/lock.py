"""Write requirements.lock: the exact versions of contrail-ha's runtime dependencies (their whole
closure, without the dev extras), as installed in this venv - the set the test suite ran with.

The image installs exactly these (``contrail-ha image build``); rerun after changing
pyproject.toml's dependencies and reinstalling:

    .venv/bin/python scripts/lock.py
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def closure(root: str) -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency of ``root`` (not ``root``)."""
    env = default_environment()
    seen: dict[str, str] = {}
    todo = [Requirement(r) for r in metadata.requires(root) or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue  # an extra (dev) or another platform's dependency
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            seen[name] = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"lock: {req.name} is required but not installed: run scripts/install.sh first")
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]
    return dict(sorted(seen.items()))


def main() -> None:
    pins = closure("contrail-ha")
    text = "# contrail-ha's runtime dependencies, exact (scripts/lock.py writes this file)\n" + \
        "".join(f"{n}=={v}\n" for n, v in pins.items())
    (REPO / "requirements.lock").write_text(text)
    print(f"requirements.lock: {len(pins)} packages")


if __name__ == "__main__":
    main()
