"""Tollway's one way to AWS: the session, endpoints the standard boto3 way, and the clients.

    tollway.aws            the boto3 session and clients for tools (CLI, reports, the usage
                           function); credentials and region for the lean callers
    tollway.aws.endpoints  the endpoint boto3 would call (variables, config file, partitions,
                           FIPS and dual-stack)
    tollway.aws.errors     AwsError(code, body, status) and its `retryable` flag
    tollway.aws.clock      AwsClock: the signing time, corrected when AWS says it is skewed
    tollway.aws.protocol   the AWS JSON 1.0/1.1 protocols: SigV4 for their one request shape,
                           answers
    tollway.aws.dynamodb   DynamoCaller (async, on the shared HTTP transport, within a
                           deadline, answers checked against `x-amz-crc32`) for the request
                           path (tollway.tools.boto.BotoCaller: the same calls through boto3,
                           blocking, for tools)
    tollway.aws.blocking   BlockingCaller: one service's calls on one kept connection,
                           synchronous (the usage sender's thread, the init)
    tollway.aws.sqs        LeanSqs: SendMessageBatch
    tollway.aws.secrets    get_secret_value: Secrets Manager's GetSecretValue, once at init

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

from tollway.aws.endpoints import endpoint

__all__ = ["client", "credentials", "endpoint", "region", "session"]

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
