"""The lean DynamoDB caller: its SigV4 against botocore's, its error mapping and retries."""

from __future__ import annotations

import calendar
import socket
import time
import zlib
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ChecksumError
from botocore.retryhandler import CRC32Checker
from hypothesis import given, settings
from hypothesis import strategies as st
from tollway.aws.dynamodb import DynamoCaller, _crc32_matches
from tollway.aws.errors import AwsError, applied
from tollway.aws.protocol import CONTENT_TYPE, SigV4, canonical_host
from tollway.transport.exchange import AiohttpExchanger, Exchanger

from tests.exchangers import HttpxExchanger
from tests.unit.aws.fake_aws import Answer, FakeAws, late

CREDENTIALS = Credentials("AK", "SK", "TOKEN")
BODY = orjson.dumps({"TableName": "QuotaTable", "Key": {"pk": {"S": "D2026-11-27#0#acme"}}})


def botocore_authorization(
    endpoint: str,
    region: str,
    credentials: Credentials,
    target: str,
    body: bytes,
    amz_date: str,
    service: str = "dynamodb",
    content_type: str = CONTENT_TYPE,
) -> dict[str, str]:
    """What botocore's SigV4Auth.add_auth produces for the request at `amz_date`.

    The steps of add_auth, with its clock replaced by a fixed timestamp.
    """
    request = AWSRequest(
        method="POST",
        url=endpoint.rstrip("/") + "/",
        data=body,
        headers={"Content-Type": content_type, "X-Amz-Target": target},
    )
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(credentials, service, region)
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return {name.lower(): value for name, value in request.headers.items()}


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://dynamodb.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"),
        ("https://dynamodb.eu-west-1.amazonaws.com:443", "dynamodb.eu-west-1.amazonaws.com"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://LocalHost:80/", "localhost"),
    ],
)
def test_signature_is_botocores_across_days_and_credentials(endpoint: str, host: str) -> None:
    region = "eu-west-1"
    signer = SigV4(region, canonical_host(endpoint))
    assert signer.host == host
    cases = [  # one signer throughout: its cached signing key must follow the date and the secret
        ("2026-11-27T23:59:59", Credentials("AKIDEXAMPLE", "secret-one", "session-token/with+chars=")),
        ("2026-11-28T00:00:00", Credentials("AKIDEXAMPLE", "secret-one", "session-token/with+chars=")),
        ("2026-11-28T00:00:01", Credentials("AKIDOTHER", "secret-two", None)),
        ("2026-11-28T12:00:00", Credentials("AKIDEXAMPLE", "secret-one", "")),
    ]
    for moment, credentials in cases:
        now = calendar.timegm(time.strptime(moment, "%Y-%m-%dT%H:%M:%S"))
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        for operation in ("UpdateItem", "GetItem"):
            target = f"DynamoDB_20120810.{operation}"
            ours = dict(signer.headers(BODY, target, credentials.get_frozen_credentials(), now + 0.75))
            theirs = botocore_authorization(endpoint, region, credentials, target, BODY, amz_date)
            assert ours["authorization"] == theirs["authorization"], (moment, operation)
            assert ours["x-amz-date"] == theirs["x-amz-date"] == amz_date
            assert ours.get("x-amz-security-token") == theirs.get("x-amz-security-token")
            assert ours["host"] == host and ours["content-type"] == CONTENT_TYPE


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [("https://sqs.us-east-1.amazonaws.com", "us-east-1"), ("http://127.0.0.1:5000", "eu-west-1")],
)
def test_an_sqs_signature_is_botocores(endpoint: str, region: str) -> None:
    """The same signer, service "sqs": SQS speaks the same JSON 1.0 protocol (tollway.aws.sqs)."""
    body = orjson.dumps(
        {
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/UsageQueue",
            "Entries": [{"Id": "0", "MessageBody": '{"event_id": "e-1", "note": "\\u00e9 \\n"}'}],
        }
    )
    signer = SigV4(region, canonical_host(endpoint), service="sqs")
    dynamodb = SigV4(region, canonical_host(endpoint))
    target = "AmazonSQS.SendMessageBatch"
    now = calendar.timegm(time.strptime("2026-11-28T00:00:00", "%Y-%m-%dT%H:%M:%S"))
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    for credentials in (Credentials("AKIDEXAMPLE", "secret", "token+/="), Credentials("AKID", "other", None)):
        frozen = credentials.get_frozen_credentials()
        ours = dict(signer.headers(body, target, frozen, now))
        theirs = botocore_authorization(endpoint, region, credentials, target, body, amz_date, "sqs")
        assert ours["authorization"] == theirs["authorization"]
        assert f"/{region}/sqs/aws4_request" in ours["authorization"]
        assert ours["x-amz-target"] == target and ours["content-type"] == CONTENT_TYPE
        assert dict(dynamodb.headers(body, target, frozen, now))["authorization"] != ours["authorization"]


