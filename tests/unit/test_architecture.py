"""The package's structure rules (issue 10): no import cycle, no module looked up by name, no
module over 500 lines."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "contrail_ha"


def _cycles_module():  # scripts/ is not a package: load the checker from its file
    spec = importlib.util.spec_from_file_location("import_cycles", PKG.parent / "scripts" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_cycle() -> None:
    ic = _cycles_module()
    mods = ic.modules(PKG)
    graph = {m: {t for t, _, _ in ic.imports(m, f, set(mods))} for m, f in mods.items()}
    assert ic.sccs(graph) == []


def test_no_dynamic_import() -> None:
    found = []
    for f in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                    "import_module", "__import__"):
                found.append(f"{f.relative_to(PKG)}:{node.lineno}")
    assert found == []


def test_no_module_over_500_lines() -> None:
    big = {str(f.relative_to(PKG)): n for f in PKG.rglob("*.py") if (n := len(f.read_text().splitlines())) > 500}
    assert big == {}
