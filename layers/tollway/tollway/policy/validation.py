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
from urllib.parse import quote, unquote, unquote_to_bytes

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


_LENIENT = str.maketrans({"\u0130": "i", "\u0131": "i", "_": None, "-": None})


def _fold(name: str) -> str:
    """What a lenient reader matches a name by: case (Go's encoding/json, Jackson's
    case-insensitive mode, Unicode folding included; Java's `equalsIgnoreCase`, and Jackson on a
    Turkish-locale JVM, take dotless `\u0131` and dotted `\u0130` for `i`), underscores (protobuf's
    JSON reader takes `display_name` and `displayName` for one field, as pydantic's camelCase
    aliases with `populate_by_name` do) and dashes (Go's json v2 `case:ignore` ignores both;
    ActiveSupport's `underscore` makes `display-name` `display_name`). A name the schema declares
    goes spelled exactly as declared."""
    return name.translate(_LENIENT).casefold()


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Exact repeats, at every level: the schema sees one of them, a backend may read the other.
    # Names in another case are `_misspelled`'s: a name the schema declares must be spelled so
    # (Go's encoding/json reads `AMOUNT` into `amount`); two names it does not declare may differ
    # in case only (`{"Env": 1, "env": 2}` in a free-form map): it checks neither's value anyway.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _Repeated
    return members


def _names(schema: Mapping[str, Any]) -> list[str]:
    """The member names a schema speaks of: its `properties`, and those it requires or forbids
    (`required`, under `not` too: `{"not": {"required": ["admin"]}}`), or ties to others
    (`dependentRequired`, `dependencies`)."""
    names: list[str] = []
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        names.extend(properties)
    required = schema.get("required")
    if isinstance(required, list):
        names.extend(name for name in required if isinstance(name, str))
    for word in ("dependentRequired", "dependencies"):
        tied = schema.get(word)
        if isinstance(tied, Mapping):
            for name, value in tied.items():
                names.append(name)
                if isinstance(value, list):
                    names.extend(other for other in value if isinstance(other, str))
    return [name for name in names if isinstance(name, str)]


# Where a value is in a body: None at the top, else (where its parent is, its name or index).
_Path = tuple[Any, str | int] | None


def _spelled(path: _Path) -> str:
    """A `_Path` as a JSON pointer: `/lines/0/Amount` (RFC 6901)."""
    parts: list[str] = []
    while path is not None:
        path, part = path
        parts.append(str(part).replace("~", "~0").replace("/", "~1"))
    return "".join("/" + part for part in reversed(parts))


_COMBINATORS = ("allOf", "anyOf", "oneOf")
_ONE_SCHEMA = ("not", "if", "then", "else")


# Lists of schemas whose declared names a route's spelling check keeps worked out.
MAX_KEPT_APPLYING = 256


