"""Trace context through the gateway: W3C `traceparent` to every backend, and on Lambda the
X-Ray header of the invocation, so a backend joins the caller's trace.

The gateway is one hop of the trace: a backend receives the caller's trace id and flags
with a span id of the gateway's own (W3C Trace Context, level 1). A caller's
`traceparent` is kept only when it is valid (version not `ff`, lower-case hex, trace and
parent ids not all zeros); its `tracestate` only with it. Without one, the trace id is the
X-Ray root's (Lambda's `_X_AMZN_TRACE_ID`, the form X-Ray documents for W3C ids:
`1-5759e988-bd862e3fe1be46a994272793` is `5759e988bd862e3fe1be46a994272793`), else new.
On Lambda a backend also receives the invocation's `X-Amzn-Trace-Id` (Root, the function's
segment as Parent, Sampled), in place of the caller's. No X-Ray SDK: the header is read,
not recorded (docs/deploy.md, "Traces").
"""

from __future__ import annotations

import os

# String methods, not regular expressions, and no dataclass: this module is on the cold start's path.
_HEX = frozenset("0123456789abcdef")
_ZEROS_TRACE, _ZEROS_SPAN = "0" * 32, "0" * 16
MAX_TRACESTATE = 512  # W3C: a vendor may drop a longer one

# The caller's fields the gateway replaces with its own (always the W3C pair; the X-Ray
# header only on Lambda, where the invocation has one).
W3C_FIELDS = frozenset({"traceparent", "tracestate"})


class TraceContext:
    """A plain class: a dataclass execs generated code at import (0.3-0.7 ms here), and this
    module is on the cold start's path."""

    __slots__ = ("trace_id", "span_id", "flags", "tracestate", "xray")

    def __init__(
        self, trace_id: str, span_id: str, flags: str, tracestate: str | None = None, xray: str | None = None
    ) -> None:
        self.trace_id = trace_id  # 32 lower-case hex digits
        self.span_id = span_id  # the gateway's hop: the parent-id backends receive
        self.flags = flags  # 2 hex digits; "01": sampled
        self.tracestate = tracestate  # the caller's, passed on with its traceparent
        self.xray = xray  # the Lambda invocation's X-Amzn-Trace-Id

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> list[tuple[str, str]]:
        """What a backend receives (HTTP headers; gRPC metadata takes the same list)."""
        out = [("traceparent", self.traceparent)]
        if self.tracestate:
            out.append(("tracestate", self.tracestate))
        if self.xray:
            out.append(("x-amzn-trace-id", self.xray))
        return out


def _hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.issuperset(text)


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) of a valid traceparent, else None."""
    if not value:
        return None
    fields = value.strip().split("-")
    if len(fields) < 4:
        return None
    version, trace_id, parent_id, flags = fields[:4]
    if not (_hex(version, 2) and _hex(trace_id, 32) and _hex(parent_id, 16) and _hex(flags, 2)):
        return None
    if version == "ff" or trace_id == _ZEROS_TRACE or parent_id == _ZEROS_SPAN:
        return None
    if version == "00" and len(fields) != 4:  # version 00 has exactly four fields
        return None
    return trace_id, parent_id, flags


def xray_root(header: str | None) -> tuple[str, bool] | None:
    """The W3C trace id of an X-Ray header's root, and whether it is sampled."""
    root, sampled = None, False
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "Root":
            pieces = value.split("-")
            if len(pieces) == 3 and pieces[0] == "1" and _hex(pieces[1], 8) and _hex(pieces[2], 24):
                root = pieces[1] + pieces[2]
        elif name == "Sampled":
            sampled = value == "1"
    return (root, sampled) if root is not None else None


def trace_context(headers: dict[str, str], xray: str | None = None) -> TraceContext:
    """The trace this request belongs to: the caller's if it sent a valid traceparent, else
    X-Ray's (on Lambda), else a new one. `xray`: the invocation's trace header, if any."""
    span_id = os.urandom(8).hex()
    caller = parse_traceparent(headers.get("traceparent"))
    if caller is not None:
        trace_id, _, flags = caller
        tracestate = headers.get("tracestate")
        if tracestate is not None and (len(tracestate) > MAX_TRACESTATE or not tracestate.isprintable()):
            tracestate = None
        return TraceContext(trace_id, span_id, flags, tracestate or None, xray)
    root = xray_root(xray)
    if root is not None:
        return TraceContext(root[0], span_id, "01" if root[1] else "00", None, xray)
    return TraceContext(os.urandom(16).hex(), span_id, "00", None, xray)
