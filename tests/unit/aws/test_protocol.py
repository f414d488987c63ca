"""Answers read as botocore reads them: error codes from `__type` and, for query-compatible
services (SQS), from the `x-amzn-query-error` header; checked against botocore's own parser,
and end to end against a loopback SQS that sends the header."""

from __future__ import annotations

import orjson
import pytest
from botocore.credentials import Credentials
from botocore.parsers import create_parser
from hypothesis import given, settings
from hypothesis import strategies as st
from tollway.aws.errors import AwsError
from tollway.aws.protocol import parse_answer
from tollway.aws.sqs import LeanSqs

from tests.unit.aws.fake_aws import Answer

CREDENTIALS = Credentials("AK", "SK", "TOKEN")
QUEUE = "http://127.0.0.1/123456789012/UsageQueue"
ENTRIES = [{"Id": "0", "MessageBody": "{}"}]
MISSING = "AWS.SimpleQueueService.NonExistentQueue"

names = st.text(st.characters(codec="ascii", exclude_characters="#:;\x00\r\n"), min_size=1, max_size=12)
kinds = st.tuples(st.sampled_from(["", "com.amazonaws.sqs#", "a.b#c#"]), names, st.sampled_from(["", ":http://x"]))
headers = st.one_of(
    st.none(),
    st.tuples(names, st.sampled_from(["Sender", "Receiver"])).map(";".join),
    st.text(st.characters(codec="ascii", exclude_characters="\x00\r\n"), max_size=20),
)


def botocores(status: int, body: bytes, query_error: str | None) -> dict[str, str]:
    found = {} if query_error is None else {"x-amzn-query-error": query_error}
    return create_parser("json").parse({"status_code": status, "headers": found, "body": body}, None)["Error"]


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([400, 403, 404, 500, 503]), kind=kinds, query_error=headers)
def test_the_code_shape_and_fault_are_botocores(status: int, kind: tuple[str, str, str], query_error) -> None:
    body = orjson.dumps({"__type": "".join(kind), "message": "m"})
    with pytest.raises(AwsError) as failed:
        parse_answer(status, body, query_error=query_error)
    theirs = botocores(status, body, query_error)
    assert failed.value.code == theirs["Code"]
    assert failed.value.shape == theirs.get("QueryErrorCode", theirs["Code"]) == kind[1]
    assert failed.value.fault == theirs.get("Type")
    assert failed.value.body == orjson.loads(body) and failed.value.status == status


def test_a_200_is_the_answer_whatever_the_header() -> None:
    assert parse_answer(200, b'{"a": 1}', query_error="X;Sender") == {"a": 1}


@pytest.mark.parametrize("body", [b"<html>Service Unavailable</html>", b""])
def test_a_5xx_that_is_not_json_is_ours_whatever_the_header(body: bytes) -> None:
    with pytest.raises(AwsError) as failed:
        parse_answer(503, body, query_error="AWS.SimpleQueueService.InternalError;Receiver")
    error = failed.value
    assert (error.code, error.fault, error.retryable) == ("InternalServerError", None, True)


@pytest.mark.parametrize(
    ("query_error", "code", "shape", "fault"),
    [
        (f"{MISSING};Sender", MISSING, "QueueDoesNotExist", "Sender"),
        (MISSING, "QueueDoesNotExist", "QueueDoesNotExist", None),  # no fault: not botocore's format
        (";Sender", "QueueDoesNotExist", "QueueDoesNotExist", None),
        ("a;b;c", "QueueDoesNotExist", "QueueDoesNotExist", None),
        (None, "QueueDoesNotExist", "QueueDoesNotExist", None),  # no header: the body's
    ],
)
def test_lean_sqs_reads_the_code_from_the_header_else_the_body(
    fake_aws, query_error, code, shape, fault
) -> None:
    refused = {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The queue does not exist."}
    header = {} if query_error is None else {"x-amzn-query-error": query_error}
    fake = fake_aws(Answer(400, refused, header), Answer(200, {"Successful": [{"Id": "0"}], "Failed": []}))
    sqs = LeanSqs(fake.url, "us-east-1", CREDENTIALS)
    with pytest.raises(AwsError) as failed:
        sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    assert (failed.value.code, failed.value.shape, failed.value.fault) == (code, shape, fault)
    assert failed.value.body == refused and not failed.value.retryable
    assert sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)["Successful"] == [{"Id": "0"}]


@pytest.mark.parametrize("code", ["RequestThrottled", "ThrottlingException"])
def test_throttling_is_retryable_by_the_header_or_the_shape(fake_aws, code) -> None:
    """Throttling is known by its modeled name (SQS's RequestThrottled), whatever code the
    header gives."""
    header = {"x-amzn-query-error": "SomeQueryCode;Sender"}
    fake = fake_aws(Answer(400, {"__type": f"com.amazonaws.sqs#{code}"}, header))
    with pytest.raises(AwsError) as failed:
        LeanSqs(fake.url, "us-east-1", CREDENTIALS).send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    assert failed.value.code == "SomeQueryCode" and failed.value.retryable