def test_a_changed_body_changes_the_signature() -> None:
    signer = SigV4("us-east-1", "127.0.0.1:5000")
    frozen = Credentials("AK", "SK").get_frozen_credentials()
    one = dict(signer.headers(BODY, "DynamoDB_20120810.GetItem", frozen, 1_795_000_000))
    two = dict(signer.headers(BODY + b" ", "DynamoDB_20120810.GetItem", frozen, 1_795_000_000))
    assert one["authorization"] != two["authorization"]


class Rotating:
    """Credentials whose frozen value changes on every read, as refreshed ones do over time."""

    def __init__(self) -> None:
        self.reads = 0

    def get_frozen_credentials(self):
        self.reads += 1
        return Credentials(f"AK{self.reads}", "SK", None).get_frozen_credentials()


@pytest.fixture
def scripted(fake_aws) -> Callable[..., FakeAws]:
    """`scripted((status, JSON or bytes), ...)`: a DynamoDB on loopback answering in that
    order (the last answer repeats), recording what it receives."""
    return lambda *answers: fake_aws(*(Answer(status, body) for status, body in answers))


@pytest.fixture
async def caller_for() -> AsyncIterator[Callable[..., DynamoCaller]]:
    """`caller_for(service, **options)`: a caller on the container's exchanger, aimed at it."""
    exchanger = AiohttpExchanger()

    def make(service: FakeAws, **options) -> DynamoCaller:
        credentials = options.pop("credentials", CREDENTIALS)
        return DynamoCaller(exchanger, service.url, "us-east-1", credentials, pause=lambda: 0.0, **options)

    yield make
    await exchanger.close()


def fault(code: str) -> dict[str, str]:
    return {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}


async def test_a_call_is_one_signed_post_and_returns_the_json(caller_for, scripted) -> None:
    script = scripted((200, {"Attributes": {"used": {"N": "1"}}}))
    caller = caller_for(script)
    assert await caller.call("UpdateItem", BODY) == {"Attributes": {"used": {"N": "1"}}}
    [request] = script.requests
    assert request.path == "/"
    assert request.headers["x-amz-target"] == "DynamoDB_20120810.UpdateItem"
    assert request.headers["content-type"] == "application/x-amz-json-1.0"
    assert request.headers["x-amz-security-token"] == "TOKEN"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
    assert request.body == BODY


async def test_credentials_are_frozen_for_every_call(caller_for, scripted) -> None:
    script = scripted((200, {}), (200, {}))
    credentials = Rotating()
    caller = caller_for(script, credentials=credentials)
    await caller.call("GetItem", BODY)
    await caller.call("GetItem", BODY)
    keys = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in script.requests]
    assert keys == ["AK1", "AK2"]


