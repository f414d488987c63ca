"""A method's messages as JSON: proto3's canonical JSON mapping, done by protobuf's json_format.

One `Codec` per method, built from the route table's descriptors (no protoc, no generated
code): a DescriptorPool of infra/protos and the dynamic message classes of its request and
reply (`message_factory`). Input is read as proto3's JSON parser reads it — lowerCamelCase
or proto field names, 64-bit integers as numbers or decimal strings, enums by name or
number — and an unknown field, a wrong type, a non-integer string or an overflow is a
`MessageMismatch`, raised before anything is sent. Answers are written canonically:
lowerCamelCase names, 64-bit integers as strings, enums as names, unset fields omitted.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, EncodeError

from tollway.table.grpc import GrpcMethod, pool_of

# How deep a caller's JSON may nest inside a message (json_format's own default).
MAX_DEPTH = 100
MAX_REASON = 300
# json_format raises ParseError for most misfits, and plain Python errors for some shapes.
PARSE_ERRORS = (json_format.ParseError, EncodeError, TypeError, ValueError, AttributeError, RecursionError)
WRITE_ERRORS = (
    DecodeError, json_format.SerializeToJsonError, TypeError, ValueError, KeyError, RecursionError
)


class MessageMismatch(ValueError):
    """A JSON value that does not fit the message; its text is safe to show the caller."""


class NotAMessage(ValueError):
    """Bytes a service sent that are not the method's reply message."""


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "..."


class Codec:
    __slots__ = ("request_name", "response_name", "_request", "_response")

    def __init__(self, method: GrpcMethod) -> None:
        pool = pool_of(method.descriptors)
        self.request_name = method.request
        self.response_name = method.response
        self._request = message_factory.GetMessageClass(pool.FindMessageTypeByName(method.request))
        self._response = message_factory.GetMessageClass(pool.FindMessageTypeByName(method.response))

    def encode(self, value: Any) -> bytes:
        """The request message for a JSON value, serialized; raises `MessageMismatch`."""
        message = self._request()
        try:
            json_format.ParseDict(value, message, max_recursion_depth=MAX_DEPTH)
            return message.SerializeToString()
        except PARSE_ERRORS as exc:
            raise MessageMismatch(_reason(exc)) from None

    def decode(self, data: bytes) -> Any:
        """The reply's canonical JSON value; raises `NotAMessage`."""
        try:
            message = self._response.FromString(data)
            return json_format.MessageToDict(message)
        except WRITE_ERRORS:
            raise NotAMessage(f"its answer is not a {self.response_name} message") from None


class Codecs:
    """The container's codecs, one per method (built at init for the table's gRPC backends)."""

    def __init__(self) -> None:
        self._by_method: dict[GrpcMethod, Codec] = {}

    def for_(self, method: GrpcMethod) -> Codec:
        codec = self._by_method.get(method)
        if codec is None:
            codec = self._by_method[method] = Codec(method)
        return codec
