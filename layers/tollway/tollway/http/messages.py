"""The one request and one response type every step of the pipeline speaks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field


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
    late: bool = False  # the body had not arrived by the route's deadline: never forwarded

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)  # lower-case names
    body: bytes = b""
    # An event stream passed through as it arrives (proxy routes, text/event-stream answers);
    # `streamed` counts the bytes it has yielded so far.
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