async def test_a_failed_condition_carries_the_old_item_and_is_never_retried(caller_for, scripted) -> None:
    old = {"Item": {"pk": {"S": "x"}, "used": {"N": "10"}}}
    script = scripted((400, {**fault("ConditionalCheckFailedException"), **old}), (200, {}))
    caller = caller_for(script)
    with pytest.raises(AwsError) as failed:
        await caller.call("UpdateItem", BODY)
    assert failed.value.code == "ConditionalCheckFailedException"
    assert failed.value.status == 400 and failed.value.body["Item"] == old["Item"]
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, fault("ThrottlingException"), "ThrottlingException"),
        (400, fault("ProvisionedThroughputExceededException"), "ProvisionedThroughputExceededException"),
        (500, fault("InternalServerError"), "InternalServerError"),
        (503, b"<html>Service Unavailable</html>", "InternalServerError"),
        (502, b"", "InternalServerError"),
    ],
)
async def test_throttling_and_5xx_are_retried_once(caller_for, scripted, status, body, code) -> None:
    recovers = scripted((status, body), (200, {"Item": {}}))
    assert await caller_for(recovers).call("GetItem", BODY) == {"Item": {}}
    assert len(recovers.requests) == 2

    persists = scripted((status, body), (status, body), (200, {}))
    with pytest.raises(AwsError) as failed:
        await caller_for(persists).call("GetItem", BODY)
    assert (failed.value.code, failed.value.status) == (code, status)
    assert len(persists.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, fault("ResourceNotFoundException"), "ResourceNotFoundException"),
        (400, fault("ValidationException"), "ValidationException"),
        (400, {"__type": "AccessDeniedException"}, "AccessDeniedException"),  # no namespace
        (403, b"forbidden", "BadResponse"),
        (200, b"not json", "BadResponse"),
        (200, b"[1, 2]", "BadResponse"),
    ],
)
async def test_client_errors_and_garbage_are_not_retried(caller_for, scripted, status, body, code) -> None:
    script = scripted((status, body), (200, {}))
    with pytest.raises(AwsError) as failed:
        await caller_for(script).call("GetItem", BODY)
    assert failed.value.code == code and failed.value.status == status
    assert len(script.requests) == 1


async def test_missing_credentials_fail_the_call(caller_for, scripted) -> None:
    script = scripted((200, {}))
    with pytest.raises(AwsError, match="NoCredentials"):
        await caller_for(script, credentials=None).call("GetItem", BODY)
    assert script.requests == []


class Counting:
    """An exchanger counting the requests it sends."""

    def __init__(self, inner: Exchanger) -> None:
        self.inner = inner
        self.requests = 0

    async def request(self, *args, **options):
        self.requests += 1
        return await self.inner.request(*args, **options)


@pytest.fixture(params=["aiohttp", "httpx"])
async def counted(request) -> AsyncIterator[Counting]:
    """The production exchanger, and one on httpx's own transport that maps errors
    differently (the caller's handling must not depend on either); counted."""
    exchanger = AiohttpExchanger() if request.param == "aiohttp" else HttpxExchanger()
    yield Counting(exchanger)
    await exchanger.close()


