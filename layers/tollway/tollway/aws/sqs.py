"""SQS's SendMessageBatch over one keep-alive connection: the usage flush without botocore.

Why not boto3's client: a flush of one event through it cost ~810 µs of CPU after each
Lambda invocation, and 27% of a uvicorn worker's throughput, nearly all of it botocore's
generic machinery (event hooks, validation, serialization, endpoint rules, parsing).
SQS speaks the AWS JSON 1.0 protocol, like DynamoDB: a call is a `BlockingCaller` call
(`tollway.aws.blocking`: one orjson body, SigV4 with service "sqs", one POST on the kept
connection, one orjson parse).

Synchronous on purpose: the Lambda extension flushes from its own thread while the
Mangum event loop is idle, and `BackgroundFlusher` runs the flush on a worker thread.
A failure is raised at once (after the resend on a stale connection, or with a corrected
clock, that `BlockingCaller` makes): the emitter keeps the events for its next flush, and
the usage function's dedupe on `event_id` makes a doubled send harmless.

Error codes are botocore's (`tollway.aws.protocol.parse_answer`): SQS is query-compatible,
so the code is its `x-amzn-query-error` header's (AWS.SimpleQueueService.NonExistentQueue,
...), with the modeled name (QueueDoesNotExist) as the error's `shape`; without the header,
the body's `__type`.

`LeanSqs.from_environment` takes the endpoint as boto3 would (`AWS_ENDPOINT_URL[_SQS]`,
`tollway.aws.endpoints`), the region and the credential chain from `tollway.aws`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tollway.aws.blocking import BlockingCaller
from tollway.aws.protocol import JSON_10, Credentials

TARGET_PREFIX = "AmazonSQS"


class LeanSqs(BlockingCaller):
    def __init__(self, endpoint: str, region: str, credentials: Credentials | None, **options: Any) -> None:
        options.update(service="sqs", target=TARGET_PREFIX, content_type=JSON_10)
        super().__init__(endpoint, region, credentials, **options)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> LeanSqs:
        """Endpoint, region and credentials as a boto3 SQS client would take them."""
        return cls(**{**cls.settings("sqs", environ), **options})

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        """`{"Successful": [...], "Failed": [...]}`, as boto3's call answers; raises AwsError."""
        return self.call("SendMessageBatch", orjson.dumps({"QueueUrl": QueueUrl, "Entries": Entries}))
