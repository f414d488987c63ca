"""Cost read from the answer: token-metered and response-priced routes.

A route with `metering` (config/models.py) is charged what its answer says it cost:

    units    = ceil(sum(field value x weight))      e.g. usage.input_tokens x 1 + usage.output_tokens x 3
    reserved = ceil(request field x weight + plus)  at admission, e.g. from the request's max_tokens;
               else the fixed `reserve`, else the route's `cost`; at least 1
    charged  = `charge`: the units read; for a successful answer that does not say them, the
               route's `missing` (default: the reservation, kept); for an event stream cut
               before its end, at least that; for an error answer, only what it says (else 0)

Admission spends `reserved` in its one conditional write; after the answer the difference
`charged - reserved` is settled on the same counter (tollway.quota.settle). A reservation is
never 0: a request with nothing reserved would need no room in the budget, so a full budget
would still admit it, and its write is what gives the settle an item to correct.

Answers are JSON or Server-Sent Events. In an event stream every event whose data is a
JSON object is looked at (its `data:` lines joined, as an EventSource joins them), and
each field keeps the last value seen: a chat API's final usage chunk
(`usage.total_tokens`), or usage split over events (Anthropic's
`message.usage.input_tokens` in `message_start`, `usage.output_tokens` in `message_delta`).
`SseUsage` is incremental: it is fed the stream as it passes, chunk by chunk.

A field that is present but not a non-negative number (a string, a bool, a negative
or a non-number) makes the reading `malformed`: the answer is charged like one without
usage and the event says so; a field that is absent counts 0 as long as one configured
field is present.

Everything here is plain frozen dataclasses and functions (no closures), so the compiled
route table serialises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

import orjson

Status = Literal["read", "missing", "malformed"]
# The most units one request can reserve or cost. The numbers come from callers (max_tokens)
# and backends: unbounded, `1e300` would make DynamoDB refuse the update (its numbers have
# 38 digits), and a refused update must not pass for an unavailable store (`quota_failure: open`).
MAX_UNITS = 10**15
# An SSE event larger than this (no newline within it) is not parsed: it cannot be a usage chunk.
MAX_EVENT_BYTES = 64 * 1024
# The least a metered request reserves: even `max_tokens: 0` needs room in the budget.
MIN_RESERVATION = 1


@dataclass(frozen=True, slots=True)
class Term:
    path: tuple[str, ...]  # "usage.output_tokens" -> ("usage", "output_tokens")
    weight: Decimal

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Estimate:
    path: tuple[str, ...]  # a field of the request's JSON body, e.g. ("max_tokens",)
    weight: Decimal
    plus: int


@dataclass(frozen=True, slots=True)
class CostSpec:
    terms: tuple[Term, ...]
    missing: int | None  # charged for a successful answer without usage; None: the reservation
    reserve: int | None  # fixed reservation; None: the estimate, else the route's cost
    estimate: Estimate | None

    def reservation(self, body: bytes, cost: int) -> int:
        """Units to reserve at admission for a request with this body (at least MIN_RESERVATION)."""
        fixed = self.reserve if self.reserve is not None else cost
        if self.estimate is None:
            return max(MIN_RESERVATION, fixed)
        value = _number(_at(_json(body), self.estimate.path))
        if value is None or value is _MALFORMED:
            return max(MIN_RESERVATION, fixed)
        estimate = _ceil(Decimal(str(value)) * self.estimate.weight + self.estimate.plus)
        return max(MIN_RESERVATION, min(MAX_UNITS, estimate))

    def charge(self, reading: Reading, reserved: int, *, failed: bool = False, cut: bool = False) -> int:
        """What a request whose answer read as `reading` pays (docs/metering.md, "What is charged").

        `failed`: the caller got an error answer (a backend's 4xx, or the gateway's 502/504 for a
        backend that failed): only the usage it carries is owed, never `missing`. `cut`: an event
        stream that ended before its end (the route's deadline, a broken connection): its usage
        may be incomplete, so it pays at least what an answer without usage pays."""
        if failed:
            return reading.units if reading.status == "read" else 0
        floor = self.missing if self.missing is not None else reserved
        if reading.status != "read":
            return floor
        return max(reading.units, floor) if cut else reading.units

    def read(self, body: bytes, content_type: str | None) -> Reading:
        """What an answer cost."""
        if content_type is not None and content_type.split(";")[0].strip().lower() == "text/event-stream":
            scanner = SseUsage(self)
            scanner.feed(body)
            return scanner.reading()
        return self.from_values(_values(_json(body), self.terms))

    def from_values(self, values: dict[str, Any]) -> Reading:
        if not values:
            return Reading(0, {}, "missing")
        numbers = {name: _number(value) for name, value in values.items()}
        if any(n is None or n is _MALFORMED for n in numbers.values()):
            return Reading(0, {}, "malformed")
        total = sum(
            (Decimal(str(numbers[t.name])) * t.weight for t in self.terms if t.name in numbers), Decimal(0)
        )
        return Reading(min(MAX_UNITS, _ceil(total)), numbers, "read")  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Reading:
    units: int  # the weighted sum of the fields read; 0 unless `status` is "read" (see `charge`)
    fields: dict[str, int | float]  # the raw usage fields read, by path
    status: Status


@dataclass(slots=True)
class SseUsage:
    """Reads usage fields from an event stream fed in chunks of any size, as a caller's
    EventSource reads the stream (WHATWG HTML, "Parsing an event stream"): lines end in CRLF,
    LF or CR; a byte order mark first is ignored; the `data` fields of one event are joined
    with LF and read when the blank line that ends the event arrives (or the stream ends).
    Consecutive `data` lines that do not make one JSON object together are read one by one."""

    spec: CostSpec
    values: dict[str, Any] = field(default_factory=dict)
    _rest: bytes = b""
    _data: list[bytes] = field(default_factory=list)
    _size: int = 0
    _begun: bool = False  # past the stream's first bytes (a byte order mark)
    _cr: bool = False  # the last chunk ended in CR: an LF first in the next one ends no line
    _skipping: bool = False  # inside a line longer than MAX_EVENT_BYTES, until its end

    def feed(self, chunk: bytes) -> None:
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the end of the CR's line, not a blank line
            self._cr = False  # a second LF is one (an empty chunk changes nothing)
        if chunk:
            self._cr = chunk[-1:] == b"\r"
        data = self._rest + chunk
        if not self._begun:
            if BOM.startswith(data):
                self._rest = data  # too short to tell yet
                return
            self._begun = True
            data = data.removeprefix(BOM)
        lines = _LINE_END.split(data)
        rest = lines.pop()
        if self._skipping:
            if not lines:
                return  # still inside a line longer than any event: not kept
            lines.pop(0)  # that line's end, not a line of its own
            self._skipping = False
        for line in lines:
            self._line(line)
        if len(rest) > MAX_EVENT_BYTES:
            # A line longer than any event may be: its rest, in the chunks to come, is not read as
            # lines of their own (an EventSource reads it whole). A `data` line makes its event
            # too large to be read; any other field (a comment, event, id) is ignored, as read
            # whole, and its event keeps its data.
            if rest.startswith(b"data:"):
                self._size = MAX_EVENT_BYTES + 1
            rest = b""
            self._skipping = True
        self._rest = rest

    def reading(self) -> Reading:
        if self._rest:
            self._line(self._rest)
            self._rest = b""
        self._dispatch()  # an event the stream's end cut before its blank line: what it said counts
        return self.spec.from_values(self.values)

    def _line(self, line: bytes) -> None:
        if not line:
            self._dispatch()
            return
        name, _, value = line.partition(b":")
        if name != b"data":
            return  # a comment (":..."), or another field (event, id, retry)
        value = value[1:] if value[:1] == b" " else value
        self._size += len(value) + 1
        if self._size <= MAX_EVENT_BYTES:
            self._data.append(value)

    def _dispatch(self) -> None:
        data, self._data, size, self._size = self._data, [], self._size, 0
        if not data or size > MAX_EVENT_BYTES:
            return
        document = _object(b"\n".join(data))
        if document is not None:
            self.values.update(_values(document, self.spec.terms))
            return
        for line in data:  # lines meant as events of their own, without blank lines between
            document = _object(line)
            if document is not None:
                self.values.update(_values(document, self.spec.terms))


BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _object(payload: bytes) -> dict[str, Any] | None:
    """The JSON object an event's data is, if it is one ("[DONE]" and other data are not)."""
    payload = payload.strip()
    if not payload.startswith(b"{"):
        return None
    document = _json(payload)
    return document if isinstance(document, dict) else None


_MALFORMED = object()
_ABSENT = object()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return _ABSENT
        document = document[key]
    return document


def _values(document: Any, terms: tuple[Term, ...]) -> dict[str, Any]:
    found = {}
    for term in terms:
        value = _at(document, term.path)
        if value is not _ABSENT:
            found[term.name] = value
    return found


def _number(value: Any) -> Any:
    """The value if it is a usable count, None if absent, _MALFORMED otherwise."""
    if value is _ABSENT:
        return None
    # orjson never yields NaN or infinity, so a number here is finite.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _MALFORMED
    return value if value >= 0 else _MALFORMED


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))
