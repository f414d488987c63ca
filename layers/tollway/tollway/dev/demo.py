"""The demo consumer and the local usage pipeline of `tollway dev`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from tollway.auth.keys import key_hash
from tollway.auth.store import ACTIVE, KeyRecord, KeyStore

DEMO_CONSUMER = "demo"
DEMO_PLAN = "free"
DEMO_SCOPES = ("users:read", "profile:read", "chat:write")


def create_demo_consumer(env: dict[str, str], infra: Path, key: str) -> None:
    """The demo consumer's key, stored the way `tollway keys create` stores one (hashed)."""
    record = KeyRecord(
        key_hash=key_hash(key),
        key_id="demo",
        consumer=DEMO_CONSUMER,
        plan=DEMO_PLAN,
        scopes=DEMO_SCOPES,
        status=ACTIVE,
        created_at=datetime.now(UTC).isoformat(),
    )
    KeyStore(boto3.client("dynamodb"), env["TOLLWAY_KEYS_TABLE"]).put(record)


def start_usage_pipeline(env: dict[str, str], infra: Path, sqs: Any) -> Callable[[], None]:
    """The usage function, fed from the emulated queue as Lambda's SQS event source feeds it."""
    from tollway.dev.sqs_poller import start_poller
    from tollway.settings import Settings
    from tollway.usage.consumer import build_handler

    handler = build_handler(Settings.from_environ(env, infra))
    return start_poller(env["TOLLWAY_USAGE_QUEUE_URL"], handler, sqs)