async def test_a_refused_connection_is_retried_once_then_reported(counted) -> None:
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    caller = DynamoCaller(counted, f"http://127.0.0.1:{port}", "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    with pytest.raises(AwsError, match="ConnectionError"):
        await caller.call("GetItem", BODY)
    assert counted.requests == 2


async def test_an_unanswered_call_times_out_without_a_retry(counted) -> None:
    # A listening socket that never answers: the request is written, no reply ever comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        caller = DynamoCaller(counted, endpoint, "us-east-1", CREDENTIALS, timeout=0.2, pause=lambda: 0.0)
        started = time.monotonic()
        with pytest.raises(AwsError, match="Timeout"):
            await caller.call("UpdateItem", BODY)
    assert counted.requests == 1
    assert time.monotonic() - started < 1.0


async def test_a_call_through_aiohttp_directly_is_the_same_post(serve) -> None:
    seen: list[dict] = []

    async def dynamodb(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        seen.append({"path": scope["path"], "headers": dict(scope["headers"]), "body": message["body"]})
        answer = orjson.dumps({"Attributes": {"used": {"N": "1"}}})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-amz-json-1.0")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    exchanger = AiohttpExchanger()
    try:
        caller = DynamoCaller(exchanger, serve(dynamodb), "us-east-1", CREDENTIALS, pause=lambda: 0.0)
        assert await caller.call("UpdateItem", BODY) == {"Attributes": {"used": {"N": "1"}}}
    finally:
        await exchanger.close()
    [request] = seen
    assert request["path"] == "/" and request["body"] == BODY
    assert request["headers"][b"x-amz-target"] == b"DynamoDB_20120810.UpdateItem"
    assert request["headers"][b"x-amz-security-token"] == b"TOKEN"
    assert request["headers"][b"authorization"].startswith(b"AWS4-HMAC-SHA256 Credential=AK/")


# ---- deadlines -------------------------------------------------------------------------


async def test_a_silent_dynamodb_is_given_only_the_time_left(counted) -> None:
    """The attempt's own `timeout` (1 s) does not count: the deadline, 0.25 s away, does."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        caller = DynamoCaller(counted, endpoint, "us-east-1", CREDENTIALS, timeout=1.0, pause=lambda: 0.0)
        started = time.monotonic()
        with pytest.raises(AwsError, match="Timeout"):
            await caller.call("UpdateItem", BODY, deadline=started + 0.25)
    assert counted.requests == 1
    assert time.monotonic() - started < 0.7


async def test_a_call_after_its_deadline_is_not_sent(caller_for, scripted) -> None:
    script = scripted((200, {}))
    caller = caller_for(script)
    with pytest.raises(AwsError, match="Timeout") as failed:
        await caller.call("GetItem", BODY, deadline=time.monotonic() - 0.001)
    assert not failed.value.retryable
    assert script.requests == []


async def test_no_retry_when_the_deadline_leaves_no_time_for_it(caller_for, scripted) -> None:
    clock = [100.0]
    script = scripted((500, fault("InternalServerError")), (200, {}))
    caller = caller_for(script, monotonic=lambda: clock[0])
    with pytest.raises(AwsError, match="InternalServerError"):
        await caller.call("GetItem", BODY, deadline=100.01)  # 10 ms left: less than one attempt
    assert len(script.requests) == 1
    # With time left, the same failure is retried once.
    script = scripted((500, fault("InternalServerError")), (200, {"Item": {}}))
    caller = caller_for(script, monotonic=lambda: clock[0])
    assert await caller.call("GetItem", BODY, deadline=101.0) == {"Item": {}}
    assert len(script.requests) == 2


# ---- x-amz-crc32 -------------------------------------------------------------------------

ITEM = {"Attributes": {"used": {"N": "7"}}}
DAMAGED = orjson.dumps({"Attributes": {"used": {"N": "0"}}})  # what a flipped bit could read as


@pytest.fixture
async def production() -> AsyncIterator[Exchanger]:
    """The container's exchanger, as on Lambda."""
    exchanger = AiohttpExchanger()
    yield exchanger
    await exchanger.close()


def checked(answer: Answer) -> Answer:
    """`answer` with the x-amz-crc32 of another body: the one DynamoDB sent before the damage."""
    return Answer(answer.status, DAMAGED, answer.headers, crc32=str(zlib.crc32(answer.encoded())))


async def test_an_answer_that_fails_its_crc32_is_never_read_and_a_read_is_asked_again(
    fake_aws, production
) -> None:
    fake = fake_aws(checked(Answer(200, ITEM)), Answer(200, ITEM, crc32=True))
    caller = DynamoCaller(production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    assert await caller.call("GetItem", BODY) == ITEM
    assert len(fake.requests) == 2 and fake.requests[0].body == fake.requests[1].body == BODY


async def test_a_crc32_that_keeps_failing_is_an_error_not_a_counter(fake_aws, production) -> None:
    fake = fake_aws(checked(Answer(200, ITEM)))
    caller = DynamoCaller(production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    with pytest.raises(AwsError) as failed:
        await caller.call("GetItem", BODY)
    assert (failed.value.code, failed.value.status, failed.value.body) == ("CRC32Mismatch", 200, {})
    assert failed.value.retryable and len(fake.requests) == 2  # the caller's one retry, no more


@pytest.mark.parametrize("operation", ["UpdateItem", "PutItem", "DeleteItem", "TransactWriteItems"])
async def test_a_write_answered_200_is_never_sent_again_whatever_became_of_its_answer(
    fake_aws, production, operation
) -> None:
    """DynamoDB carried it out: sent again, an ADD (a request's count) would count twice."""
    fake = fake_aws(checked(Answer(200, ITEM)), Answer(200, ITEM, crc32=True))
    caller = DynamoCaller(production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    with pytest.raises(AwsError) as failed:
        await caller.call(operation, BODY)
    assert applied(failed.value) and len(fake.requests) == 1


async def test_a_damaged_failed_condition_is_asked_again_for_the_true_old_item(fake_aws, production) -> None:
    """The old item of a failed condition is a counter too (which limit was hit)."""
    refused = Answer(400, {**fault("ConditionalCheckFailedException"), "Item": {"used": {"N": "10"}}})
    fake = fake_aws(checked(refused), Answer(refused.status, refused.body, crc32=True))
    caller = DynamoCaller(production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    with pytest.raises(AwsError) as failed:
        await caller.call("UpdateItem", BODY)
    assert failed.value.code == "ConditionalCheckFailedException"
    assert failed.value.body["Item"] == {"used": {"N": "10"}} and len(fake.requests) == 2


@pytest.mark.parametrize("header", ["", "abc", "-1", "0x1f", "1.5"])
async def test_a_crc32_header_that_is_not_a_number_fails_the_check(fake_aws, production, header) -> None:
    fake = fake_aws(Answer(200, ITEM, crc32=header or " "))
    caller = DynamoCaller(production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    with pytest.raises(AwsError, match="CRC32Mismatch"):
        await caller.call("GetItem", BODY)


async def test_without_the_header_the_answer_is_read_as_botocore_reads_it(fake_aws, production) -> None:
    fake = fake_aws(Answer(200, ITEM))
    caller = DynamoCaller(production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    assert await caller.call("GetItem", BODY) == ITEM and len(fake.requests) == 1


async def test_no_crc32_retry_when_the_deadline_leaves_no_time(fake_aws, production) -> None:
    fake = fake_aws(checked(Answer(200, ITEM)), Answer(200, ITEM, crc32=True))
    caller = DynamoCaller(
        production, fake.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0, monotonic=late(100.0, 104.99)
    )
    with pytest.raises(AwsError, match="CRC32Mismatch"):
        await caller.call("GetItem", BODY, deadline=105.0)  # 10 ms left after the first attempt
    assert len(fake.requests) == 1


@settings(max_examples=300, deadline=None)
@given(
    content=st.binary(max_size=64),
    header=st.one_of(st.integers(0, 2**32 - 1).map(str), st.text(max_size=12)),
    exact=st.booleans(),
)
def test_the_check_agrees_with_botocores_crc32_checker(content: bytes, header: str, exact: bool) -> None:
    """botocore's legacy checker raises ChecksumError on a mismatch (its standard mode retries
    the same), and fails the call where `int(header)` does not parse: both refused here."""
    if exact:
        header = f" {zlib.crc32(content)}"
    response = SimpleNamespace(headers={"x-amz-crc32": header}, content=content)
    try:
        CRC32Checker("x-amz-crc32")._check_response(1, (response, {}))
        botocore_accepts = True
    except (ChecksumError, ValueError):
        botocore_accepts = False
    assert _crc32_matches(content, header) is botocore_accepts
    assert botocore_accepts or not exact


async def test_moto_checksums_its_answers_and_the_caller_accepts_them(moto_url: str, production) -> None:
    """The emulator sends x-amz-crc32 as DynamoDB does: the check runs on every test's calls."""
    signer = SigV4("us-east-1", canonical_host(moto_url))
    target = "DynamoDB_20120810.ListTables"
    headers = signer.headers(b"{}", target, CREDENTIALS.get_frozen_credentials(), time.time())
    answer = httpx.post(moto_url, content=b"{}", headers=headers)
    assert int(answer.headers["x-amz-crc32"]) == zlib.crc32(answer.content)
    caller = DynamoCaller(production, moto_url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
    assert "TableNames" in await caller.call("ListTables", b"{}")
