"""The demo consumer and the local usage pipeline of `tollway dev`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

DEMO_CONSUMER = "demo"
DEMO_PLAN = "free"
DEMO_SCOPES = ["users:read", "profile:read"]


def create_demo_consumer(env: dict[str, str], infra: Path, key: str) -> None:
    table = env["TOLLWAY_KEYS_TABLE"]
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={
            "key_hash": {"S": hashlib.sha256(key.encode()).hexdigest()},
            "key_id": {"S": "demo"},
            "consumer": {"S": DEMO_CONSUMER},
            "plan": {"S": DEMO_PLAN},
            "scopes": {"L": [{"S": s} for s in DEMO_SCOPES]},
            "status": {"S": "active"},
            "created_at": {"S": datetime.now(UTC).isoformat()},
        },
    )


def start_usage_pipeline(env: dict[str, str], infra: Path, sqs: Any) -> Callable[[], None]:
    """The usage function, fed from the emulated queue as Lambda's SQS event source feeds it."""
    from tollway.dev.sqs_poller import start_poller
    from tollway.settings import Settings
    from tollway.usage.consumer import build_handler

    handler = build_handler(Settings.from_environ(env, infra))
    return start_poller(env["TOLLWAY_USAGE_QUEUE_URL"], handler, sqs)
