"""The import graph between the top-level parts of the `tollway` package, drawn from its source.

    uv run --frozen python -m tests.imports_graph     # (`make imports`) the parts, floor by floor

A part is a folder under `tollway/` (`quota`, `upstream`, ...) or a top-level module
(`errors.py`, `pipeline.py`). Every import counts: at module level, inside a function (the
lazy ones), and under `if TYPE_CHECKING:` (a type names a dependency as much as a call
does). tests/unit/test_layers.py fails on any cycle between parts, and on a floor that
imports above itself.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "layers" / "tollway" / "tollway"


@dataclass(frozen=True, order=True)
class Edge:
    source: str  # the importing part
    target: str  # the imported part
    where: str  # file:line of the import, relative to tollway/


def part_of(module: str) -> str | None:
    """`tollway.quota.store` -> `quota`; None for anything outside tollway's parts."""
    names = module.split(".")
    return names[1] if names[0] == "tollway" and len(names) > 1 else None


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        if node.module == "tollway":  # `from tollway import aws`
            return [f"tollway.{alias.name}" for alias in node.names]
        return [node.module]
    return []


def edges(package: Path = PACKAGE) -> list[Edge]:
    found: set[Edge] = set()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        source = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for module in _imported(node):
                target = part_of(module)
                if target is not None and target != source:
                    found.add(Edge(source, target, f"{relative.as_posix()}:{node.lineno}"))
    return sorted(found)


def graph(found: list[Edge]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for edge in found:
        out[edge.source].add(edge.target)
        out.setdefault(edge.target, set())
    return dict(out)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one part (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def floors(g: dict[str, set[str]]) -> list[list[str]]:
    """Parts by floor: the first imports no other part, each next only parts below it."""
    placed: dict[str, int] = {}
    remaining = set(g)
    out: list[list[str]] = []
    while remaining:
        ready = sorted(p for p in remaining if g[p] <= placed.keys())
        if not ready:  # a cycle: the rest cannot be placed
            out.append(sorted(remaining))
            break
        for p in ready:
            placed[p] = len(out)
        out.append(ready)
        remaining -= set(ready)
    return out


def main() -> int:
    found = edges()
    g = graph(found)
    for level, parts in enumerate(floors(g)):
        print(f"floor {level}:")
        for part in parts:
            below = ", ".join(sorted(g[part])) or "-"
            print(f"  {part:<14} imports {below}")
    loops = cycles(g)
    for loop in loops:
        print("cycle: " + " <-> ".join(loop))
        for edge in found:
            if edge.source in loop and edge.target in loop:
                print(f"  {edge.source} -> {edge.target}  ({edge.where})")
    return 1 if loops else 0


if __name__ == "__main__":
    sys.exit(main())
