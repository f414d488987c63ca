"""`{param}` and `{backend.field}` placeholders, parsed once at compile time.

A template is a tuple of literal strings and `Ref`s. Rendering takes the route's path
parameters and the JSON of backends that already answered; values are URL-encoded by
the caller of `render`, never here, so the same template serves paths, queries and
headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\}")


class TemplateValueError(ValueError):
    """A referenced value is missing or is not a scalar."""


class ParamValueError(TemplateValueError):
    """A path parameter's value cannot be used where it goes: the caller's fault (400)."""


@dataclass(frozen=True, slots=True)
class Ref:
    backend: str | None  # None: a route path parameter
    path: tuple[str, ...]  # the parameter name, or the field path inside the backend's JSON

    @property
    def text(self) -> str:
        return ".".join(((self.backend,) if self.backend else ()) + self.path)

    def resolve(self, params: dict[str, str], results: dict[str, Any]) -> str | int | float | bool:
        if self.backend is None:
            return params[self.path[0]]
        value: Any = results.get(self.backend)
        for key in self.path:
            if not isinstance(value, dict) or key not in value:
                raise TemplateValueError(f"{{{self.text}}} is missing from {self.backend}'s response")
            value = value[key]
        if isinstance(value, bool | int | float | str):
            return value
        raise TemplateValueError(f"{{{self.text}}} is not a scalar")


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[str | Ref, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | Ref] = []
        pos = 0
        for m in PLACEHOLDER.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            names = m.group(1).split(".")
            parts.append(Ref(None, (names[0],)) if len(names) == 1 else Ref(names[0], tuple(names[1:])))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return cls(tuple(parts))

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(p for p in self.parts if isinstance(p, Ref))

    @property
    def static(self) -> str | None:
        """The text itself when it has no placeholders."""
        if not self.parts:
            return ""
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    def render(
        self,
        params: dict[str, str],
        results: dict[str, Any],
        encode=str,
        param_encoders: dict[str, Any] | None = None,
    ) -> str:
        """`param_encoders` replaces `encode` for the named route parameters."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part.resolve(params, results)
                if isinstance(value, bool):
                    value = "true" if value else "false"
                encoder = encode
                if param_encoders and part.backend is None:
                    encoder = param_encoders.get(part.path[0], encode)
                try:
                    out.append(encoder(str(value)))
                except TemplateValueError as exc:
                    if part.backend is None:
                        raise ParamValueError(str(exc)) from exc
                    raise
        return "".join(out)


def parse_json_template(value: Any) -> Any:
    """Turn every string inside a JSON value into a Template (once, at compile time)."""
    if isinstance(value, str):
        return Template.parse(value)
    if isinstance(value, dict):
        return {k: parse_json_template(v) for k, v in value.items()}
    if isinstance(value, list):
        return [parse_json_template(v) for v in value]
    return value


def json_template_refs(value: Any) -> list[Ref]:
    if isinstance(value, Template):
        return list(value.refs)
    if isinstance(value, dict):
        return [r for v in value.values() for r in json_template_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in json_template_refs(v)]
    return []


def render_json_template(value: Any, params: dict[str, str], results: dict[str, Any]) -> Any:
    """A string that is exactly one placeholder keeps the value's JSON type."""
    if isinstance(value, Template):
        if len(value.parts) == 1 and isinstance(value.parts[0], Ref):
            return value.parts[0].resolve(params, results)
        return value.render(params, results)
    if isinstance(value, dict):
        return {k: render_json_template(v, params, results) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json_template(v, params, results) for v in value]
    return value
