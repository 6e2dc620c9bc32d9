"""Import cycles among the modules of a package, from every import statement (also inside functions).

Usage: python import_cycles.py [PACKAGE_DIR]   (default: contrail_ha)

An edge A -> B means: running A's imports executes B. Importing ``a.b.c`` also executes the
``__init__`` of ``a`` and ``a.b``, so those are edges too (except the importer's own ancestors,
which are already initialized). Edges are tagged ``top`` (module level) or ``func`` (inside a
function or method: executed on first call) or ``dyn`` (``importlib.import_module`` of a
literal, or of an f-string: every module under its literal prefix); imports under ``if TYPE_CHECKING:`` are skipped.
Prints every strongly connected component of more than one module and, for each edge of it, the
shortest cycle through that edge (deduplicated).
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections import deque
from pathlib import Path


def modules(pkg_dir: Path) -> dict[str, Path]:
    root = pkg_dir.parent
    out: dict[str, Path] = {}
    for f in sorted(pkg_dir.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(target module, 'top'|'func', line) for every import of ``name``."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, str, int]] = []

    def add(target: str, kind: str, line: int) -> None:
        parts = target.split(".")
        own = name.split(".")
        for i in range(1, len(parts) + 1):
            t = ".".join(parts[:i])
            if t in known and t != name and own[:i] != parts[:i]:  # skip the importer's own ancestors
                out.append((t, kind, line))

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for c in child.orelse:
                    visit_stmt(c, kind)
                continue
            visit_stmt(child, kind)

    def visit_stmt(child: ast.AST, kind: str) -> None:
        if isinstance(child, ast.Import):
            for a in child.names:
                add(a.name, kind, child.lineno)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (child.level - 1)]
                mod = ".".join(base + ([child.module] if child.module else []))
            else:
                mod = child.module or ""
            add(mod, kind, child.lineno)
            for a in child.names:
                sub = f"{mod}.{a.name}"
                if sub in known:
                    add(sub, kind, child.lineno)
        elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute | ast.Name)
              and (child.func.attr if isinstance(child.func, ast.Attribute) else child.func.id) == "import_module"
              and child.args):
            arg = child.args[0]  # importlib.import_module("pkg.mod") or f"pkg.{x}": every module it may name
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                add(arg.value, "dyn", child.lineno)
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                prefix = str(arg.values[0].value)
                for m in sorted(known):
                    if m.startswith(prefix):
                        add(m, "dyn", child.lineno)
        inner = "func" if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) else kind
        visit(child, inner)

    visit(tree, "top")
    return out


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def shortest_path(graph: dict[str, set[str]], src: str, dst: str, within: set[str]) -> list[str] | None:
    prev: dict[str, str | None] = {src: None}
    q = deque([src])
    while q:
        v = q.popleft()
        if v == dst:
            path = [v]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for w in sorted(graph[v]):
            if w in within and w not in prev:
                prev[w] = v
                q.append(w)
    return None


def main() -> int:
    pkg = Path(sys.argv[1] if len(sys.argv) > 1 else "contrail_ha")
    mods = modules(pkg)
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    kinds: dict[tuple[str, str], set[str]] = {}
    for m, f in mods.items():
        for t, kind, line in imports(m, f, known):
            graph[m].add(t)
            kinds.setdefault((m, t), set()).add(f"{kind}:{line}")
    comps = sccs(graph)
    if not comps:
        print("no import cycles")
        return 0
    for comp in comps:
        members = set(comp)
        print(f"cycle group ({len(comp)} modules): {', '.join(comp)}")
        seen: set[tuple[str, ...]] = set()
        for a in comp:
            for b in sorted(graph[a] & members):
                back = shortest_path(graph, b, a, members)
                if back is None:
                    continue
                cyc = [a, *back]
                i = cyc.index(min(cyc[:-1]))
                key = tuple(cyc[i:-1] + cyc[:i])
                if key in seen:
                    continue
                seen.add(key)
                ring = [*key, key[0]]
                print("  " + " -> ".join(
                    f"{x} [{','.join(sorted(kinds[(x, y)]))}]" for x, y in itertools.pairwise(ring))
                      + f" -> {key[0]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
