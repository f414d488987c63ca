"""Route matching: literal paths by dictionary, parameter paths by a segment tree.

Built once from the compiled routes. A path matches at most one route shape (the config
compiler rejects two routes of one shape and method), literal segments win over
parameters, which win over a greedy `{name+}` (the rest of the path, at least one
segment), and a path that matches but not for this method is a 405 with `Allow`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote

from tollway.errors import MethodNotAllowed, NotFound

T = TypeVar("T")


@dataclass(slots=True)
class _Node(Generic[T]):
    literals: dict[str, _Node[T]] = field(default_factory=dict)
    param: _Node[T] | None = None
    greedy: _Node[T] | None = None
    # method -> (target, parameter names in path order)
    methods: dict[str, tuple[T, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Match(Generic[T]):
    target: T
    params: dict[str, str]


class Router(Generic[T]):
    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._static: dict[str, dict[str, T]] = {}

    def add(self, path: str, methods: frozenset[str], target: T) -> None:
        segments = path.split("/")[1:]
        names = tuple(s[1:-1].removesuffix("+") for s in segments if s.startswith("{"))
        if not names:
            bucket = self._static.setdefault(path, {})
            for method in methods:
                bucket[method] = target
        node = self._root
        for segment in segments:
            if segment.endswith("+}"):
                node.greedy = node.greedy or _Node()
                node = node.greedy
            elif segment.startswith("{"):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literals.setdefault(segment, _Node())
        for method in methods:
            node.methods[method] = (target, names)

    def match(self, method: str, path: str) -> Match[T]:
        static = self._static.get(path)
        if static is not None and method in static:
            return Match(static[method], {})
        values: list[str] = []
        node = self._walk(self._root, path.split("/")[1:], 0, values)
        if node is None or not node.methods:
            raise NotFound(f"no route for {path}")
        entry = node.methods.get(method)
        if entry is None:
            raise MethodNotAllowed(sorted(node.methods))
        target, names = entry
        return Match(target, dict(zip(names, values, strict=True)))

    def _walk(self, node: _Node[T], segments: list[str], i: int, values: list[str]) -> _Node[T] | None:
        if i == len(segments):
            return node if node.methods else None
        segment = segments[i]
        child = node.literals.get(segment)
        if child is not None:
            found = self._walk(child, segments, i + 1, values)
            if found is not None:
                return found
        if node.param is not None and segment:
            values.append(unquote(segment))
            found = self._walk(node.param, segments, i + 1, values)
            if found is not None:
                return found
            values.pop()
        if node.greedy is not None and node.greedy.methods and any(segments[i:]):
            values.append(unquote("/".join(segments[i:])))
            return node.greedy
        return None
