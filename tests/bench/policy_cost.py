"""CPU per request of the edge policies: request validation and IP lists.

uv run python -m tests.bench.policy_cost
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from tollway.policy.ip import IpPolicy
from tollway.policy.validation import RequestValidator

ITEM = {
    "type": "object",
    "required": ["sku", "qty"],
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
}
BODY = {
    "type": "object",
    "required": ["items"],
    "additionalProperties": False,
    "properties": {"items": {"type": "array", "minItems": 1, "items": ITEM}},
}
QUERY = {
    "type": "object",
    "properties": {"dry_run": {"type": "boolean"}, "limit": {"type": "integer", "maximum": 10}},
}


def cpu_us(fn: Callable[[], object], n: int = 50_000, rounds: int = 5) -> float:
    """Median CPU microseconds per call over `rounds` loops of `n` calls."""
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            fn()
        samples.append((time.process_time() - started) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    both = RequestValidator.build(BODY, QUERY)
    body_only = RequestValidator.build(BODY, None)
    ip = IpPolicy.build(["10.1.0.0/16"], ["10.1.9.0/24"])
    body = b'{"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}'
    print(f"validation (body + query): {cpu_us(lambda: both.check(body, b'dry_run=true&limit=3')):.2f} us")
    print(f"validation (body only):    {cpu_us(lambda: body_only.check(body, b'')):.2f} us")
    print(f"ip allow/deny check:       {cpu_us(lambda: ip.check('10.1.2.3')):.2f} us")


if __name__ == "__main__":
    main()
