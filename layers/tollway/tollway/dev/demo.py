"""The demo consumer and the local usage pipeline of `tollway dev`.

The dev key secret is made by `provision` (a random value in the emulator's Secrets
Manager, `TOLLWAY_KEY_SECRET_ID` in dev.env), so keys from `tollway keys create` verify
exactly as on a stack; the demo key itself is outside the signed format and accepted only
where `TOLLWAY_DEMO_KEY` is set.
"""

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


def start_usage_pipeline(env: dict[str, str], infra: Path, sqs: Any = None) -> Callable[[], None]:
    """The usage function, fed from the emulated queue as Lambda's SQS event source feeds it.

    `tollway dev` runs it in a sidecar process of its own (tollway.dev.sidecar).
    """
    from tollway.dev.sqs_poller import start_poller
    from tollway.settings import Settings
    from tollway.usage.consumer import build_handler

    handler = build_handler(Settings.from_environ(env, infra))
    # Endpoint and credentials from the environment (AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL).
    sqs = sqs or boto3.client("sqs", region_name=env.get("AWS_REGION"))
    return start_poller(env["TOLLWAY_USAGE_QUEUE_URL"], handler, sqs)
