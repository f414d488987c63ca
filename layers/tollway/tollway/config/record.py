"""A validated config model's fields, read-only, without pydantic.

The built route table (config/artifact.py) holds a `Record` wherever the compiled config
holds a pydantic model (plans, issuers, the gateway settings, retry, breaker, cache), so
a Lambda loading it imports no pydantic: validation happened at build time, and the
request path only reads attributes. Fields are plain instance attributes (as fast to read
as a model's); a record compares equal to the model it was made from.
"""

from __future__ import annotations

from typing import Any


class Record:
    def __init__(self, kind: str, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)
        self.__dict__["_kind"] = kind

    def _fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_kind"}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._kind} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self._kind} is read-only")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self._kind == other._kind and self._fields() == other._fields()
        fields = getattr(type(other), "model_fields", None)  # a pydantic model
        if fields is None:
            return NotImplemented
        return self._kind == type(other).__name__ and self._fields() == {f: getattr(other, f) for f in fields}

    def __hash__(self) -> int:
        return hash((self._kind, tuple(self._fields().items())))

    def __repr__(self) -> str:
        return f"{self._kind}({', '.join(f'{k}={v!r}' for k, v in self._fields().items())})"

    def __reduce__(self) -> tuple[Any, ...]:
        return Record, (self._kind, self._fields())


def from_model(model: Any) -> Record:
    """The fields of a pydantic model (nested models stay models: the pickler converts them)."""
    return Record(type(model).__name__, {name: getattr(model, name) for name in type(model).model_fields})
