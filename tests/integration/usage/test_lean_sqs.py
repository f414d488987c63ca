"""The emitter's lean SQS sender against the moto server: batches arrive; failures are kept
and logged exactly as they were with boto3's client."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from tollway import aws as tollway_aws
from tollway.aws.errors import AwsError
from tollway.aws.sqs import LeanSqs
from tollway.recording.emitter import UnsentLog
from tollway.usage.events import MAX_EVENTS
from tollway.usage.replay import unsent_events

from tests.lean import SQS_CONFIG, lean_sqs

from .conftest import build_stack


def receive_all(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for _ in range(50):
        if len(bodies) >= expected:
            break
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        bodies += [json.loads(m["Body"]) for m in answer.get("Messages", [])]
    return bodies


@pytest.mark.parametrize("n", [1, 10, 23, 85])
def test_a_flush_sends_n_events_in_messages_of_40_in_one_call_and_they_arrive(
    aws, infra, backend_url, serve, n
):
    stack = build_stack(aws, infra, backend_url, interval_s=3600)
    assert isinstance(stack.emitter.sqs, LeanSqs)
    url = serve(stack.app)
    with httpx.Client(base_url=url) as http:
        for i in range(n):
            headers = {"x-api-key": "acme:pro", "x-request-id": f"lean-{i}"}
            assert http.get(f"/v1/items/{i}", headers=headers).status_code == 200
    stats = stack.emitter.flush()
    messages = -(-n // MAX_EVENTS)
    assert (stats.sent, stats.messages, stats.failed, stats.calls) == (n, messages, 0, 1)
    assert stack.emitter.sqs.calls == 1 and stack.emitter.pending() == 0
    received = receive_all(stack.sqs, aws["TOLLWAY_USAGE_QUEUE_URL"], messages)
    assert sorted(b["seq"] for b in received) == list(range(messages))
    bodies = [e for b in received for e in b["events"]]
    assert sorted(b["request_id"] for b in bodies) == sorted(f"lean-{i}" for i in range(n))
    assert {(b["consumer_id"], b["route_id"], b["status"]) for b in bodies} == {("acme", "items.get", 200)}
    assert len({b["event_id"] for b in bodies}) == n


def closed_endpoint() -> str:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{placeholder.getsockname()[1]}"


@pytest.mark.parametrize("sender", ["lean", "boto3"])
def test_a_closed_port_keeps_the_events_and_logs_them_as_unsent(aws, infra, backend_url, serve, sender):
    """The same outcome through either sender: the emitter's behaviour did not change."""
    client = tollway_aws.session().client("sqs", endpoint_url=closed_endpoint(), config=SQS_CONFIG)
    sqs = lean_sqs(client) if sender == "lean" else client
    unsent = io.StringIO()
    stack = build_stack(aws, infra, backend_url, sqs=sqs, unsent=UnsentLog(unsent), interval_s=3600)
    url = serve(stack.app)
    with httpx.Client(base_url=url) as http:
        for i in range(12):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
    stats = stack.emitter.flush()
    assert (stats.sent, stats.failed, stats.calls, stats.dropped) == (0, 12, 1, 0)
    assert stack.emitter.pending() == 12
    records = [json.loads(line) for line in unsent.getvalue().splitlines()]
    assert [(r["usage_event_unsent"], r["reason"]) for r in records] == [(True, "send failed; retrying")] * 12
    assert len([e for e in unsent_events(unsent.getvalue().splitlines()) if e is not None]) == 12
    stack.emitter.flush()  # retried, not logged again
    assert stack.emitter.pending() == 12 and len(unsent.getvalue().splitlines()) == 12


def test_an_sqs_error_is_raised_with_botocores_code_and_the_connection_lives_on(aws):
    """The emulator answers with `x-amzn-query-error` as SQS does: the code is the header's,
    the modeled name the shape's, as boto3's client reports the same answer."""
    boto = tollway_aws.client("sqs", config=SQS_CONFIG)
    lean = lean_sqs(boto)
    missing = aws["TOLLWAY_USAGE_QUEUE_URL"] + "-missing"
    entries = [{"Id": "0", "MessageBody": "{}"}]
    with pytest.raises(AwsError) as failed:
        lean.send_message_batch(QueueUrl=missing, Entries=entries)
    with pytest.raises(ClientError) as theirs:
        boto.send_message_batch(QueueUrl=missing, Entries=entries)
    error = theirs.value.response["Error"]
    assert error["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert (failed.value.code, failed.value.shape, failed.value.fault, failed.value.status) == (
        error["Code"],
        error["QueryErrorCode"],
        error["Type"],
        400,
    )
    assert isinstance(theirs.value, boto.exceptions.QueueDoesNotExist)
    assert failed.value.shape == "QueueDoesNotExist"
    assert (
        lean.send_message_batch(
            QueueUrl=aws["TOLLWAY_USAGE_QUEUE_URL"], Entries=[{"Id": "0", "MessageBody": "{}"}]
        )["Successful"][0]["Id"]
        == "0"
    )
