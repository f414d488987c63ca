"""The UsageFunction's work: an SQS batch of usage events -> Ledger, with partial failures.

Every record is handled on its own: a well-formed event is recorded (once: see
billing.Ledger); a malformed one is logged and reported as a batch item failure, so SQS
redelivers only it and, after the queue's maxReceiveCount, moves it to the DLQ, while its
batch-mates succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from tollway.observability import logger
from tollway.settings import Settings
from tollway.usage.events import UsageEvent

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class MalformedEvent(ValueError):
    """A message that is not a usage event; retrying cannot fix it."""


class Recorder(Protocol):
    def record(self, event: UsageEvent) -> bool: ...


def parse(body: str) -> UsageEvent:
    try:
        return UsageEvent.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise MalformedEvent(problems) from None


class UsageConsumer:
    def __init__(self, ledger: Recorder) -> None:
        self.ledger = ledger
        # Report failures even when every record failed, rather than raising: same redelivery,
        # and the response still says which records failed.
        self.processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record(self, record: SQSRecord) -> bool:
        try:
            event = parse(record.body)
        except MalformedEvent as exc:
            logger.error(
                "malformed usage event",
                extra={
                    "message_id": record.message_id,
                    "receive_count": record.attributes.approximate_receive_count,
                    "problem": str(exc)[:500],
                },
            )
            raise
        return self.ledger.record(event)

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return process_partial_response(
            event=event, record_handler=self.record, processor=self.processor, context=context
        )


def build_handler(settings: Settings, dynamodb: Any = None, config: Any = None) -> LambdaHandler:
    """The UsageFunction's handler: plans from infra (or `config`, the built route table of
    the stage), the table from settings, one client."""
    from tollway import aws
    from tollway.usage.billing import Ledger, prices

    if not settings.usage_table:
        raise ValueError("TOLLWAY_USAGE_TABLE is not set")
    if config is None:
        from tollway.config.compile import compile_infra

        config = compile_infra(Path(settings.infra), settings.stage, settings.environ)
    ledger = Ledger(dynamodb or aws.client("dynamodb"), settings.usage_table, prices(config.plans))
    return UsageConsumer(ledger).handle
