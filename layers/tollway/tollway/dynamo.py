"""DynamoDB's JSON protocol over the container's shared HTTP client: one signed POST per call.

Why not botocore on the request path: its generic machinery (event hooks, parameter
validation, serialization, signing, parsing) costs more CPU per `UpdateItem` than a naive
proxy spends on a whole request (docs/quota.md has the numbers), and its call blocks the
event loop for the round trip. A call here is a body the caller already serialized, SigV4 over
the one request shape DynamoDB needs, one POST through the container's `Exchanger`
(`upstream/exchange.py`: its pooled keep-alive connections, aiohttp directly in production)
and one orjson parse.

    DynamoError(code, body, status)
        code: the `__type` after '#'   ConditionalCheckFailedException, ThrottlingException,
                                       ProvisionedThroughputExceededException,
                                       ResourceNotFoundException, ...
              "InternalServerError"    an HTTP 5xx without a `__type`
              "BadResponse"            any other answer that is not DynamoDB's JSON
              "ConnectionError"        could not connect (in time), or the connection broke
              "Timeout"                connected, but no answer within the attempt's timeout
              "NoCredentials"          the credential chain found nothing

One retry at most, after a short jittered pause: for throttling, 5xx and connection errors.
Never for a failed condition or another client error (the answer would be the same), nor
after a read timeout (a second wait would spend the request's own deadline). A connection
that breaks after the write reached DynamoDB can make the retry count a request twice:
counters then err towards rejecting, never towards admitting.

Endpoint, region and credentials are read from a boto3 client (`DynamoCaller.from_client`),
so `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` and the credential chain work exactly
as boto3 reads them; credentials are frozen per call, so refreshable ones stay valid.
`BotoCaller` makes the same calls through botocore (blocking): for tools, not the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from tollway.upstream.client import exchanger_for
from tollway.upstream.exchange import ExchangeError, Exchanger, ReadTimeout

API_VERSION = "DynamoDB_20120810"
CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLING = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)


class DynamoError(Exception):
    """DynamoDB refused or could not be asked; `body` is its JSON answer (`Item` for ALL_OLD)."""

    def __init__(self, code: str, body: dict[str, Any] | None = None, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.body = body if body is not None else {}
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.code in THROTTLING or self.code == "ConnectionError" or (self.status or 0) >= 500


class Caller(Protocol):
    async def call(self, operation: str, body: bytes) -> dict[str, Any]: ...


class FrozenCredentials(Protocol):
    access_key: str
    secret_key: str
    token: str | None


class Credentials(Protocol):
    def get_frozen_credentials(self) -> FrozenCredentials: ...


class SigV4:
    """AWS Signature Version 4 for the AWS JSON 1.0 protocol's one request shape: POST to
    `path`, no query, a JSON body, the operation in `x-amz-target`. DynamoDB and SQS
    (`service="sqs"`, tollway.usage.sqs) both speak it, with the same content-type.

    Signed headers: content-type;host;x-amz-date;x-amz-security-token (with a session
    token);x-amz-target — what botocore's SigV4Auth signs for the same request.
    """

    def __init__(self, region: str, host: str, path: str = "/", service: str = "dynamodb") -> None:
        self.region = region
        self.host = host
        self.path = path
        self.service = service
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (date, secret, signing key)

    def headers(
        self, body: bytes, target: str, credentials: FrozenCredentials, now: float
    ) -> list[tuple[str, str]]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        date = amz_date[:8]
        token = credentials.token
        if token:
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            token_line = f"x-amz-security-token:{token}\n"
        else:
            signed = "content-type;host;x-amz-date;x-amz-target"
            token_line = ""
        canonical = (
            f"POST\n{self.path}\n\ncontent-type:{CONTENT_TYPE}\nhost:{self.host}\nx-amz-date:{amz_date}\n"
            f"{token_line}x-amz-target:{target}\n\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(date, credentials.secret_key), to_sign.encode(), "sha256")
        headers = [
            ("host", self.host),
            ("content-type", CONTENT_TYPE),
            ("x-amz-date", amz_date),
            ("x-amz-target", target),
            (
                "authorization",
                f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature.hexdigest()}",
            ),
        ]
        if token:
            headers.append(("x-amz-security-token", token))
        return headers

    def _signing_key(self, date: str, secret: str) -> bytes:
        # Four HMACs that change once a day (or when the credentials rotate): derive them once.
        cached_date, cached_secret, key = self._key
        if cached_date != date or cached_secret != secret:
            key = f"AWS4{secret}".encode()
            for part in (date, self.region, self.service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = (date, secret, key)
        return key


def canonical_host(endpoint: str) -> str:
    """The Host header botocore would sign: the endpoint's host, its port unless the default."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is None or parts.port == {"http": 80, "https": 443}.get(parts.scheme):
        return host
    return f"{host}:{parts.port}"


