"""Route matching: literal paths by dictionary, parameter paths by a segment tree.

Built once from the compiled routes. A path matches at most one route shape (the config
compiler rejects two routes of one shape and method), literal segments win over
parameters, which win over a greedy `{name+}` (the rest of the path, at least one
segment), and a path that matches but not for this method is a 405 with `Allow`.

Routing decides on one spelling of a path, whichever host delivered it: the app passes
`canonical_path` of the bytes the caller sent, and each segment, split on a literal `/`,
is compared and bound decoded, once. So `/items/%61dmin` is the literal route
`/items/admin`, never a parameter whose decoded value happens to be `admin` (both would
reach the same backend path), and `%2F` never splits a segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote

from tollway.errors import MethodNotAllowed, NotFound

T = TypeVar("T")

# RFC 3986 §2.3 unreserved characters: their escapes are the same text (§6.2.2.2).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# An escape, or a byte a path cannot hold as itself (RFC 3986 pchar and "/" can).
_NOT_CANONICAL = re.compile(rb"%([0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")


def _canonical(m: re.Match[bytes]) -> bytes:
    escaped = m.group(1)
    if escaped is None:
        return b"%%%02X" % m.group()[0]  # a space, a control or non-ASCII byte, a lone `%`
    byte = int(escaped, 16)
    return bytes((byte,)) if byte in _UNRESERVED else b"%" + escaped.upper()


def canonical_path(raw: bytes) -> str:
    """The path as routing reads it (RFC 3986 §6.2.2): escapes of unreserved characters
    decoded, the others upper-cased, and every byte a path cannot hold as itself escaped."""
    if _NOT_CANONICAL.search(raw) is None:
        return raw.decode("ascii")
    return _NOT_CANONICAL.sub(_canonical, raw).decode("ascii")


def _decoded(segment: str) -> str:
    return unquote(segment) if "%" in segment else segment


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
            bucket = self._static.setdefault(canonical_path(path.encode()), {})
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
                node = node.literals.setdefault(_decoded(segment), _Node())
        for method in methods:
            node.methods[method] = (target, names)

    def match(self, method: str, path: str) -> Match[T]:
        """`path`: as `canonical_path` spells it."""
        static = self._static.get(path)
        if static is not None and method in static:
            return Match(static[method], {})
        values: list[str] = []
        segments = path.split("/")[1:]
        node = self._walk(self._root, segments, [_decoded(s) for s in segments], 0, values)
        if node is None or not node.methods:
            raise NotFound(f"no route for {path}")
        entry = node.methods.get(method)
        if entry is None:
            raise MethodNotAllowed(sorted(node.methods))
        target, names = entry
        return Match(target, dict(zip(names, values, strict=True)))

    def _walk(
        self, node: _Node[T], segments: list[str], decoded: list[str], i: int, values: list[str]
    ) -> _Node[T] | None:
        if i == len(segments):
            return node if node.methods else None
        child = node.literals.get(decoded[i])
        if child is not None:
            found = self._walk(child, segments, decoded, i + 1, values)
            if found is not None:
                return found
        if node.param is not None and segments[i]:
            values.append(decoded[i])
            found = self._walk(node.param, segments, decoded, i + 1, values)
            if found is not None:
                return found
            values.pop()
        if node.greedy is not None and node.greedy.methods and any(segments[i:]):
            values.append("/".join(decoded[i:]))
            return node.greedy
        return None
