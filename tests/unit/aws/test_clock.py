"""A container whose clock is off: AWS refuses its signatures, the lean callers adopt AWS's time
from the refusal's Date, send the call once more, and keep the correction for later calls.

The container's clock is injected (`AwsClock(time=...)`); the fake service's clock too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st
from tollway.aws.clock import CLOCK_SKEW, AwsClock, http_date
from tollway.aws.dynamodb import DynamoCaller
from tollway.aws.errors import AwsError
from tollway.aws.sqs import LeanSqs
from tollway.transport.exchange import AiohttpExchanger, Exchanger

from tests.unit.aws.fake_aws import SKEWED, Answer, late

CREDENTIALS = Credentials("AK", "SK", "TOKEN")
BODY = b'{"TableName": "QuotaTable", "Key": {"pk": {"S": "x"}}}'
ITEM = {"Item": {"used": {"N": "3"}}}
BATCH = {"QueueUrl": "http://127.0.0.1/1/UsageQueue", "Entries": [{"Id": "0", "MessageBody": "{}"}]}
T = 1_796_000_000.0  # AWS's time in these tests


@pytest.fixture
async def production() -> AsyncIterator[Exchanger]:
    exchanger = AiohttpExchanger()
    yield exchanger
    await exchanger.close()


def dynamodb(exchanger: Exchanger, url: str, clock: AwsClock, **options) -> DynamoCaller:
    return DynamoCaller(exchanger, url, "us-east-1", CREDENTIALS, pause=lambda: 0.0, clock=clock, **options)


@pytest.mark.parametrize("off_by", [-3600.0, -301.0, 600.0, 86_400.0 * 3])
async def test_a_skewed_clock_is_corrected_once_and_kept(fake_aws, production, off_by: float) -> None:
    container = [T + off_by]
    clock = AwsClock(lambda: container[0])
    fake = fake_aws(Answer(200, ITEM), clock=lambda: T)
    caller = dynamodb(production, fake.url, clock)

    assert await caller.call("GetItem", BODY) == ITEM
    refused, accepted = fake.requests
    assert refused.signed_at == int(T + off_by) and abs(accepted.signed_at - T) <= 1
    assert accepted.body == refused.body == BODY
    assert abs(clock.offset + off_by) <= 1

    container[0] += 30  # later calls: signed with the corrected clock, the first time
    assert await caller.call("GetItem", BODY) == ITEM
    assert len(fake.requests) == 3 and abs(fake.requests[2].signed_at - (T + 30)) <= 1


async def test_the_correction_is_shared_by_the_containers_callers(fake_aws, production) -> None:
    clock = AwsClock(lambda: T - 3600)
    dynamo = fake_aws(Answer(200, ITEM), clock=lambda: T)
    sqs = fake_aws(Answer(200, {"Successful": [{"Id": "0"}], "Failed": []}), clock=lambda: T)
    await dynamodb(production, dynamo.url, clock).call("GetItem", BODY)
    assert len(dynamo.requests) == 2
    LeanSqs(sqs.url, "us-east-1", CREDENTIALS, clock=clock).send_message_batch(**BATCH)
    assert len(sqs.requests) == 1 and abs(sqs.requests[0].signed_at - T) <= 1


def test_lean_sqs_corrects_its_clock_and_sends_the_batch_once_more(fake_aws) -> None:
    clock = AwsClock(lambda: T + 1200)
    fake = fake_aws(Answer(200, {"Successful": [{"Id": "0"}], "Failed": []}), clock=lambda: T)
    sqs = LeanSqs(fake.url, "us-east-1", CREDENTIALS, clock=clock)
    assert sqs.send_message_batch(**BATCH)["Successful"] == [{"Id": "0"}]
    assert [abs(r.signed_at - T) <= 1 for r in fake.requests] == [False, True]
    assert sqs.calls == 2


@pytest.mark.parametrize("code", sorted(CLOCK_SKEW))
def test_every_skew_code_is_corrected_whether_in_the_type_or_the_header(fake_aws, code: str) -> None:
    by_type = Answer(403, {"__type": f"com.amazon.coral.service#{code}", "message": "m"})
    by_header = Answer(403, {"__type": "com.amazonaws.sqs#Other"}, {"x-amzn-query-error": f"{code};Sender"})
    for refusal in (by_type, by_header):
        fake = fake_aws(Answer(200, {"Successful": [], "Failed": []}), clock=lambda: T, refusal=refusal)
        sqs = LeanSqs(fake.url, "us-east-1", CREDENTIALS, clock=AwsClock(lambda: T - 900))
        assert sqs.send_message_batch(**BATCH) == {"Successful": [], "Failed": []}
        assert len(fake.requests) == 2


async def test_a_refused_signature_from_a_clock_that_agrees_is_not_retried(fake_aws, production) -> None:
    """A wrong key, not a wrong clock: the Date agrees, the message says nothing we read."""
    clock = AwsClock(lambda: T + 2)
    fake = fake_aws(Answer(400, SKEWED), clock=lambda: T)
    with pytest.raises(AwsError) as failed:
        await dynamodb(production, fake.url, clock).call("GetItem", BODY)
    assert failed.value.code == "InvalidSignatureException" and not failed.value.retryable
    assert len(fake.requests) == 1 and clock.offset == 0.0


async def test_other_refusals_never_move_the_clock(fake_aws, production) -> None:
    clock = AwsClock(lambda: T - 3600)
    fake = fake_aws(Answer(400, {"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException"}))
    with pytest.raises(AwsError, match="AccessDeniedException"):
        await dynamodb(production, fake.url, clock).call("GetItem", BODY)
    assert len(fake.requests) == 1 and clock.offset == 0.0


async def test_at_most_one_retry_even_if_aws_keeps_refusing(fake_aws, production) -> None:
    """A service whose Date jumps an hour on every answer: corrected once, then the error."""
    server = [T]

    def jumping() -> float:
        server[0] += 3600
        return server[0]

    clock = AwsClock(lambda: T)
    fake = fake_aws(Answer(200, ITEM), clock=jumping)
    with pytest.raises(AwsError, match="InvalidSignatureException"):
        await dynamodb(production, fake.url, clock).call("GetItem", BODY)
    assert len(fake.requests) == 2


async def test_the_retry_respects_the_deadline_and_the_correction_is_still_kept(fake_aws, production) -> None:
    clock = AwsClock(lambda: T - 3600)
    fake = fake_aws(Answer(200, ITEM), clock=lambda: T)
    caller = dynamodb(production, fake.url, clock, monotonic=late(100.0, 104.99))
    with pytest.raises(AwsError, match="InvalidSignatureException"):
        await caller.call("GetItem", BODY, deadline=105.0)  # 10 ms left after the first attempt
    assert len(fake.requests) == 1 and abs(clock() - T) <= 1
    assert await caller.call("GetItem", BODY, deadline=200.0) == ITEM
    assert len(fake.requests) == 2


@pytest.mark.parametrize("date", [None, "", "yesterday"])
def test_without_a_usable_date_nothing_is_corrected(date: str | None) -> None:
    clock = AwsClock(lambda: T - 3600)
    assert not clock.corrects(AwsError("RequestTimeTooSkewed", date=date)) and clock.offset == 0.0
    assert clock.corrects(AwsError("RequestTimeTooSkewed", date=formatdate(T, usegmt=True)))
    assert clock() == T


async def test_an_answer_without_a_date_is_not_retried(fake_aws, production) -> None:
    """No Date (a proxy's answer, a broken one): no evidence of the time, no retry."""
    clock = AwsClock(lambda: T - 3600)
    fake = fake_aws(Answer(200, ITEM), clock=lambda: T, dated=False)
    with pytest.raises(AwsError, match="InvalidSignatureException"):
        await dynamodb(production, fake.url, clock).call("GetItem", BODY)
    assert len(fake.requests) == 1 and clock.offset == 0.0


@given(moment=st.integers(0, 4_000_000_000), usegmt=st.booleans())
def test_http_dates_read_back_to_the_second(moment: int, usegmt: bool) -> None:
    assert http_date(formatdate(moment, usegmt=usegmt)) == moment


def test_the_obsolete_date_forms_are_read_too() -> None:
    assert http_date("Sunday, 06-Nov-94 08:49:37 GMT") == http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert http_date("not a date") is None
