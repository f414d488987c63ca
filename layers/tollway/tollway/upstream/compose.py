"""Pure composition of backend answers: `pick`, `rename`, `group` and `merge`.

- `pick` keeps only the listed top-level fields, then `rename` renames top-level fields;
  both need the answer to be a JSON object.
- `group` puts each backend's (shaped) answer under its name; a failed optional backend's
  key is `null`.
- `merge` deep-merges the (shaped) answers in config order. Conflict policy: when both
  sides hold an object, the objects merge recursively; otherwise the later backend wins
  (a scalar, list or null replaces what was there, and an object replaces a non-object).
  Lists are values, not merged element-wise. A failed optional backend adds nothing.

No function here mutates its inputs: answers may be shared with a cache.

Answers are read and written exactly: an integer beyond 64 bits (which orjson would
read as a float, losing digits, and cannot write) is kept as a `BigInt` and written
with its own digits.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson


class NotAnObject(ValueError):
    pass


class BigInt(int):
    """An integer outside orjson's range (-2**63 .. 2**64 - 1), kept exact."""


# 19 digits or more: the shortest integer orjson cannot hold is -9223372036854775809.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _exact_int(text: str) -> int:
    n = int(text)
    return n if -(2**63) <= n < 2**64 else BigInt(n)


def read_json(body: bytes) -> Any:
    """A backend's JSON answer (raises orjson.JSONDecodeError), its integers exact."""
    value = orjson.loads(body)
    if _LONG_NUMBER.search(body) is not None:
        # Not when Python cannot: more digits than it converts, or nested very deep.
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(body, parse_int=_exact_int)
    return value


def _big_int(value: Any) -> orjson.Fragment:
    if isinstance(value, BigInt):
        return orjson.Fragment(int.__repr__(value))
    raise TypeError(f"cannot write a {type(value).__name__}")


def write_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_big_int, option=orjson.OPT_PASSTHROUGH_SUBCLASS)


def shape(value: Any, pick: tuple[str, ...] | None, rename: Mapping[str, str]) -> Any:
    if pick is None and not rename:
        return value
    if not isinstance(value, dict):
        raise NotAnObject("pick and rename need a JSON object")
    if pick is not None:
        value = {k: value[k] for k in pick if k in value}
    if rename:
        value = {rename.get(k, k): v for k, v in value.items()}
    return value


def deep_merge(left: Any, right: Any) -> Any:
    if not (isinstance(left, dict) and isinstance(right, dict)):
        return right
    out = dict(left)
    for key, value in right.items():
        out[key] = deep_merge(out[key], value) if key in out else value
    return out


def merge(values: Iterable[Any]) -> dict[str, Any]:
    """Merge objects in order; `None` (a failed optional backend) adds nothing."""
    out: dict[str, Any] = {}
    for value in values:
        if value is None:
            continue
        if not isinstance(value, dict):
            raise NotAnObject("merge needs a JSON object")
        out = deep_merge(out, value)
    return out