def _pause() -> float:
    return random.uniform(0.01, 0.05)


class DynamoCaller:
    def __init__(
        self,
        exchanger: Exchanger,
        endpoint: str,
        region: str,
        credentials: Credentials | None,
        *,
        timeout: float = 1.0,
        pause: Callable[[], float] = _pause,
        now: Callable[[], float] = time.time,
    ) -> None:
        path = urlsplit(endpoint).path.rstrip("/") + "/"
        self.exchanger = exchanger
        self.endpoint = endpoint
        self.credentials = credentials
        self.signer = SigV4(region, canonical_host(endpoint), path)
        self.pause = pause
        self.now = now
        self._url = endpoint.rstrip("/") + "/"
        self.timeout = timeout

    @classmethod
    def from_client(cls, http: httpx.AsyncClient, client: Any, **options: Any) -> DynamoCaller:
        """Endpoint, region and credentials exactly as `client` (a boto3 DynamoDB client) uses
        them; requests through `http`'s exchanger (`upstream/client.py`)."""
        # The signer's credentials are the ones the client itself signs with, whichever
        # way they were given (environment, role, explicit keys): boto3 has no public getter.
        credentials = client._request_signer._credentials
        return cls(
            exchanger_for(http), client.meta.endpoint_url, client.meta.region_name, credentials, **options
        )

    async def call(self, operation: str, body: bytes) -> dict[str, Any]:
        """One DynamoDB operation (`UpdateItem`, ...) with a serialized JSON request; its answer."""
        try:
            return await self._attempt(operation, body)
        except DynamoError as error:
            if not error.retryable:
                raise
        await asyncio.sleep(self.pause())
        return await self._attempt(operation, body)

    async def _attempt(self, operation: str, body: bytes) -> dict[str, Any]:
        if self.credentials is None:
            raise DynamoError("NoCredentials")
        headers = self.signer.headers(
            body, f"{API_VERSION}.{operation}", self.credentials.get_frozen_credentials(), self.now()
        )
        # Ask for the answer as it is: small JSON, not worth a decompression.
        headers.append(("accept-encoding", "identity"))
        try:
            response = await self.exchanger.request("POST", self._url, headers, body, timeout=self.timeout)
            try:
                status, content = response.status, await response.read()
            finally:
                await response.close()
        except ReadTimeout as error:
            raise DynamoError("Timeout") from error
        except ExchangeError as error:
            raise DynamoError("ConnectionError") from error
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise DynamoError("InternalServerError" if status >= 500 else "BadResponse", None, status)
        if status == 200:
            return answer
        kind = answer.get("__type")
        if isinstance(kind, str) and kind:
            code = kind.rpartition("#")[2]
        else:
            code = "InternalServerError" if status >= 500 else "BadResponse"
        raise DynamoError(code, answer, status)


class BotoCaller:
    """The same calls through a boto3 client: blocking, botocore's cost; for tools and tests."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(self, operation: str, body: bytes) -> dict[str, Any]:
        method = getattr(self.client, xform_name(operation))
        try:
            return method(**orjson.loads(body))
        except ClientError as error:
            response: dict[str, Any] = error.response  # type: ignore[assignment]
            code = response.get("Error", {}).get("Code", "BadResponse")
            raise DynamoError(
                code, response, response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            ) from error
        except ReadTimeoutError as error:
            raise DynamoError("Timeout") from error
        except BotoCoreError as error:
            raise DynamoError("ConnectionError") from error