class _Spelling:
    """Finds a member that names a property the schema declares for its object in another
    spelling (`_fold`): the schema does not check it, a lenient backend reads it as the declared
    one. Follows what applies to a value wherever the schema says it: `properties`,
    `patternProperties`, `additionalProperties`, `items` (one schema or a list), `prefixItems`,
    `additionalItems`, `contains`, the combinators (`allOf`, `anyOf`, `oneOf`, `not`,
    `if`/`then`/`else`, `dependentSchemas`, `dependencies`) and local `$ref`s. A `$ref` it cannot
    follow: every name the schema declares anywhere is then a declared one below it.

    One per route's body schema, made with its validator: what applies with a list of schemas
    (by their ids: the schemas live as long as the route) is worked out once for all its
    requests, up to MAX_KEPT_APPLYING lists (past that, again each time)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self._anywhere: dict[str, set[str]] | None = None
        self._seen: dict[tuple[int, ...], tuple[list[Mapping[str, Any]], dict[str, set[str]], bool]] = {}

    def _applying(self, schemas: list[Any]) -> tuple[list[Mapping[str, Any]], dict[str, set[str]], bool]:
        key = tuple(id(schema) for schema in schemas if isinstance(schema, Mapping))
        known = self._seen.get(key)
        if known is None:
            applied, unknown = self._applied(schemas)
            declared: dict[str, set[str]] = {}
            for schema in applied:
                for name in _names(schema):
                    declared.setdefault(_fold(name), set()).add(name)
            known = (applied, declared, unknown)
            if len(self._seen) < MAX_KEPT_APPLYING:
                self._seen[key] = known
        return known

    def misspelled(self, data: Any) -> str | None:
        """The JSON pointer of the first member of `data` spelled otherwise than declared."""
        return self.find(data, [self.root], "")

    def find(self, data: Any, schemas: list[Any], at: str) -> str | None:
        # A stack, not recursion: a body may nest as deep as the JSON reader allows. Where a
        # value is goes as a chain of (parent, name), spelled out only for the answer: a string
        # per member cost its whole path, and a member of a 500 KB name holding an object of
        # 40,000 members made 20 GB of them.
        stack: list[tuple[Any, list[Any], _Path]] = [(data, schemas, None)]
        while stack:
            value, over, where = stack.pop()
            if not isinstance(value, dict | list):
                continue
            applied, declared, unknown = self._applying(over)
            if unknown:
                found = self._loose(value, where)
                if found is not None:
                    return at + found
                continue
            if not applied:
                continue  # no schema says anything below: nothing is declared there
            if isinstance(value, dict):
                for key, member in value.items():
                    names = declared.get(_fold(key))
                    if names is not None and key not in names:
                        return at + _spelled((where, key))
                    if isinstance(member, dict | list):
                        stack.append((member, self._for_member(applied, key), (where, key)))
            else:
                for index, member in enumerate(value):
                    if isinstance(member, dict | list):
                        stack.append((member, self._for_item(applied, index), (where, index)))
        return None

    def _applied(self, schemas: list[Any]) -> tuple[list[Mapping[str, Any]], bool]:
        """Every schema that applies to a value with `schemas`: their combinators and refs too."""
        out: list[Mapping[str, Any]] = []
        seen: set[int] = set()
        todo = list(schemas)
        while todo:
            schema = todo.pop()
            if not isinstance(schema, Mapping) or id(schema) in seen:
                continue
            seen.add(id(schema))
            out.append(schema)
            ref = schema.get("$ref")
            if isinstance(ref, str):
                target = self._resolve(ref)
                if target is None:
                    return out, True
                todo.append(target)
            for word in _COMBINATORS:
                if isinstance(schema.get(word), list):
                    todo.extend(schema[word])
            todo.extend(schema.get(word) for word in _ONE_SCHEMA)
            for word in ("dependentSchemas", "dependencies"):
                if isinstance(schema.get(word), Mapping):
                    todo.extend(schema[word].values())
        return out, False

    def _for_member(self, applied: list[Mapping[str, Any]], key: str) -> list[Any]:
        out = []
        for schema in applied:
            properties = schema.get("properties")
            matched = isinstance(properties, Mapping) and key in properties
            if matched:
                out.append(properties[key])  # type: ignore[index]
            patterns = schema.get("patternProperties")
            if isinstance(patterns, Mapping):
                for pattern, sub in patterns.items():
                    try:
                        if re.search(pattern, key):
                            out.append(sub)
                            matched = True
                    except re.error:
                        out.append(sub)
            if not matched:
                out.append(schema.get("additionalProperties"))
        return out

    def _for_item(self, applied: list[Mapping[str, Any]], index: int) -> list[Any]:
        out = []
        for schema in applied:
            items, prefix = schema.get("items"), schema.get("prefixItems")
            out.append(schema.get("contains"))
            if isinstance(prefix, list):
                out.append(prefix[index] if index < len(prefix) else items)
            elif isinstance(items, list):
                out.append(items[index] if index < len(items) else schema.get("additionalItems"))
            else:
                out.append(items)
        return out

    def _resolve(self, ref: str) -> Any:
        """A local `$ref` ("#", "#/$defs/x"): what it points at; None if it is not one."""
        if not ref.startswith("#") or (ref != "#" and not ref.startswith("#/")):
            return None
        target = self.root
        for part in ref[2:].split("/") if ref != "#" else ():
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return None
        return target

    def _loose(self, data: Any, at: _Path) -> str | None:
        """Below a schema that cannot be followed: a name declared anywhere, spelled otherwise."""
        if self._anywhere is None:
            self._anywhere = {}
            todo = [self.root]
            while todo:
                node = todo.pop()
                if isinstance(node, Mapping):
                    for name in _names(node):
                        self._anywhere.setdefault(_fold(name), set()).add(name)
                    todo.extend(node.values())
                elif isinstance(node, list):
                    todo.extend(node)
        stack: list[tuple[Any, _Path]] = [(data, at)]
        while stack:
            value, where = stack.pop()
            if isinstance(value, dict):
                for key, member in value.items():
                    names = self._anywhere.get(_fold(key))
                    if names is not None and key not in names:
                        return _spelled((where, key))
                    if isinstance(member, dict | list):
                        stack.append((member, (where, key)))
            elif isinstance(value, list):
                stack.extend(
                    (member, (where, i)) for i, member in enumerate(value) if isinstance(member, dict | list)
                )
        return None


# How deep a validated body may nest. The repeat check (json's reader) and a schema's validator
# recurse once or more per level: a body of 1,000 levels (2 KB, which orjson reads: its limit
# is 1,024) made a RecursionError, a 500, on every validated route.
MAX_BODY_DEPTH = 200


def _deeper_than(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        members = value.values() if isinstance(value, dict) else value
        stack.extend((member, depth + 1) for member in members if isinstance(member, dict | list))
    return False


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
    spelling: _Spelling | None = field(default=None, compare=False)  # of the body schema

    @classmethod
    def build(cls, body: dict[str, Any] | None, query: dict[str, Any] | None) -> RequestValidator:
        return cls(
            compile_schema(body) if body is not None else None,
            compile_schema(query) if query is not None else None,
            _query_types(query) if query is not None else {},
            body,
            query,
            {name.casefold(): name for name in (query or {}).get("properties", {})},
            _Spelling(body) if body is not None else None,
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
            if isinstance(data, dict | list) and _deeper_than(data, MAX_BODY_DEPTH):
                error = BadRequest(f"body: nests deeper than {MAX_BODY_DEPTH} arrays and objects")
                error.extensions["pointer"] = "/body"
                raise error
            if isinstance(data, dict | list) and _repeats_a_member(body):
                error = BadRequest("body: an object gives the same member twice")
                error.extensions["pointer"] = "/body"
                raise error
            assert self.spelling is not None  # made with `body`
            misspelled = self.spelling.misspelled(data)
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
