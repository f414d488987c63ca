"""The keys table (see KeysTable in template.yaml): one item per API key, keyed by its hash.

The key itself is never stored; `key_id` is the public handle that `tollway keys` and the
logs use. This module holds the item's shape and the request path's read:

    KeyRecord   one key's item, both ways
    KeyLookup   the request path: one strongly consistent GetItem through the async
                DynamoDB caller the quota uses (tollway.aws.dynamodb), within the deadline

The tools (`tollway keys`, the dev demo consumer) write and list items through boto3, off
the request path: tollway.tools.keystore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tollway.aws.dynamodb import Caller

ACTIVE, REVOKED = "active", "revoked"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_hash: str
    key_id: str
    consumer: str
    plan: str
    scopes: tuple[str, ...]
    status: str
    created_at: str
    expires_at: str | None = None
    expires_epoch: float | None = None  # expires_at, parsed once when the item is read

    def expired(self, now: float) -> bool:
        return self.expires_epoch is not None and now >= self.expires_epoch

    def state(self, now: float) -> str:
        """active | revoked | expired, as a person reading `tollway keys list` expects."""
        if self.status != ACTIVE:
            return self.status
        return "expired" if self.expired(now) else ACTIVE

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        raw_scopes = item.get("scopes", {})
        if "SS" in raw_scopes:
            scopes = tuple(sorted(raw_scopes["SS"]))
        else:
            scopes = tuple(sorted(v["S"] for v in raw_scopes.get("L", [])))
        expires_at = item["expires_at"]["S"] if "expires_at" in item else None
        return cls(
            key_hash=item["key_hash"]["S"],
            key_id=item["key_id"]["S"],
            consumer=item["consumer"]["S"],
            plan=item["plan"]["S"],
            scopes=scopes,
            status=item["status"]["S"],
            created_at=item["created_at"]["S"],
            expires_at=expires_at,
            expires_epoch=parse_iso(expires_at).timestamp() if expires_at else None,
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "key_hash": {"S": self.key_hash},
            "key_id": {"S": self.key_id},
            "consumer": {"S": self.consumer},
            "plan": {"S": self.plan},
            "scopes": {"L": [{"S": s} for s in self.scopes]},
            "status": {"S": self.status},
            "created_at": {"S": self.created_at},
        }
        if self.expires_at is not None:
            item["expires_at"] = {"S": self.expires_at}
        return item


def item_key(key_hash: str) -> dict[str, Any]:
    return {"key_hash": {"S": key_hash}}


class KeyLookup:
    """Reads one key's item on the request path, never blocking the event loop."""

    def __init__(self, caller: Caller, table: str) -> None:
        self.caller = caller
        self.table = table

    async def get(self, key_hash: str, *, deadline: float | None = None) -> KeyRecord | None:
        """The key's record, None if the table has none; raises AwsError."""
        # Strongly consistent: a key used the second after `keys create` must not be
        # read as missing and then held in the negative cache.
        body = orjson.dumps({"TableName": self.table, "Key": item_key(key_hash), "ConsistentRead": True})
        answer = await self.caller.call("GetItem", body, deadline=deadline)
        item = answer.get("Item")
        return KeyRecord.from_item(item) if item else None


def new_record(
    key_hash: str,
    key_id: str,
    consumer: str,
    plan: str,
    scopes: Sequence[str],
    created: datetime,
    expires: datetime | None,
) -> KeyRecord:
    return KeyRecord(
        key_hash=key_hash,
        key_id=key_id,
        consumer=consumer,
        plan=plan,
        scopes=tuple(sorted(set(scopes))),
        status=ACTIVE,
        created_at=iso(created),
        expires_at=iso(expires) if expires else None,
        expires_epoch=parse_iso(iso(expires)).timestamp() if expires else None,
    )
