"""What AWS would bill for the calls that reach the emulator: a loopback front that meters them.

Every DynamoDB and SQS call of the measured code goes through this ASGI app to the moto
server, one at a time (moto is not thread-safe), and is counted by AWS's billing rules:

- DynamoDB on-demand: a write costs 1 write unit per KB (rounded up) of the larger of the
  item before and after it, at least 1; in a TransactWriteItems, 2 per KB per item. A read
  costs 1 read unit per 4 KB when strongly consistent, half when eventually consistent; a
  Query or Scan sums the sizes of the items it returns before rounding; a GetItem of no
  item still costs its minimum. Item sizes follow DynamoDB's rules (names + values; numbers
  ~1 byte per 2 significant digits + 1). The item before and after each write is read
  from the emulator around the call (not metered).
- SQS: each call is one request per 64 KB chunk of its payload (the request body).

`phase` (set by the measure) labels what follows, so the router's and the usage function's
calls are told apart. `units[(phase, name)]` holds the sums: `dynamodb.write`,
`dynamodb.read`, `sqs.requests`, and one `calls.<Service>.<Operation>` per operation.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections import Counter
from typing import Any

import httpx
import orjson

from tests.backends import read_body

JSON = [(b"content-type", b"application/x-amz-json-1.0")]
KB = 1024
SQS_CHUNK = 64 * KB


def value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in v)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in v.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(before: int, after: int) -> int:
    return max(1, math.ceil(max(before, after) / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return units if consistent else units / 2


class Meter:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/") + "/"
        self.phase = "idle"
        # Off: calls pass with no metering (no reads around writes), for timing what is measured.
        self.counting = True
        self.units: Counter[tuple[str, str]] = Counter()
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None
        self._keys: dict[str, list[str]] = {}

    def total(self, phase: str, name: str) -> float:
        return self.units[(phase, name)]

    def phases(self, prefix: str) -> dict[str, float]:
        out: Counter[str] = Counter()
        for (phase, name), value in self.units.items():
            if phase == prefix:
                out[name] += value
        return dict(out)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._client = httpx.AsyncClient(timeout=30, trust_env=False)
        target = headers.get("x-amz-target", "")
        service, _, operation = target.partition(".")
        async with self._lock:
            phase = self.phase
            if not self.counting:
                status, answer = await self._forward(headers, body, scope)
            elif service.startswith("DynamoDB"):
                status, answer = await self._dynamodb(phase, operation, headers, body)
            else:
                status, answer = await self._forward(headers, body, scope)
                if service == "AmazonSQS" or not target:
                    self.units[(phase, "sqs.requests")] += max(1, math.ceil(len(body) / SQS_CHUNK))
                    self.units[(phase, f"calls.SQS.{operation or 'query'}")] += 1
        await send({"type": "http.response.start", "status": status, "headers": JSON})
        await send({"type": "http.response.body", "body": answer})

    async def _dynamodb(
        self, phase: str, operation: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        request = orjson.loads(body)
        self.units[(phase, f"calls.DynamoDB.{operation}")] += 1
        writes: list[tuple[str, dict[str, Any], int]] = []  # table, key, units per KB
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            writes.append((request["TableName"], await self._key(request, headers), 1))
        elif operation == "TransactWriteItems":
            for entry in request["TransactItems"]:
                ((_, op),) = entry.items()
                writes.append((op["TableName"], await self._key(op, headers), 2))
        elif operation == "BatchWriteItem":
            for table, entries in request["RequestItems"].items():
                for entry in entries:
                    ((_, op),) = entry.items()
                    writes.append((table, await self._key({"TableName": table, **op}, headers), 1))
        before = [await self._size(table, key, headers) for table, key, _ in writes]
        status, answer = await self._forward(headers, body, None)
        if status == 200:
            for (table, key, per_kb), old in zip(writes, before, strict=True):
                new = await self._size(table, key, headers)
                self.units[(phase, "dynamodb.write")] += per_kb * write_units(old, new)
            self._reads(phase, operation, request, orjson.loads(answer))
        elif operation == "TransactWriteItems" or "ConditionalCheckFailed" in answer.decode(errors="replace"):
            # A failed condition or a cancelled transaction still consumes write capacity.
            for (_, _, per_kb), old in zip(writes, before, strict=True):
                self.units[(phase, "dynamodb.write")] += per_kb * write_units(old, old)
        return status, answer

    def _reads(self, phase: str, operation: str, request: dict[str, Any], answer: dict[str, Any]) -> None:
        consistent = bool(request.get("ConsistentRead"))
        if operation == "GetItem":
            self.units[(phase, "dynamodb.read")] += read_units(item_size(answer.get("Item")), consistent)
        elif operation in ("Query", "Scan"):
            size = sum(item_size(i) for i in answer.get("Items", []))
            self.units[(phase, "dynamodb.read")] += read_units(size, consistent)
        elif operation == "BatchGetItem":
            for table, items in answer.get("Responses", {}).items():
                table_consistent = bool(request["RequestItems"][table].get("ConsistentRead"))
                for item in items:
                    self.units[(phase, "dynamodb.read")] += read_units(item_size(item), table_consistent)

    async def _forward(
        self, headers: dict[str, str], body: bytes, scope: dict[str, Any] | None
    ) -> tuple[int, bytes]:
        assert self._client is not None
        sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        path = self.target
        if scope is not None and scope.get("path", "/") != "/":
            path = self.target.rstrip("/") + scope["path"]
            if scope.get("query_string"):
                path += "?" + scope["query_string"].decode()
        answer = await self._client.post(path, content=body, headers=sent)
        return answer.status_code, answer.content

    async def _call(self, headers: dict[str, str], operation: str, request: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-amz-date")}
        kept["content-type"] = "application/x-amz-json-1.0"
        kept["x-amz-target"] = f"DynamoDB_20120810.{operation}"
        status, answer = await self._forward(kept, orjson.dumps(request), None)
        return orjson.loads(answer) if status == 200 else {}

    async def _key(self, op: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if "Key" in op:
            return op["Key"]
        table = op["TableName"]
        if table not in self._keys:
            described = await self._call(headers, "DescribeTable", {"TableName": table})
            self._keys[table] = [k["AttributeName"] for k in described["Table"]["KeySchema"]]
        return {name: op["Item"][name] for name in self._keys[table]}

    async def _size(self, table: str, key: dict[str, Any], headers: dict[str, str]) -> int:
        read = {"TableName": table, "Key": key, "ConsistentRead": True}
        answer = await self._call(headers, "GetItem", read)
        return item_size(answer.get("Item"))
