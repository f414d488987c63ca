"""Feed a queue to a Lambda SQS handler the way Lambda's event source mapping does (`tollway dev`).

Long-polls up to 10 messages, hands them over as a real SQS event (`{"Records": [...]}`),
deletes the ones the handler did not report in `batchItemFailures`, and leaves the rest
to reappear after the visibility timeout (and, past the queue's maxReceiveCount, to move
to its DLQ). If the handler raises, the whole batch is left for redelivery.
`retry_visibility_s` shortens the wait before redelivery (tests); Lambda does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from tollway.observability import logger

SqsHandler = Callable[[dict[str, Any], Any], Any]
ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"]


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS Lambda event, from a ReceiveMessage message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class SqsPoller:
    def __init__(
        self,
        queue_url: str,
        handler: SqsHandler,
        sqs: Any,
        *,
        wait_s: int = 1,
        retry_visibility_s: int | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.handler = handler
        self.sqs = sqs
        self.wait_s = wait_s
        self.retry_visibility_s = retry_visibility_s
        self.batches = 0
        self._stop = threading.Event()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]
        self.region = sqs.meta.region_name
        self._thread = threading.Thread(target=self._run, name="usage-sqs-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def poll_once(self) -> int:
        """Receive one batch and deliver it; the number of messages received."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_s,
            MessageSystemAttributeNames=ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        records = [lambda_record(m, self.queue_arn, self.region) for m in messages]
        self.batches += 1
        try:
            response = self.handler({"Records": records}, _context())
            failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        except Exception:
            logger.exception("usage function failed; the batch will be redelivered")
            failed = {r["messageId"] for r in records}
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
            )
        retry = [r for r in records if r["messageId"] in failed]
        if retry and self.retry_visibility_s is not None:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": r["receiptHandle"],
                        "VisibilityTimeout": self.retry_visibility_s,
                    }
                    for i, r in enumerate(retry)
                ],
            )
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("usage queue poll failed")
                self._stop.wait(1)


def _context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="UsageFunction",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:UsageFunction",
        aws_request_id="dev",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def start_poller(
    queue_url: str, handler: SqsHandler, sqs_client: Any, *, retry_visibility_s: int | None = None
) -> Callable[[], None]:
    """Start polling in a daemon thread; returns the function that stops it."""
    poller = SqsPoller(queue_url, handler, sqs_client, retry_visibility_s=retry_visibility_s)
    poller.start()
    return poller.stop
