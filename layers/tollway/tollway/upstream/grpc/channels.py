"""One grpc.aio channel per service instance, per container, on the event loop that uses it.

A channel is bound to the event loop it was created in. Mangum keeps one loop for every
invocation of a container (NOTES.md, "Mangum and the event loop"), uvicorn one per
process: the channel is made on first use, inside the running loop, and reused by every
later call on that loop — one HTTP/2 connection per instance, kept across warm
invocations like the HTTP pool. A call from another loop (a test's, a new adapter's) gets
a channel of its own; one left on a closed loop is dropped, never used.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import grpc

# The highest max_response_bytes a route may set (config/models.py) plus room for framing:
# a bigger reply is refused by grpc itself, a smaller one over the route's limit by us.
MAX_REPLY_BYTES = 6 * 1024 * 1024 + 1024
OPTIONS = (
    ("grpc.max_receive_message_length", MAX_REPLY_BYTES),
    # Retries are the backend's `retry` and `idempotent` only (tollway/upstream/grpc/caller.py),
    # and a service's DNS cannot hand the channel a retry policy of its own.
    ("grpc.enable_retries", 0),
    ("grpc.service_config_disable_resolution", 1),
    # A service that comes back is reconnected within about a second, not grpc's 120 s.
    # (Not grpc.min_reconnect_backoff_ms: it is also the least time a connection attempt
    # is given, which a TLS handshake to a distant service may need; calls have deadlines.)
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.primary_user_agent", "tollway"),
)


def target_of(url: str) -> tuple[str, bool]:
    """(host:port, TLS?) of a grpc:// or grpcs:// URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "grpcs") or not parts.netloc:
        raise ValueError(f"{url} is not a grpc:// or grpcs:// URL")
    return parts.netloc, parts.scheme == "grpcs"


class Channels:
    def __init__(self) -> None:
        self._by_url: dict[str, tuple[asyncio.AbstractEventLoop, grpc.aio.Channel]] = {}

    def get(self, url: str) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        held = self._by_url.get(url)
        if held is not None and held[0] is loop:
            return held[1]
        target, tls = target_of(url)
        if tls:
            channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(target, options=OPTIONS)
        self._by_url[url] = (loop, channel)
        return channel

    async def close(self) -> None:
        """Close the running loop's channels (uvicorn's shutdown)."""
        loop = asyncio.get_running_loop()
        mine = [url for url, (owner, _) in self._by_url.items() if owner is loop]
        for url in mine:
            _, channel = self._by_url.pop(url)
            await channel.close()
