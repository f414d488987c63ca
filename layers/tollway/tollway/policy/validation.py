"""Request validation with JSON Schema, compiled once at config load (fastjsonschema).

An invalid request is a 400 naming the failing field as a JSON pointer, raised after
authentication and before any quota is spent or backend called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

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


def _coerce(value: str, kind: str | None) -> Any:
    # Query values arrive as text: read them as the type the schema asks for, when they can be.
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    except ValueError:
        pass
    return value


@dataclass(frozen=True, slots=True)
class RequestValidator:
    # Validators compiled from equal schemas are equal: the schemas say what they check.
    body: Callable[[Any], Any] | None = field(compare=False)
    query: Callable[[Any], Any] | None = field(compare=False)
    query_types: dict[str, str]
    body_schema: dict[str, Any] | None = None  # as declared, for the OpenAPI document
    query_schema: dict[str, Any] | None = None

    @classmethod
    def build(cls, body: dict[str, Any] | None, query: dict[str, Any] | None) -> RequestValidator:
        return cls(
            compile_schema(body) if body is not None else None,
            compile_schema(query) if query is not None else None,
            _query_types(query) if query is not None else {},
            body,
            query,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled validators are generated functions, which pickle cannot carry: the built
        # route table (config/artifact.py) holds the schemas and compiles them again at load.
        return RequestValidator.build, (self.body_schema, self.query_schema)

    def check(self, body: bytes, query_string: bytes) -> None:
        if self.query is not None:
            params: dict[str, Any] = {}
            for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
                params.setdefault(key, _coerce(value, self.query_types.get(key)))
            self._run(self.query, params, "query")
        if self.body is not None:
            try:
                data = orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                raise BadRequest("the request body is not valid JSON") from None
            self._run(self.body, data, "body")

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
