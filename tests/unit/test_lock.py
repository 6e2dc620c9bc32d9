"""The image installs requirements.lock and nothing else: every third-party module the package
imports must come from a locked distribution (a module only the dev venv has, through a dev or
deploy extra, would crash the containers at import)."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def _imported_top_levels() -> set[str]:
    out: set[str] = set()
    for f in (REPO / "contrail_ha").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
    return out


def test_every_imported_distribution_is_locked() -> None:
    locked = {canonicalize_name(line.split("==")[0]) for line in (REPO / "requirements.lock").read_text().splitlines()
              if line and not line.startswith("#")}
    dists = metadata.packages_distributions()
    # the deploy extra (Ansible) runs on the operator's machine only, never in the image
    operator_only = {"ansible"}
    missing = {}
    for mod in sorted(_imported_top_levels() - set(sys.stdlib_module_names) - {"contrail_ha"} - operator_only):
        names = {canonicalize_name(d) for d in dists.get(mod, [])}
        if names and not names & locked:
            missing[mod] = sorted(names)
    assert not missing, f"imported by contrail_ha but not in requirements.lock: {missing}"
