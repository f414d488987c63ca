"""The key secret without boto3: GetSecretValue (AWS JSON 1.1) against the moto server, and
against a loopback Secrets Manager that fails, throttles or doubts the clock."""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path

import boto3
import orjson
import pytest
from botocore.credentials import Credentials
from tollway.auth.keys import KeyMac
from tollway.auth.secret import load_key_mac
from tollway.aws.clock import AwsClock
from tollway.aws.errors import AwsError
from tollway.aws.protocol import JSON_11
from tollway.aws.secrets import get_secret_value

from tests.unit.aws.fake_aws import Answer
from tests.unit.aws.test_dynamodb import botocore_authorization

T = 1_796_000_000.0


def local(url: str, **more: str) -> dict[str, str]:
    """The test process's credentials and region, `url` as the Secrets Manager endpoint."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    return {**base, "AWS_ENDPOINT_URL_SECRETS_MANAGER": url, **more}


def test_the_secret_boto3_reads_is_the_one_read_here(aws, moto_url: str) -> None:
    secret_id = aws["TOLLWAY_KEY_SECRET_ID"]
    theirs = boto3.client("secretsmanager", endpoint_url=moto_url).get_secret_value(SecretId=secret_id)
    assert get_secret_value(secret_id, os.environ) == theirs["SecretString"].encode("utf-8")


def test_a_binary_secret_is_its_bytes(aws, moto_url: str) -> None:
    value = bytes(range(256))
    boto3.client("secretsmanager", endpoint_url=moto_url).create_secret(Name="binary", SecretBinary=value)
    assert get_secret_value("binary", os.environ) == value


def test_a_missing_secret_is_the_services_error(aws) -> None:
    with pytest.raises(AwsError) as failed:
        get_secret_value("no-such-secret", os.environ)
    assert failed.value.code == "ResourceNotFoundException" and not failed.value.retryable


def test_the_request_is_json_1_1_signed_as_botocore_signs_it(fake_aws) -> None:
    fake = fake_aws(Answer(200, {"Name": "k", "SecretString": "v" * 32}), clock=lambda: T)
    arn = "arn:aws:secretsmanager:eu-west-1:1:secret:k"
    assert get_secret_value(arn, local(fake.url), clock=AwsClock(lambda: T)) == b"v" * 32
    [request] = fake.requests
    assert request.headers["x-amz-target"] == "secretsmanager.GetSecretValue"
    assert request.headers["content-type"] == JSON_11
    assert orjson.loads(request.body) == {"SecretId": arn}
    environ = local(fake.url)
    credentials = Credentials(
        environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"], environ["AWS_SESSION_TOKEN"]
    )
    theirs = botocore_authorization(
        fake.url,
        environ["AWS_DEFAULT_REGION"],
        credentials,
        "secretsmanager.GetSecretValue",
        request.body,
        time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(T)),
        "secretsmanager",
        JSON_11,
    )
    assert request.headers["authorization"] == theirs["authorization"]
    assert "/secretsmanager/aws4_request" in request.headers["authorization"]


def test_the_services_own_variable_wins_over_the_global_one(fake_aws) -> None:
    fake = fake_aws(Answer(200, {"SecretString": "s" * 20}))
    with socket.socket() as placeholder:  # nothing listens here
        placeholder.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{placeholder.getsockname()[1]}"
    assert get_secret_value("k", local(fake.url, AWS_ENDPOINT_URL=closed)) == b"s" * 20


def test_throttling_and_5xx_are_tried_three_times_in_all(fake_aws) -> None:
    throttled = Answer(400, {"__type": "ThrottlingException"})
    failing = Answer(500, {"__type": "InternalServiceError"})
    fake = fake_aws(throttled, failing, Answer(200, {"SecretString": "x" * 20}))
    pauses: list[int] = []
    assert get_secret_value("k", local(fake.url), pause=lambda n: pauses.append(n) or 0.0) == b"x" * 20
    assert len(fake.requests) == 3 and pauses == [1, 2]

    always = fake_aws(failing)
    with pytest.raises(AwsError, match="InternalServiceError"):
        get_secret_value("k", local(always.url), pause=lambda n: 0.0)
    assert len(always.requests) == 3


@pytest.mark.parametrize("code", ["AccessDeniedException", "DecryptionFailure", "ResourceNotFoundException"])
def test_a_refusal_is_not_retried(fake_aws, code: str) -> None:
    fake = fake_aws(Answer(400, {"__type": code, "Message": "no"}))
    with pytest.raises(AwsError, match=code):
        get_secret_value("k", local(fake.url), pause=lambda n: 0.0)
    assert len(fake.requests) == 1


def test_a_skewed_clock_is_corrected_for_the_secret_too(fake_aws) -> None:
    clock = AwsClock(lambda: T - 7200)
    fake = fake_aws(Answer(200, {"SecretString": "y" * 20}), clock=lambda: T)
    assert get_secret_value("k", local(fake.url), clock=clock, pause=lambda n: 0.0) == b"y" * 20
    assert len(fake.requests) == 2 and abs(clock() - T) <= 1


@pytest.mark.parametrize("answer", [{}, {"SecretString": 7}, {"SecretBinary": None}])
def test_an_answer_without_a_value_is_a_bad_response(fake_aws, answer: dict) -> None:
    fake = fake_aws(Answer(200, answer))
    with pytest.raises(AwsError, match="BadResponse"):
        get_secret_value("k", local(fake.url))


def test_the_key_mac_is_built_from_it(fake_aws) -> None:
    binary = Answer(200, {"SecretBinary": base64.b64encode(b"k" * 32).decode()})
    fake = fake_aws(binary, Answer(200, {"SecretString": "short"}))
    assert isinstance(load_key_mac("k", local(fake.url)), KeyMac)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        load_key_mac("k", local(fake.url))


def test_fips_with_a_custom_secrets_endpoint_is_refused_before_any_request(fake_aws, tmp_path: Path) -> None:
    fake = fake_aws()
    environ = local(fake.url, AWS_USE_FIPS_ENDPOINT="true", AWS_CONFIG_FILE=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        get_secret_value("k", environ)
    assert fake.requests == []
