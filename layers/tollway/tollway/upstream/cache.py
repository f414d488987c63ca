"""Per-container response caching: a bounded LRU with a time to live per entry.

A route (`cache:` on the route) caches its final response; a backend (`cache:` on the
backend) caches its JSON answer. Either is only consulted for a caller's GET or HEAD. Keys
carry the consumer id unless the config says `shared: true`. A backend's `Cache-Control`
can only shorten or forbid storing: `no-store` and `no-cache` forbid it, `private`
forbids it in a shared cache, `max-age` caps the configured `ttl_s`. A route's stored
answer keeps the request fields its `Vary` names (one variant per key: another value
is a miss that replaces it).

A stored answer is served to every request with its key, so a request that may fill an
entry carries to its backend only what the key covers (`Fill`): the route's parameters
and query, the caller fields the cache names in `vary` (and Accept-Encoding), the Host,
and who is asking unless the cache is shared; never a cookie or another caller field, a
body on a GET, nor the caller's address. A field the caller's `Connection` names is
hop-by-hop: not forwarded, and absent for the key too (`end_to_end`). The backend
request is then a function of the key, and so is the answer (tests/fuzz/test_cache_key.py holds it to that).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tollway.core.headers import connection_tokens
from tollway.lru import ExpiringLru

if TYPE_CHECKING:
    from tollway.table.routes import Cache

Clock = Callable[[], float]

CACHEABLE = frozenset({"GET", "HEAD"})
# The ids of the one request that fills an entry: sent, but never part of what it stands for
# (on Lambda each invocation has its own X-Ray header: keyed, no entry would ever be hit).
PER_FILL = frozenset({"x-request-id", "traceparent", "x-amzn-trace-id"})


@dataclass(frozen=True, slots=True)
class Fill:
    """What a request that may fill a cache entry may tell its backend."""

    keyed: frozenset[str]  # caller fields forwarded (and keyed by)
    shared: bool  # the entry serves every consumer: who is asking is not told


def fill_for(method: str, *caches: Cache | None) -> Fill | None:
    """The rules a request follows when one of `caches` may store its answer, else None;
    with two caches (a route's and a backend's), what both allow."""
    found = [c for c in caches if c is not None]
    if method not in CACHEABLE or not found:
        return None
    keyed = frozenset.intersection(*(frozenset(("accept-encoding", *map(str.lower, c.vary))) for c in found))
    return Fill(keyed, any(c.shared for c in found))


def end_to_end(request_headers: Mapping[str, str]) -> Mapping[str, str]:
    """The caller's fields less those its `Connection` names: hop-by-hop, they are never
    forwarded (upstream/request.py), so a key or a stored variant must not read them either."""
    named = connection_tokens(request_headers.get("connection"))
    if not named:
        return request_headers
    return {k: v for k, v in request_headers.items() if k not in named}


def keyed_values(fill: Fill, request_headers: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(_normal(request_headers.get(name)) for name in sorted(fill.keyed))


def storable_ttl(config: Cache, cache_controls: Iterable[str | None]) -> float:
    """Seconds an answer may be kept given its backends' Cache-Control; 0 forbids storing."""
    ttl = float(config.ttl_s)
    for value in cache_controls:
        if not value:
            continue
        for directive in value.lower().split(","):
            name, _, arg = directive.strip().partition("=")
            if name in ("no-store", "no-cache") or (name == "private" and config.shared):
                return 0.0
            if name in ("max-age", "s-maxage"):
                seconds = arg.strip().strip('"')
                ttl = min(ttl, float(seconds)) if seconds.isdigit() else 0.0
    return ttl


Variant = tuple[tuple[str, str], ...]  # (request field, its value) a stored answer was chosen by


def variant(
    response_headers: Iterable[tuple[str, str]], request_headers: Mapping[str, str]
) -> Variant | None:
    """The request fields (and values) a response was negotiated on; None: never store it.

    RFC 9111 §4.1: an answer stored for one `Accept-Encoding` (or any field its `Vary`
    names) is served only to a request with the same value. A `Content-Encoding` without
    a `Vary` naming `Accept-Encoding` is taken to vary on it all the same, so a gzip body
    never reaches a caller who did not accept gzip.
    """
    names: set[str] = set()
    encoded = False
    for name, value in response_headers:
        if name == "vary":
            for field in value.lower().split(","):
                field = field.strip()
                if field == "*":
                    return None
                if field:
                    names.add(field)
        elif name == "content-encoding" and value.strip().lower() not in ("", "identity"):
            encoded = True
    if encoded:
        names.add("accept-encoding")
    return tuple((n, _normal(request_headers.get(n))) for n in sorted(names))


def matches(stored: Variant, request_headers: Mapping[str, str]) -> bool:
    return all(_normal(request_headers.get(name)) == value for name, value in stored)


def _normal(value: str | None) -> str:
    # Whitespace around list members is not significant (RFC 9110 §5.6.1).
    return ",".join(part.strip() for part in value.split(",")) if value else ""


class Caches:
    """The container's caches, one per route or backend that opts in, each with its own bound."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._caches: dict[Hashable, ExpiringLru] = {}

    def for_(self, owner: Hashable, config: Cache) -> ExpiringLru:
        cache = self._caches.get(owner)
        if cache is None:
            cache = self._caches[owner] = ExpiringLru(config.max_entries, clock=self.clock)
        return cache
