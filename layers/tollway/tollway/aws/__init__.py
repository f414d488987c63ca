"""Tollway's one way to AWS: the session, endpoints the standard boto3 way, and the clients.

    tollway.aws            the boto3 session (credential chain, region), boto3 clients for
                           tools (CLI, reports, the usage function), endpoints
    tollway.aws.errors     AwsError(code, body, status) and its `retryable` flag
    tollway.aws.protocol   the AWS JSON 1.0 protocol: SigV4 for its one request shape, answers
    tollway.aws.dynamodb   DynamoCaller (async, on the shared HTTP transport, within a
                           deadline) for the request path; BotoCaller (blocking) for tools
    tollway.aws.sqs        LeanSqs: SendMessageBatch on one keep-alive connection

`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are read by botocore itself for boto3
clients, and by `endpoint` (the same variables, the same order) for the lean callers, so the
same code talks to AWS, the dev emulator and `sam local` without a branch. boto3 is imported
on first use, not with this package: the request path needs only its credential chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config


@cache
def session() -> boto3.session.Session:
    import boto3

    return boto3.session.Session()


def hot_path_config() -> Config:
    """Short timeouts and few retries for a boto3 client a request may wait on (discovery)."""
    from botocore.config import Config

    return Config(
        connect_timeout=0.5,
        read_timeout=1,
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=64,
        tcp_keepalive=True,
    )


def client(service: str, config: Config | None | Literal["hot_path"] = "hot_path") -> Any:
    """A new boto3 client, by default with `hot_path_config()` (None: botocore's defaults, for
    tools); callers keep it for the life of the container."""
    chosen = hot_path_config() if config == "hot_path" else config
    return session().client(service, config=chosen)


def region() -> str:
    name = session().region_name
    if not name:
        raise ValueError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
    return name


def endpoint(service: str, environ: Mapping[str, str], region_name: str) -> str:
    """The endpoint boto3 would use for `service` ("dynamodb", "sqs", ...): the service's own
    variable, then the global one, then the regional AWS endpoint."""
    for variable in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
        if environ.get(variable):
            return environ[variable]
    suffix = "amazonaws.com.cn" if region_name.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region_name}.{suffix}"


def credentials() -> Any:
    """The credential chain's credentials (refreshable ones refresh themselves), or None.

    Callers freeze them per call (`get_frozen_credentials()`), so a role's rotating keys and
    a SnapStart restore both stay valid."""
    return session().get_credentials()
