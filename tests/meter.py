"""The meter's test kit: a scripted chat backend, a tee of the usage events, the counters, and
an oracle that says, independently of the gateway's code, what each request must cost.

The backend answers each request as its JSON body's `reply` says (the gateway forwards a proxy
route's body as sent):

    {"max_tokens": 20, "reply": {"status": 200, "usage": 51, "stream": true, "end": "done"}}

- `status`: the backend's status (a 5xx reaches the caller as the gateway's 502);
- `usage`: `total_tokens` the answer reports (or an object: the whole `usage` member);
  absent or null: no usage at all; "bad": a malformed value (a string);
- `stream`: answer 2xx as an event stream of `words` content events (default 3), the usage
  in a chunk before `data: [DONE]`, or first of all with `"usage_at": "start"`;
- `end`: "done" (the whole stream), "drop" (the connection breaks before the usage chunk and
  the end), "hold" (nothing more until `hold_s`, past the route's deadline);
- `include_usage_only`: like OpenAI, send the usage chunk only when the request's
  `stream_options.include_usage` is true;
- `framing`: how the stream spells its events, all legal Server-Sent Events (WHATWG HTML,
  "Parsing an event stream"): "lf" (the default), "crlf" or "cr" line ends, "bom" (a byte
  order mark first), "lines" (the usage chunk's JSON over several `data:` lines of one event).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from tollway.core.context import Context
from tollway.core.messages import Response
from tollway.recording.events import from_context

from tests.backends import read_body

CONTENT = b'data: {"choices": [{"delta": {"content": "word "}}]}\n\n'


class Dropped(Exception):
    """Raised by the backend app mid-stream: the server then breaks the connection."""


@dataclass
class Scripted:
    """The chat backend; `bodies` are the requests it received, as it received them."""

    bodies: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        raw = await read_body(receive)
        self.paths.append(scope.get("raw_path", b"").decode("latin-1"))
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {}
        self.bodies.append(body)
        reply = body.get("reply", {}) if isinstance(body, dict) else {}
        status = reply.get("status", 200)
        usage = reply.get("usage")
        said = None if usage is None else usage if isinstance(usage, dict) else {"total_tokens": usage}
        if reply.get("include_usage_only") and not (body.get("stream_options") or {}).get("include_usage"):
            said = None
        if not (reply.get("stream") and status < 300):
            answer = {"id": "x", "choices": [{"message": {"content": "hello"}}]}
            if said is not None:
                answer["usage"] = said
            head = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": orjson.dumps(answer)})
            return
        head = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": status, "headers": head})
        framing = reply.get("framing", "lf")
        usage_chunk = b"data: " + orjson.dumps({"choices": [], "usage": said}) + b"\n\n" if said else b""
        if framing == "lines" and said:
            fields = orjson.dumps(said, option=orjson.OPT_INDENT_2).split(b"\n")
            usage_chunk = b'data: {"choices": [],\ndata: "usage":\n'
            usage_chunk += b"".join(b"data: " + line + b"\n" for line in fields) + b"data: }\n\n"
        if framing == "bom":
            await send({"type": "http.response.body", "body": b"\xef\xbb\xbf", "more_body": True})
        send = _framed(send, framing)
        if reply.get("usage_at") == "start" and usage_chunk:
            await send({"type": "http.response.body", "body": usage_chunk, "more_body": True})
            usage_chunk = b""
        for _ in range(reply.get("words", 3)):
            await send({"type": "http.response.body", "body": CONTENT, "more_body": True})
        end = reply.get("end", "done")
        if end == "drop":
            raise Dropped("the backend's connection breaks mid-stream")
        if end == "hold":
            await asyncio.sleep(reply.get("hold_s", 2.0))
        await send({"type": "http.response.body", "body": usage_chunk + b"data: [DONE]\n\n"})


def _framed(send: Any, framing: str) -> Any:
    """`send` with the stream's line ends spelled as `framing` says."""
    ends = {"crlf": b"\r\n", "cr": b"\r"}.get(framing)
    if ends is None:
        return send

    async def framed(message: dict[str, Any]) -> None:
        if message.get("body"):
            message = {**message, "body": message["body"].replace(b"\n", ends)}
        await send(message)

    return framed


class Tee:
    """The gateway's usage recorder, keeping a copy of each event it records (the real event,
    `tollway.usage.events.from_context`) before passing it on to the real one, if any."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.events: list[dict[str, Any]] = []

    def record(self, exchange: Context, response: Response, latency_ms: float) -> None:
        self.events.append(from_context(exchange, response, latency_ms))
        if self.inner is not None:
            self.inner.record(exchange, response, latency_ms)

    def of(self, consumer: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["consumer_id"] == consumer]

    def pending(self) -> int:
        return self.inner.pending() if self.inner is not None else 0


def used(dynamodb: Any, table: str, consumer: str) -> int:
    """`used` summed over the consumer's counter items (every shard and period)."""
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return sum(int(i["used"]["N"]) for i in items if "used" in i and i["pk"]["S"].endswith("#" + consumer))


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def settled(app: Any) -> None:
    """Every settle of the app's quota step has had DynamoDB's answer."""
    wait_for(lambda: app.gateway.admission.settlements.pending() == 0, what="settles landed")


# ---- the oracle: what docs/metering.md says a metered request costs ----------------------


@dataclass(frozen=True)
class Meter:
    """One metered route as the test configures it (`units: <weight> * usage.total_tokens`)."""

    weight: Decimal = Decimal(1)
    estimate_weight: Decimal | None = None  # estimate: {field: max_tokens, weight, plus}
    plus: int = 0
    reserve: int | None = None
    cost: int = 1
    missing: int | None = None

    def reservation(self, request: dict[str, Any]) -> int:
        fixed = self.reserve if self.reserve is not None else self.cost
        tokens = request.get("max_tokens")
        if self.estimate_weight is None or not _count(tokens):
            return max(1, fixed)
        return max(1, math.ceil(Decimal(str(tokens)) * self.estimate_weight + self.plus))

    def charge(self, request: dict[str, Any], reserved: int) -> int:
        """The cost of an admitted request whose backend answered as `request["reply"]` says."""
        reply = request.get("reply", {})
        usage = reply.get("usage")
        if reply.get("include_usage_only") and not (request.get("stream_options") or {}).get("include_usage"):
            usage = None
        stream = reply.get("stream", False) and reply.get("status", 200) < 300
        end = reply.get("end", "done") if stream else "done"
        if stream and end != "done" and reply.get("usage_at") != "start":
            usage = None  # the usage chunk never came
        units = math.ceil(Decimal(usage) * self.weight) if _count(usage) else None
        if reply.get("status", 200) >= 500:
            return 0  # the caller gets the gateway's 502: the backend's body is never read
        if reply.get("status", 200) >= 400:
            return units or 0  # an error answer: only what it says
        floor = self.missing if self.missing is not None else reserved
        if units is None:
            return floor
        return max(units, floor) if end != "done" else units


def _count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
