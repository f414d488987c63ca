"""The one request and one response type every step of the pipeline speaks, and the request
a backend is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.core.trace import TraceContext


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query_string: bytes
    headers: dict[str, str]  # lower-case names; repeated fields joined with ","
    body: bytes
    client_ip: str
    scheme: str
    request_id: str
    oversize: bool = False  # the body was over the gateway's limit and was not read
    truncated: bool = False  # the caller went away before the body's end: never forwarded
    trace: TraceContext | None = None  # the trace backends join (tollway.core.trace)
    late: bool = False  # the body had not arrived by the route's deadline: never forwarded

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


class StreamCut(Exception):
    """A `Response.stream` ended before the backend's end of it: the route's deadline passed,
    or the connection broke. Raised after the last chunk it did deliver, so that the meter
    knows the usage it read may be incomplete (tollway.policy.metering, `charge`)."""


@dataclass(frozen=True, slots=True)
class BackendRequest:
    """What one backend is sent; `path` holds the query."""

    method: str
    path: str  # with its query: the balancer prefixes an instance's base URL per try
    headers: list[tuple[str, str]]
    body: bytes | None


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)  # lower-case names
    body: bytes = b""
    # An event stream passed through as it arrives (proxy routes, text/event-stream answers),
    # raising StreamCut if it is cut; `streamed` counts the bytes it has yielded so far.
    stream: AsyncIterator[bytes] | None = None
    streamed: int = 0

    @property
    def size(self) -> int:
        return len(self.body) + self.streamed

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None
