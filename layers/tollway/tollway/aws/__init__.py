"""Tollway's one way to AWS: the session, endpoints the standard boto3 way, and the clients.

    tollway.aws            the boto3 session and clients for tools (CLI, reports, the usage
                           function); endpoints, credentials and region for the lean callers
    tollway.aws.errors     AwsError(code, body, status) and its `retryable` flag
    tollway.aws.protocol   the AWS JSON 1.0 protocol: SigV4 for its one request shape, answers
    tollway.aws.dynamodb   DynamoCaller (async, on the shared HTTP transport, within a
                           deadline) for the request path; BotoCaller (blocking) for tools
    tollway.aws.sqs        LeanSqs: SendMessageBatch on one keep-alive connection

`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are read by botocore itself for boto3
clients, and by `endpoint` (the same variables, the same order) for the lean callers, so the
same code talks to AWS, the dev emulator and `sam local` without a branch. boto3 is imported
on first use, not with this package: the request path needs it only where the environment
does not hold the credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


def endpoint(service: str, environ: Mapping[str, str], region_name: str) -> str:
    """The endpoint boto3 would use for `service` ("dynamodb", "sqs", ...): the service's own
    variable, then the global one, then the regional AWS endpoint."""
    for variable in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
        if environ.get(variable):
            return environ[variable]
    suffix = "amazonaws.com.cn" if region_name.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region_name}.{suffix}"


# Credentials and region for the lean callers, without importing boto3 when the environment
# already says them (Lambda does: importing boto3 for its chain costs 130-170 ms of a cold
# start here, docs/bench.md row 5). Anything else goes to botocore's chain, imported only then.


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


def credentials(environ: Mapping[str, str]) -> Any:
    """The credentials botocore's chain would find, or None when it finds none."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret and not environ.get("AWS_CREDENTIAL_EXPIRATION"):
        # botocore's order: the older name first.
        token = environ.get("AWS_SECURITY_TOKEN") or environ.get("AWS_SESSION_TOKEN") or None
        return StaticCredentials(key, secret, token)
    import botocore.session

    return botocore.session.get_session().get_credentials()


def region(environ: Mapping[str, str]) -> str:
    """`AWS_DEFAULT_REGION` (botocore's variable; Lambda sets it), then `AWS_REGION` (Lambda
    sets it too; botocore ignores it), else botocore's config (profiles)."""
    name = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION")
    if not name:
        import botocore.session

        name = botocore.session.get_session().get_config_variable("region")
    if not name:
        raise ValueError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
    return name
