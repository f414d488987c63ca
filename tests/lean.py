"""The lean AWS callers aimed where a test's boto3 client points (a fault proxy, a closed port).

The gateway builds them from the environment (`tollway.assemble`); tests often point one
at another endpoint, so they take its endpoint and region from a boto3 client and the
credentials from the public credential chain, as the gateway does.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.config import Config
from tollway import aws
from tollway.aws.dynamodb import DynamoCaller
from tollway.aws.sqs import LeanSqs
from tollway.transport.exchange import Exchanger


def dynamo_caller(exchanger: Exchanger, client: Any, **options: Any) -> DynamoCaller:
    return DynamoCaller(
        exchanger,
        client.meta.endpoint_url,
        client.meta.region_name,
        aws.credentials(os.environ),
        **options,
    )


def lean_sqs(client: Any, **options: Any) -> LeanSqs:
    from botocore.httpsession import where

    options.setdefault("ca_file", where())
    return LeanSqs(client.meta.endpoint_url, client.meta.region_name, aws.credentials(os.environ), **options)


# A boto3 SQS client as tests use it: short timeouts and one attempt, like the lean sender
# (the emitter retries on its next flush itself).
SQS_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"max_attempts": 1, "mode": "standard"},
    max_pool_connections=4,
    tcp_keepalive=True,
)
