"""JSON Schemas of protobuf messages in proto3's JSON mapping, for `tollway openapi` (SPEC §7).

Two forms of each message, as the gateway reads and writes them:
- `input` (the request body a caller sends): field names in lowerCamelCase (the proto
  names are read too), 64-bit integers as numbers or decimal strings, enums by name;
- answer (the canonical JSON the gateway writes): 64-bit integers as strings, enums as
  names, unset fields omitted.
Messages become components named by their full name (`acme.catalog.v1.Item`, and
`acme.catalog.v1.Item.input`), so recursive messages are plain `$ref`s.
"""

from __future__ import annotations

from typing import Any

from tollway.config.protos import pool_of, repeated

REF = "#/components/schemas/"
INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
INT64_PATTERN = r"^-?[0-9]+$"
UINT64_PATTERN = r"^[0-9]+$"
FLOAT_WORDS = ["NaN", "Infinity", "-Infinity"]
# FieldDescriptor types (descriptor.proto's numbering).
DOUBLE, FLOAT, INT64, UINT64, INT32_T, FIXED64, FIXED32, BOOL, STRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
GROUP, MESSAGE, BYTES, UINT32_T, ENUM, SFIXED32, SFIXED64, SINT32, SINT64 = 10, 11, 12, 13, 14, 15, 16, 17, 18
SIGNED_64 = {INT64, SFIXED64, SINT64}
UNSIGNED_64 = {UINT64, FIXED64}


def _int64(signed: bool, reading: bool) -> dict[str, Any]:
    pattern = INT64_PATTERN if signed else UINT64_PATTERN
    if not reading:
        return {"type": "string", "pattern": pattern, "description": "a 64-bit integer, as a decimal string"}
    low, high = (-(2**63), 2**63 - 1) if signed else (0, 2**64 - 1)
    return {
        "type": ["integer", "string"],
        "pattern": pattern,
        "minimum": low,
        "maximum": high,
        "description": "a 64-bit integer: a number or a decimal string",
    }


def _well_known(name: str, reading: bool) -> dict[str, Any] | None:
    wrapped = {
        "DoubleValue": {"type": "number"},
        "FloatValue": {"type": "number"},
        "Int64Value": _int64(True, reading),
        "UInt64Value": _int64(False, reading),
        "Int32Value": INT32,
        "UInt32Value": UINT32,
        "BoolValue": {"type": "boolean"},
        "StringValue": {"type": "string"},
        "BytesValue": {"type": "string", "contentEncoding": "base64"},
    }
    known = {
        "Timestamp": {"type": "string", "format": "date-time"},
        "Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
        "FieldMask": {"type": "string"},
        "Struct": {"type": "object"},
        "Value": {},
        "ListValue": {"type": "array"},
        "NullValue": {"type": "null"},
        "Empty": {"type": "object", "additionalProperties": False},
        "Any": {"type": "object", "required": ["@type"], "properties": {"@type": {"type": "string"}}},
        **wrapped,
    }
    package, _, short = name.rpartition(".")
    return dict(known[short]) if package == "google.protobuf" and short in known else None


class MessageSchemas:
    """Component schemas of one FileDescriptorSet's messages, added to `components` as needed."""

    def __init__(self, descriptors: bytes, components: dict[str, Any]) -> None:
        self.pool = pool_of(descriptors)
        self.components = components

    def ref(self, name: str, *, reading: bool) -> dict[str, Any]:
        """A schema for the message `name`: a `$ref` to its component (made once)."""
        special = _well_known(name, reading)
        if special is not None:
            return special
        key = f"{name}.input" if reading else name
        if key not in self.components:
            self.components[key] = {}  # placed first: a recursive message refers to itself
            self.components[key] = self._message(self.pool.FindMessageTypeByName(name), reading)
        return {"$ref": REF + key}

    def _message(self, message: Any, reading: bool) -> dict[str, Any]:
        properties = {f.json_name: self._field(f, reading) for f in message.fields}
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        aliases = reading and any(f.json_name != f.name for f in message.fields)
        schema["description"] = message.full_name + (" (proto field names are read too)" if aliases else "")
        return schema

    def _field(self, field: Any, reading: bool) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            value = self._field(message.fields_by_name["value"], reading)
            return {"type": "object", "additionalProperties": value}
        one = self._single(field, reading)
        return {"type": "array", "items": one} if repeated(field) else one

    def _single(self, field: Any, reading: bool) -> dict[str, Any]:
        kind = field.type
        if kind in (MESSAGE, GROUP):
            return self.ref(field.message_type.full_name, reading=reading)
        if kind == ENUM:
            names = [v.name for v in field.enum_type.values]
            return {"type": "string", "enum": names}
        if kind in SIGNED_64 or kind in UNSIGNED_64:
            return _int64(kind in SIGNED_64, reading)
        if kind in (INT32_T, SFIXED32, SINT32):
            return dict(INT32)
        if kind in (UINT32_T, FIXED32):
            return dict(UINT32)
        if kind in (DOUBLE, FLOAT):
            return {"oneOf": [{"type": "number"}, {"type": "string", "enum": FLOAT_WORDS}]}
        if kind == BOOL:
            return {"type": "boolean"}
        if kind == BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        return {"type": "string"}
