"""Request validation with JSON Schema, compiled once at config load (fastjsonschema).

An invalid request is a 400 naming the failing field as a JSON pointer, raised after
authentication and before any quota is spent or backend called.

Validated means forwarded: a validated query is parsed once (UTF-8, `+` as space), a
validated name given twice (in any spelling or case: `limit=5&LIMIT=9`, `li%6Dit=9`) is
refused, and the backend receives the canonical query rebuilt from exactly the values
checked, so no backend can read another value (first, last, joined, `;`-split) than the
one the schema saw. A query number is read with JSON's grammar: `nan`, `inf`, `1e999`,
`05`, `+5`, `1_0` or `٥` are not numbers (each reads as another number, or none, to
some backend), so they fail the schema's type. A validated body whose object gives one
member twice is refused: backends read the first, the last, or fail.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import fastjsonschema
import orjson

from tollway.errors import BadRequest


class SchemaProblem(ValueError):
    """A schema in the config is not a valid JSON Schema."""


def compile_schema(schema: dict[str, Any]) -> Callable[[Any], Any]:
    try:
        return fastjsonschema.compile(schema)
    except (fastjsonschema.JsonSchemaDefinitionException, TypeError, ValueError) as exc:
        raise SchemaProblem(str(exc)) from exc


def pointer(path: list[Any], prefix: str) -> str:
    """`["data", "items", 0]` -> `/items/0` (RFC 6901), under `prefix`."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path[1:]]
    return prefix + ("/" + "/".join(parts) if parts else "")


def _query_types(schema: dict[str, Any]) -> dict[str, str]:
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {
        k: v.get("type") for k, v in props.items() if isinstance(v, dict) and isinstance(v.get("type"), str)
    }


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _coerce(value: str, kind: str | None) -> Any:
    # Query values arrive as text: read them as the type the schema asks for, when they are
    # spelled as JSON spells it (else they stay text, and fail the type).
    try:
        if kind == "integer" and _INTEGER.fullmatch(value):
            return int(value)
        if kind == "number" and (m := _NUMBER.fullmatch(value)):
            number = float(value) if m.group(1) or m.group(2) else int(value)
            return number if math.isfinite(number) else value
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    except ValueError:  # an integer of more digits than Python converts
        pass
    return value


class _Repeated(ValueError):
    pass


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # In any case: Go's encoding/json (and Jackson, case-insensitive) reads `AMOUNT` into the
    # field `amount` (Unicode's simple folding included: `line\u017f` is `lines`), the last
    # one winning.
    if len({name.casefold() for name, _ in pairs}) != len(pairs):
        raise _Repeated
    return dict(pairs)


def _misspelled(data: Any, schema: Any, at: str = "") -> str | None:
    """The JSON pointer of a member that names a property the schema declares, in another
    spelling (case, Unicode folding): the schema does not check it, a backend that matches
    names in any case reads it as the declared one. Follows `properties` and `items`."""
    if not isinstance(schema, Mapping):
        return None
    if isinstance(data, dict):
        declared = schema.get("properties")
        if not isinstance(declared, Mapping):
            return None
        folded = {name.casefold(): name for name in declared}
        for key, value in data.items():
            name = folded.get(key.casefold())
            if name is None:
                continue
            where = at + "/" + key.replace("~", "~0").replace("/", "~1")
            if name != key:
                return where
            found = _misspelled(value, declared[name], where)
            if found is not None:
                return found
    elif isinstance(data, list) and isinstance(schema.get("items"), Mapping):
        for index, value in enumerate(data):
            found = _misspelled(value, schema["items"], f"{at}/{index}")
            if found is not None:
                return found
    return None


def _repeats_a_member(body: bytes) -> bool:
    """Whether an object of this (valid) JSON gives one member twice."""
    try:
        json.loads(body, object_pairs_hook=_members)
    except _Repeated:
        return True
    return False


def _decode(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


def parse_query(query: bytes) -> list[tuple[str, str | None]]:
    """(name, value) pairs, percent-decoded; value None for a bare `name` (no `=`)."""
    pairs: list[tuple[str, str | None]] = []
    for piece in query.split(b"&"):
        if not piece:
            continue
        name, eq, value = piece.partition(b"=")
        try:
            pairs.append((_decode(name), _decode(value) if eq else None))
        except UnicodeDecodeError:
            raise BadRequest("the query string is not valid UTF-8 once percent-decoded") from None
    return pairs


def canonical_query(pairs: list[tuple[str, str | None]]) -> bytes:
    return "&".join(
        quote(name, safe="") if value is None else f"{quote(name, safe='')}={quote(value, safe='')}"
        for name, value in pairs
    ).encode()


@dataclass(frozen=True, slots=True)
class RequestValidator:
    # Validators compiled from equal schemas are equal: the schemas say what they check.
    body: Callable[[Any], Any] | None = field(compare=False)
    query: Callable[[Any], Any] | None = field(compare=False)
    query_types: dict[str, str]
    body_schema: dict[str, Any] | None = None  # as declared, for the OpenAPI document
    query_schema: dict[str, Any] | None = None
    # Case-folded -> as declared: each may be given once, in its declared spelling only.
    query_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, body: dict[str, Any] | None, query: dict[str, Any] | None) -> RequestValidator:
        return cls(
            compile_schema(body) if body is not None else None,
            compile_schema(query) if query is not None else None,
            _query_types(query) if query is not None else {},
            body,
            query,
            {name.casefold(): name for name in (query or {}).get("properties", {})},
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled validators are generated functions, which pickle cannot carry: the built
        # route table (config/artifact.py) holds the schemas and compiles them again at load.
        return RequestValidator.build, (self.body_schema, self.query_schema)

    def check(self, body: bytes, query_string: bytes) -> bytes:
        """Raise BadRequest for an invalid request; return the query to forward."""
        if self.query is not None:
            pairs = parse_query(query_string)
            params: dict[str, Any] = {}
            seen: set[str] = set()
            for key, value in pairs:
                declared = self.query_names.get(key.casefold())
                if declared is not None:
                    if key != declared or declared in seen:
                        raise self._ambiguous(key, declared)
                    seen.add(declared)
                params.setdefault(key, _coerce(value or "", self.query_types.get(key)))
            self._run(self.query, params, "query")
            query_string = canonical_query(pairs)
        if self.body is not None:
            try:
                data = orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                raise BadRequest("the request body is not valid JSON") from None
            if isinstance(data, dict | list) and _repeats_a_member(body):
                error = BadRequest("body: an object gives the same member twice (in any case)")
                error.extensions["pointer"] = "/body"
                raise error
            misspelled = _misspelled(data, self.body_schema)
            if misspelled is not None:
                error = BadRequest(f"body{misspelled[:128]}: give a declared member spelled exactly so")
                error.extensions["pointer"] = "/body" + misspelled
                raise error
            self._run(self.body, data, "body")
        return query_string

    @staticmethod
    def _ambiguous(name: str, declared: str) -> BadRequest:
        # A backend may read the first, the last, all joined, or names case-insensitively.
        error = BadRequest(f"query {name[:64]!r}: give {declared!r} once, spelled exactly so")
        error.extensions["pointer"] = "/query/" + declared.replace("~", "~0").replace("/", "~1")
        return error

    @staticmethod
    def _run(validate: Callable[[Any], Any], data: Any, where: str) -> None:
        try:
            validate(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            at = pointer(list(exc.path), "")
            message = exc.message.removeprefix("data").strip() if exc.message else "is invalid"
            label = f"{where} {at}" if at else where
            error = BadRequest(f"{label}: {message}")
            error.extensions["pointer"] = f"/{where}{at}"
            raise error from None
