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
import random
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from tollway.awsjson import AwsError, Credentials, SigV4, canonical_host, parse_answer
from tollway.upstream.client import exchanger_for
from tollway.upstream.exchange import ExchangeError, Exchanger, ReadTimeout

API_VERSION = "DynamoDB_20120810"
THROTTLING = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)


class DynamoError(AwsError):
    """DynamoDB refused or could not be asked; `body` is its JSON answer (`Item` for ALL_OLD)."""

    @property
    def retryable(self) -> bool:
        return self.code in THROTTLING or self.code == "ConnectionError" or (self.status or 0) >= 500


class Caller(Protocol):
    async def call(self, operation: str, body: bytes) -> dict[str, Any]: ...


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
        return parse_answer(status, content, DynamoError)


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
