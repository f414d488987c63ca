"""The keys table for tools (`tollway keys`, the dev demo consumer): its items written, read,
revoked and listed through a boto3 client, blocking. The request path reads one item through
`tollway.auth.store.KeyLookup` instead."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from tollway.auth.store import REVOKED, KeyRecord, iso, item_key


class KeyStore:
    """The keys table for tools, through a boto3 client."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def get(self, key_hash: str) -> KeyRecord | None:
        response = self.dynamodb.get_item(TableName=self.table, Key=item_key(key_hash), ConsistentRead=True)
        item = response.get("Item")
        return KeyRecord.from_item(item) if item else None

    def put(self, record: KeyRecord) -> None:
        self.dynamodb.put_item(
            TableName=self.table,
            Item=record.to_item(),
            ConditionExpression="attribute_not_exists(key_hash)",
        )

    def by_key_id(self, key_id: str) -> KeyRecord | None:
        response = self.dynamodb.query(
            TableName=self.table,
            IndexName="by_key_id",
            KeyConditionExpression="key_id = :id",
            ExpressionAttributeValues={":id": {"S": key_id}},
        )
        items = response.get("Items", [])
        return KeyRecord.from_item(items[0]) if items else None

    def revoke(self, record: KeyRecord, when: datetime) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key=item_key(record.key_hash),
            UpdateExpression="SET #status = :revoked, revoked_at = :when",
            ConditionExpression="attribute_exists(key_hash)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":revoked": {"S": REVOKED}, ":when": {"S": iso(when)}},
        )

    def list(self, consumer: str | None = None) -> list[KeyRecord]:
        records = [KeyRecord.from_item(item) for item in self._items(consumer)]
        return sorted(records, key=lambda r: (r.consumer, r.created_at, r.key_id))

    def _items(self, consumer: str | None) -> Iterator[dict[str, Any]]:
        if consumer is None:
            pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        else:
            pages = self.dynamodb.get_paginator("query").paginate(
                TableName=self.table,
                IndexName="by_consumer",
                KeyConditionExpression="consumer = :c",
                ExpressionAttributeValues={":c": {"S": consumer}},
            )
        for page in pages:
            yield from page.get("Items", [])
