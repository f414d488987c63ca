"""A loopback front for a DynamoDB emulator that behaves as DynamoDB does where emulators do not.

Neither emulator reports transaction conflicts: the moto server runs transactions on
threads without a lock (measured with 8 threads recording events of one consumer: 25-30%
of the transactions failed with HTTP 500, never with `TransactionConflict`), and dynalite
has no TransactWriteItems at all. DynamoDB cancels a transaction that meets another one in
progress on any of its items (`CancellationReasons` code `TransactionConflict`), and
refuses a single-item write to such an item (`TransactionConflictException`). This front:

- applies one request at a time (DynamoDB applies the writes to an item one at a time;
  moto needs it to stay consistent);
- keeps each TransactWriteItems "in progress" on its items for `hold_s` once applied, and
  answers any transaction or single-item write that meets one of them as DynamoDB would;
- runs TransactWriteItems itself, all-or-nothing, on an emulator without it (dynalite):
  each write as a single-item conditional write, the earlier ones put back as they were
  when a later condition fails;
- counts what it did (`stats`), and each call's target (`calls`).

    front = DynamoFront(emulator_url, transactions="native" | "emulated", hold_s=0.02)
    url = serve(front)    # any ASGI server on loopback
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson

from tests.backends import read_body

JSON = "application/x-amz-json-1.0"
PREFIX = "com.amazonaws.dynamodb.v20120810#"
SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


class DynamoFront:
    def __init__(self, target: str, *, transactions: str = "native", hold_s: float = 0.02) -> None:
        self.target = target.rstrip("/") + "/"
        self.transactions = transactions
        self.hold_s = hold_s
        self.stats: Counter[str] = Counter()
        self.calls: list[str] = []
        self._busy: Counter[tuple[str, str]] = Counter()
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None
        self._keys: dict[str, list[str]] = {}
        self._auth: dict[str, str] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        operation = headers.get("x-amz-target", "").rpartition(".")[2]
        self.calls.append(operation)
        self._auth = headers  # signed as the caller signs: the emulators check the form only
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._client = httpx.AsyncClient(timeout=30)
        request = orjson.loads(body) if body else {}
        if operation == "TransactWriteItems":
            status, answer = await self._transaction(request, headers, body)
        elif operation in SINGLE_WRITES and await self._busy_key(request) is not None:
            self.stats["single_write_conflicts"] += 1
            status, answer = 400, _error("TransactionConflictException", "a transaction is on the item")
        else:
            async with self._lock:
                status, answer = await self._forward(headers, body)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", JSON.encode())]}
        )
        await send({"type": "http.response.body", "body": answer})

    # --- transactions ----------------------------------------------------------------------

    async def _transaction(
        self, request: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        self.stats["transactions"] += 1
        keys = [await self._item_key(op) for op in request["TransactItems"]]
        assert self._lock is not None
        async with self._lock:
            # Checked when its turn comes: waiting for the emulator is not being in progress.
            meets = [key in self._busy for key in keys]
            if any(meets):
                self.stats["conflicts"] += 1
                reasons = [
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                    if hit
                    else {"Code": "None"}
                    for hit in meets
                ]
                return 400, _cancelled(reasons)
            self._busy.update(keys)
            if self.transactions == "native":
                status, answer = await self._forward(headers, body)
            else:
                status, answer = await self._emulate(request, headers)
        try:
            await asyncio.sleep(self.hold_s)  # still in progress on its items (DynamoDB's commit)
        finally:
            self._busy.subtract(keys)
            self._busy += Counter()  # drop the zeros
        self.stats["committed" if status == 200 else "cancelled"] += 1
        return status, answer

    async def _emulate(self, request: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
        """All-or-nothing on an emulator without transactions: undo on a failed condition."""
        undo: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        items = request["TransactItems"]
        for index, entry in enumerate(items):
            (kind, op), = entry.items()
            table = op["TableName"]
            key = await self._key_of(op)
            read = {"TableName": table, "Key": key, "ConsistentRead": True}
            before = await self._call(headers, "GetItem", read)
            old = orjson.loads(before[1]).get("Item")
            single = {k: v for k, v in op.items() if k != "ReturnValuesOnConditionCheckFailure"}
            operation = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}[kind]
            status, answer = await self._call(headers, operation, single)
            if status != 200:
                for table_name, item_key, image in reversed(undo):
                    if image is None:
                        await self._call(headers, "DeleteItem", {"TableName": table_name, "Key": item_key})
                    else:
                        await self._call(headers, "PutItem", {"TableName": table_name, "Item": image})
                error = orjson.loads(answer).get("__type", "").rpartition("#")[2]
                if error != "ConditionalCheckFailedException":
                    return status, answer
                reason: dict[str, Any] = {"Code": "ConditionalCheckFailed", "Message": "condition failed"}
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and old is not None:
                    reason["Item"] = old
                reasons = [{"Code": "None"}] * len(items)
                reasons[index] = reason
                return 400, _cancelled(reasons)
            undo.append((table, key, old))
        return 200, b"{}"

    # --- plumbing --------------------------------------------------------------------------

    async def _forward(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        assert self._client is not None
        sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        answer = await self._client.post(self.target, content=body, headers=sent)
        return answer.status_code, answer.content

    async def _call(
        self, headers: dict[str, str], operation: str, request: dict[str, Any]
    ) -> tuple[int, bytes]:
        kept = ("content-type", "authorization", "x-amz-date")
        sent = {k: v for k, v in headers.items() if k.lower() in kept}
        sent["x-amz-target"] = f"DynamoDB_20120810.{operation}"
        return await self._forward(sent, orjson.dumps(request))

    async def _key_names(self, table: str) -> list[str]:
        if table not in self._keys:
            status, answer = await self._call(self._auth, "DescribeTable", {"TableName": table})
            schema = orjson.loads(answer)["Table"]["KeySchema"]
            self._keys[table] = [k["AttributeName"] for k in schema]
        return self._keys[table]

    async def _key_of(self, op: dict[str, Any]) -> dict[str, Any]:
        if "Key" in op:
            return op["Key"]
        names = await self._key_names(op["TableName"])
        return {name: op["Item"][name] for name in names}

    async def _item_key(self, entry: dict[str, Any]) -> tuple[str, str]:
        (_, op), = entry.items()
        key = await self._key_of(op)
        return op["TableName"], orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()

    async def _busy_key(self, request: dict[str, Any]) -> tuple[str, str] | None:
        if not self._busy or "TableName" not in request:
            return None
        key = await self._item_key({"op": request})
        return key if key in self._busy else None


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"__type": PREFIX + code, "message": message})


def _cancelled(reasons: list[dict[str, Any]]) -> bytes:
    codes = ", ".join(r["Code"] for r in reasons)
    return orjson.dumps(
        {
            "__type": PREFIX + "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons"
            f" [{codes}]",
            "CancellationReasons": reasons,
        }
    )
