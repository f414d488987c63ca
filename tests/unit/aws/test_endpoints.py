"""Endpoints as boto3 takes them, and which errors may be retried."""

from __future__ import annotations

import pytest
from tollway import aws
from tollway.aws.errors import AwsError


def test_the_service_variable_wins_over_the_global_one_over_the_region() -> None:
    both = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2"}
    assert aws.endpoint("dynamodb", both, "eu-west-1") == "http://127.0.0.1:2"
    assert aws.endpoint("sqs", both, "eu-west-1") == "http://127.0.0.1:1"
    assert aws.endpoint("sqs", {}, "eu-west-1") == "https://sqs.eu-west-1.amazonaws.com"
    assert aws.endpoint("dynamodb", {}, "cn-north-1") == "https://dynamodb.cn-north-1.amazonaws.com.cn"


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (AwsError("ThrottlingException", status=400), True),
        (AwsError("RequestThrottled", status=400), True),
        (AwsError("InternalServerError", status=500), True),
        (AwsError("ConnectionError"), True),
        (AwsError("Timeout"), False),
        (AwsError("ConditionalCheckFailedException", status=400), False),
        (AwsError("AccessDeniedException", status=400), False),
        (AwsError("NoCredentials"), False),
    ],
)
def test_only_errors_a_second_try_can_cure_are_retryable(error: AwsError, retryable: bool) -> None:
    assert error.retryable is retryable
