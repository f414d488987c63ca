"""Secrets Manager's GetSecretValue without botocore: the key secret, read once at init.

Secrets Manager speaks the AWS JSON 1.1 protocol (`X-Amz-Target: secretsmanager.<operation>`).
The read is one `BlockingCaller` call on a connection of its own, closed after it: the
router's init runs outside any event loop (functions/router/app.py builds the app at import,
before Mangum's loop runs; `tollway dev` and tests build it wherever they are), and the
container's shared transport can only open its session inside the running loop. Reading on
the first request instead would put a Secrets Manager round trip inside that request and
make every request handle a missing secret; a container that cannot read its secret should
fail its init, where Lambda reports it and tries a new one.

A throttled, 5xx or broken call is sent again after a short jittered pause (up to 0.1 s,
then 0.2 s): three attempts in all, as many as botocore's standard retry mode makes.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from tollway.aws.blocking import BlockingCaller
from tollway.aws.clock import AwsClock
from tollway.aws.errors import AwsError
from tollway.aws.protocol import JSON_11

ATTEMPTS = 3


def _pause(attempt: int) -> float:
    """Before attempt `attempt` + 1: jittered, doubling from 0.1 s."""
    return random.uniform(0, 0.1 * 2 ** (attempt - 1))


def get_secret_value(
    secret_id: str,
    environ: Mapping[str, str],
    *,
    clock: AwsClock | None = None,
    pause: Callable[[int], float] = _pause,
    **options: Any,
) -> bytes:
    """The current value of the secret `secret_id` (name or ARN): its SecretString's UTF-8, or
    its SecretBinary; raises AwsError (ValueError for an endpoint configuration boto3 refuses)."""
    settings = {**BlockingCaller.settings("secretsmanager", environ), **options}
    caller = BlockingCaller(
        service="secretsmanager", target="secretsmanager", content_type=JSON_11, clock=clock, **settings
    )
    try:
        answer = _retried(caller, orjson.dumps({"SecretId": secret_id}), pause)
    finally:
        caller.close()
    if isinstance(answer.get("SecretString"), str):
        return answer["SecretString"].encode("utf-8")
    if isinstance(answer.get("SecretBinary"), str):
        return base64.b64decode(answer["SecretBinary"])
    raise AwsError("BadResponse", answer, 200)


def _retried(caller: BlockingCaller, body: bytes, pause: Callable[[int], float]) -> dict[str, Any]:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return caller.call("GetSecretValue", body)
        except AwsError as error:
            if not error.retryable or attempt == ATTEMPTS:
                raise
        time.sleep(pause(attempt))
    raise AssertionError("unreachable")
