"""The container's discovered services: one resolver per `ssm:` or `cloudmap:` reference.

Built once per container by `build_app`, which resolves every reference before the first
request (one blocking lookup each); after that, the request path only reads.

The lookups use boto3 (SSM's GetParameter, Cloud Map's DiscoverInstances), not the
container's exchanger: they run at init and in background threads (resolver.py), never on
a request's path, where no event loop is theirs; they are rare (one per reference every
30 s) and read paginated answers botocore already parses. boto3 is loaded only for a route
table with `ssm:` or `cloudmap:` services.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from tollway.discovery.resolver import Resolver, Spawn, in_thread
from tollway.table.routes import CompiledConfig
from tollway.table.targets import Reference

TTL_S = 30.0
RETRY_S = 5.0
CLIENTS = {"ssm": "ssm", "cloudmap": "servicediscovery"}


class Directory:
    def __init__(self, resolvers: Iterable[Resolver]) -> None:
        self._resolvers = {r.reference: r for r in resolvers}

    def instances(self, reference: Reference) -> tuple[str, ...]:
        resolver = self._resolvers.get(reference)
        return resolver.current() if resolver is not None else ()

    def resolve_all(self) -> None:
        for resolver in self._resolvers.values():
            resolver.refresh()


def references(config: CompiledConfig) -> set[Reference]:
    """The references the routes use (after `TOLLWAY_SERVICE_<NAME>` overrides)."""
    return {
        b.target.reference
        for route in config.routes
        for b in route.backends
        if b.target is not None and b.target.reference is not None
    }


def build_directory(
    refs: Iterable[Reference],
    client_for: Callable[[str], Any],
    *,
    ttl_s: float = TTL_S,
    retry_s: float = RETRY_S,
    clock: Callable[[], float] = time.monotonic,
    spawn: Spawn = in_thread,
) -> Directory:
    """Resolvers for `refs`, resolved now; `client_for(service)` is called once per kind needed."""
    lookups: dict[str, Callable[[str], tuple[str, ...]]] = {}
    resolvers = []
    for ref in sorted(refs, key=str):
        lookup = lookups.get(ref.scheme)
        if lookup is None:
            lookup = lookups[ref.scheme] = _lookup(ref.scheme, client_for(CLIENTS[ref.scheme]))
        resolvers.append(Resolver(ref, lookup, ttl_s=ttl_s, retry_s=retry_s, clock=clock, spawn=spawn))
    directory = Directory(resolvers)
    directory.resolve_all()
    return directory


def _lookup(scheme: str, client: Any) -> Callable[[str], tuple[str, ...]]:
    # Imported here: a gateway without discovery never loads Powertools' parameters utility.
    if scheme == "ssm":
        from tollway.discovery.ssm import SsmLookup

        return SsmLookup(client)
    from tollway.discovery.cloudmap import CloudMapLookup

    return CloudMapLookup(client)
