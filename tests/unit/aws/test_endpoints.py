"""Endpoints as boto3 takes them (variables, config file, partitions, FIPS and dual-stack),
checked against botocore's own endpoint rules; and which errors may be retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.endpoint_provider import EndpointProvider
from botocore.exceptions import EndpointResolutionError
from botocore.loaders import create_loader
from tollway import aws
from tollway.aws.endpoints import regional
from tollway.aws.errors import AwsError

SERVICES = ("dynamodb", "sqs", "secretsmanager")
LOADER = create_loader()
PARTITIONS = LOADER.load_data("partitions")
# Every region botocore names, in every partition (not the "-global" pseudo-regions).
REGIONS = sorted(r for p in PARTITIONS["partitions"] for r in p["regions"] if not r.endswith("-global"))
VARIANTS = [(False, False), (True, False), (False, True), (True, True)]


class Sent(Exception):
    pass


def sent_to(client) -> str:
    """Where a boto3 client sends its first request (its endpoint rules run per request);
    nothing leaves the process."""

    def stop(request, **_) -> None:
        raise Sent(request.url)

    client.meta.events.register("before-send", stop)
    call = {"dynamodb": "list_tables", "sqs": "list_queues", "secretsmanager": "list_secrets"}
    try:
        getattr(client, call[client.meta.service_model.service_name])()
    except Sent as sent:
        return str(sent).rstrip("/")
    raise AssertionError("no request")


def rules(service: str) -> EndpointProvider:
    return EndpointProvider(LOADER.load_service_model(service, "endpoint-rule-set-1"), PARTITIONS)


@pytest.mark.parametrize("service", SERVICES)
def test_every_region_and_variant_is_the_endpoint_botocores_rules_make(service: str) -> None:
    provider = rules(service)
    compared = 0
    for region in [*REGIONS, "xx-future-1"]:  # a region of no known partition: "aws", as botocore
        for fips, dualstack in VARIANTS:
            theirs = provider.resolve_endpoint(Region=region, UseFIPS=fips, UseDualStack=dualstack).url
            ours = regional(service, region, fips=fips, dualstack=dualstack)
            assert ours == theirs, (region, fips, dualstack)
            compared += 1
    assert compared >= 4 * 40


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "https://dynamodb.us-east-1.amazonaws.com"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "https://dynamodb-fips.us-east-1.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "TRUE"}, "https://dynamodb.us-east-1.api.aws"),
        (
            {"AWS_USE_FIPS_ENDPOINT": "True", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "https://dynamodb-fips.us-east-1.api.aws",
        ),
        ({"AWS_USE_FIPS_ENDPOINT": "1"}, "https://dynamodb.us-east-1.amazonaws.com"),  # botocore: not "true"
        ({"AWS_USE_FIPS_ENDPOINT": "false"}, "https://dynamodb.us-east-1.amazonaws.com"),
    ],
)
def test_the_variables_are_read_as_a_boto3_client_reads_them(
    environ: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert sent_to(boto3.session.Session().client("dynamodb", region_name="us-east-1")) == expected
    environ = {**environ, "AWS_CONFIG_FILE": str(tmp_path / "none")}
    assert aws.endpoint("dynamodb", environ, "us-east-1") == expected


def test_the_config_file_forms_are_read_as_boto3_reads_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[default]\nuse_fips_endpoint = true\n\n"
        "[profile dual]\nuse_dualstack_endpoint = true\n\n"
        "[profile both]\nuse_fips_endpoint = true\nuse_dualstack_endpoint = true\n"
    )
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for profile, expected in [
        ("default", "https://sqs-fips.eu-west-1.amazonaws.com"),
        ("dual", "https://sqs.eu-west-1.api.aws"),
        ("both", "https://sqs-fips.eu-west-1.api.aws"),
    ]:
        monkeypatch.setenv("AWS_PROFILE", profile)
        assert sent_to(boto3.session.Session().client("sqs", region_name="eu-west-1")) == expected
        environ = {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": profile}
        assert aws.endpoint("sqs", environ, "eu-west-1") == expected
        # The variable wins over the file, as in botocore.
        plain = expected.replace("sqs-fips", "sqs")
        assert aws.endpoint("sqs", {**environ, "AWS_USE_FIPS_ENDPOINT": "false"}, "eu-west-1") == plain


def test_endpoint_urls_come_from_the_config_file_as_boto3_takes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[default]\nendpoint_url = http://127.0.0.1:1\nservices = local\n\n"
        "[services local]\ndynamodb =\n  endpoint_url = http://127.0.0.1:2\n"
        "secrets_manager =\n  endpoint_url = http://127.0.0.1:3\n"  # botocore's key: snake-case service id
    )
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    environ = {"AWS_CONFIG_FILE": str(config)}
    for service in SERVICES:
        theirs = sent_to(boto3.session.Session().client(service, region_name="us-east-1"))
        assert aws.endpoint(service, environ, "us-east-1") == theirs
    assert [aws.endpoint(s, environ, "us-east-1") for s in SERVICES] == [
        "http://127.0.0.1:2",
        "http://127.0.0.1:1",
        "http://127.0.0.1:3",
    ]
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    ignored = {**environ, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:4"}
    assert aws.endpoint("sqs", ignored, "us-east-1") == "https://sqs.us-east-1.amazonaws.com"
    assert sent_to(boto3.session.Session().client("sqs", region_name="us-east-1")) == (
        "https://sqs.us-east-1.amazonaws.com"
    )


@pytest.mark.parametrize("variable", ["AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"])
def test_fips_or_dualstack_with_a_custom_endpoint_is_refused_as_boto3_refuses_it(
    variable: str, tmp_path: Path
) -> None:
    environ = {variable: "true", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000"}
    environ["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    with pytest.raises(ValueError, match=f"{variable}.*AWS_ENDPOINT_URL_DYNAMODB.*boto3 refuses it too"):
        aws.endpoint("dynamodb", environ, "us-east-1")
    with pytest.raises(EndpointResolutionError):
        rules("dynamodb").resolve_endpoint(
            Region="us-east-1",
            Endpoint="http://127.0.0.1:8000",
            UseFIPS=variable == "AWS_USE_FIPS_ENDPOINT",
            UseDualStack=variable == "AWS_USE_DUALSTACK_ENDPOINT",
        )


def test_the_service_variable_wins_over_the_global_one_over_the_region(tmp_path: Path) -> None:
    none = {"AWS_CONFIG_FILE": str(tmp_path / "none")}
    both = {**none, "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2"}
    assert aws.endpoint("dynamodb", both, "eu-west-1") == "http://127.0.0.1:2"
    assert aws.endpoint("sqs", both, "eu-west-1") == "http://127.0.0.1:1"
    own = {**both, "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:3"}
    assert aws.endpoint("secretsmanager", own, "eu-west-1") == "http://127.0.0.1:3"
    assert aws.endpoint("sqs", none, "eu-west-1") == "https://sqs.eu-west-1.amazonaws.com"
    assert aws.endpoint("dynamodb", none, "cn-north-1") == "https://dynamodb.cn-north-1.amazonaws.com.cn"
    assert aws.endpoint("dynamodb", none, "us-iso-east-1") == "https://dynamodb.us-iso-east-1.c2s.ic.gov"


@pytest.mark.parametrize("region", ["us-east-1.evil.example", "US-EAST-1", "", "us east 1", "-us-east-1"])
def test_a_region_that_is_not_a_host_label_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="not an AWS region"):
        regional("dynamodb", region)


def test_without_a_config_file_no_botocore_is_imported_for_endpoints(tmp_path: Path) -> None:
    environ = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_USE_FIPS_ENDPOINT": "true"}
    plain = {"AWS_CONFIG_FILE": environ["AWS_CONFIG_FILE"]}
    code = (
        "import json, sys; from tollway import aws; "
        f"found = [aws.endpoint(s, {environ!r}, 'us-east-1') for s in {SERVICES!r}]; "
        f"found.append(aws.endpoint('sqs', {plain!r}, 'us-east-1')); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')); "
        "print(json.dumps([found, loaded]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(done.stdout) == [
        [
            "https://dynamodb-fips.us-east-1.amazonaws.com",
            "https://sqs-fips.us-east-1.amazonaws.com",
            "https://secretsmanager-fips.us-east-1.amazonaws.com",
            "https://sqs.us-east-1.amazonaws.com",
        ],
        [],
    ]


def test_a_client_with_fips_and_dualstack_config_agrees_end_to_end(monkeypatch, tmp_path: Path) -> None:
    """The whole boto3 chain (not only the rules) for the three services, both variants."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for service in SERVICES:
        for fips, dualstack in VARIANTS:
            config = Config(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack)
            client = boto3.session.Session().client(service, region_name="us-west-2", config=config)
            assert regional(service, "us-west-2", fips=fips, dualstack=dualstack) == sent_to(client)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (AwsError("ThrottlingException", status=400), True),
        (AwsError("RequestThrottled", status=400), True),
        (AwsError("InternalServerError", status=500), True),
        (AwsError("ConnectionError"), True),
        (AwsError("CRC32Mismatch", status=200), True),
        (AwsError("AWS.SimpleQueueService.Whatever", status=400, shape="RequestThrottled"), True),
        (AwsError("Timeout"), False),
        (AwsError("ConditionalCheckFailedException", status=400), False),
        (AwsError("AccessDeniedException", status=400), False),
        (AwsError("InvalidSignatureException", status=400), False),
        (AwsError("NoCredentials"), False),
    ],
)
def test_only_errors_a_second_try_can_cure_are_retryable(error: AwsError, retryable: bool) -> None:
    assert error.retryable is retryable
