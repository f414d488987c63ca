"""The demo consumer and the local usage pipeline of `tollway dev`.

The dev key secret is made by `provision` (a random value in the emulator's Secrets
Manager, `TOLLWAY_KEY_SECRET_ID` in dev.env), so keys from `tollway keys create` verify
exactly as on a stack. The demo consumer's key is one of them, issued at each start
(`issue_demo_key`); callers name it `demo-key` (`$TOLLWAY_DEMO_KEY`), which only
`tollway dev`'s front (tollway.dev.front) knows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from tollway.auth.keys import key_hash
from tollway.auth.secret import load_key_mac
from tollway.auth.store import new_record
from tollway.tools.keystore import KeyStore

DEMO_CONSUMER = "demo"
DEMO_PLAN = "free"
DEMO_SCOPES = ("users:read", "profile:read", "chat:write")


def issue_demo_key(env: dict[str, str]) -> str:
    """A real key for the demo consumer, issued as `tollway keys create` issues one: signed
    under the dev key secret, stored hashed. The gateway knows no demo: `tollway dev` puts
    this key in place of the demo key's name in front of it (tollway.dev.front)."""
    environ = {**os.environ, **env}
    key, key_id = load_key_mac(env["TOLLWAY_KEY_SECRET_ID"], environ).new_key()
    record = new_record(key_hash(key), key_id, DEMO_CONSUMER, DEMO_PLAN, DEMO_SCOPES, datetime.now(UTC), None)
    KeyStore(boto3.client("dynamodb"), env["TOLLWAY_KEYS_TABLE"]).put(record)
    return key


# How often `tollway dev` runs the usage true-up (on AWS: every 5 minutes).
TRUE_UP_INTERVAL_S = 5.0


def start_usage_pipeline(env: dict[str, str], infra: Path, sqs: Any = None) -> Callable[[], None]:
    """The usage function, fed from the emulated queue as Lambda's SQS event source feeds it,
    and the usage true-up every few seconds (tollway.usage.trueup).

    `tollway dev` runs it in a sidecar process of its own (tollway.dev.sidecar).
    """
    from tollway.dev.sqs_poller import start_poller
    from tollway.functions.usage import build_handler
    from tollway.settings import Settings
    from tollway.usage.trueup import Every, build_true_up

    settings = Settings.from_environ(env, infra)
    handler = build_handler(settings)
    # Endpoint and credentials from the environment (AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL).
    sqs = sqs or boto3.client("sqs", region_name=env.get("AWS_REGION"))
    stop_poller = start_poller(env["TOLLWAY_USAGE_QUEUE_URL"], handler, sqs)
    if not settings.quota_table:
        return stop_poller
    interval = float(env.get("TOLLWAY_TRUE_UP_INTERVAL_S") or TRUE_UP_INTERVAL_S)
    true_up = Every(build_true_up(settings).run, interval, name="usage-true-up")
    true_up.start()

    def stop() -> None:
        stop_poller()
        true_up.stop()

    return stop
