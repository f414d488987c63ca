"""DynamoDB's JSON protocol over the container's shared HTTP transport: one signed POST per call.

Why not botocore on the request path: its generic machinery (event hooks, parameter
validation, serialization, signing, parsing) costs more CPU per `UpdateItem` than a naive
proxy spends on a whole request (docs/quota.md has the numbers), and its call blocks the
event loop for the round trip. A call here is a body the caller already serialized, SigV4 over
the one request shape DynamoDB needs, one POST through the container's `Exchanger`
(`tollway/transport/`: its pooled keep-alive connections, aiohttp directly in production)
and one orjson parse. Errors are `tollway.aws.errors.AwsError`.

Deadlines: a call on the request path passes the route's deadline (`time.monotonic()`
seconds); the attempt waits only for the time left, and a call made after the deadline is
not sent. Without one (tools), each attempt waits `timeout` seconds.

Every answer that carries `x-amz-crc32` (DynamoDB's do) is checked before its body is
read, as botocore does: the CRC32 of the body's bytes must equal the header's decimal
value. A mismatch means the answer was damaged on its way (a counter, an old item, a key
record could be wrong): it is never parsed, and the call fails with the retryable
"CRC32Mismatch". botocore retries such an answer, and in its standard mode hands the
damaged answer to its caller once its attempts are spent; here the last mismatch is an
error.

One retry at most, after a short jittered pause, when the error is `retryable` (throttling,
5xx, a broken connection, a damaged answer) and the deadline leaves time for it; or, at
once, when AWS refused the signature because the container's clock is off
(`tollway.aws.clock`: the clock is corrected for this call and every later one). A write
whose 200 answer was damaged was carried out: it is never sent again (`applied`), and its
caller learns what it did by a read. A connection that breaks after the write reached
DynamoDB can still make the retry count a request twice: counters then err towards
rejecting, never towards admitting.

Credentials are the session's credential chain (`tollway.aws.credentials(environ)`), frozen per
call, so refreshable ones stay valid. `tollway.tools.boto.BotoCaller` makes the same calls
through botocore (blocking): for tools and tests, not the request path.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from tollway.aws.clock import AwsClock
from tollway.aws.errors import CRC32_MISMATCH, TRANSIENT, AwsError, applied
from tollway.aws.protocol import Credentials, SigV4, canonical_host, parse_answer
from tollway.transport.exchange import ExchangeError, Exchanger, ReadTimeout

API_VERSION = "DynamoDB_20120810"
# Operations that change items: one answered 200 was applied, whatever became of its answer.
WRITES = frozenset({"UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# Less than this left before the deadline: not worth a retry.
MIN_ATTEMPT_S = 0.02


class Caller(Protocol):
    async def call(
        self, operation: str, body: bytes, *, deadline: float | None = None, resend: bool = True
    ) -> dict[str, Any]: ...


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
        clock: AwsClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        path = urlsplit(endpoint).path.rstrip("/") + "/"
        self.exchanger = exchanger
        self.endpoint = endpoint
        self.credentials = credentials
        self.signer = SigV4(region, canonical_host(endpoint), path)
        self.pause = pause
        self.clock = clock or AwsClock()
        self.monotonic = monotonic
        self._url = endpoint.rstrip("/") + "/"
        self.timeout = timeout
        self.calls = 0  # requests sent, retries included: what the bench counts

    async def call(
        self, operation: str, body: bytes, *, deadline: float | None = None, resend: bool = True
    ) -> dict[str, Any]:
        """One DynamoDB operation (`UpdateItem`, ...) with a serialized JSON request; its answer.
        `resend=False`: a call that may have been applied (the connection broke, the answer
        was damaged) is not sent again: an unconditional ADD would count twice. A write that
        DynamoDB answered 200 was applied, whatever happened to the answer on its way: it is
        never sent again (`applied(error)` says so to the caller)."""
        try:
            return await self._attempt(operation, body, deadline)
        except AwsError as error:
            if self.clock.corrects(error):
                pause = 0.0
            elif applied(error) and operation in WRITES:
                raise
            elif error.retryable and (resend or error.code not in TRANSIENT):
                pause = self.pause()
            else:
                raise
            if deadline is not None and deadline - self.monotonic() - pause < MIN_ATTEMPT_S:
                raise
        await asyncio.sleep(pause)
        return await self._attempt(operation, body, deadline)

    async def _attempt(self, operation: str, body: bytes, deadline: float | None) -> dict[str, Any]:
        if self.credentials is None:
            raise AwsError("NoCredentials")
        timeout = self.timeout
        if deadline is not None:
            timeout = deadline - self.monotonic()
            if timeout <= 0:
                raise AwsError("Timeout")
        headers = self.signer.headers(
            body, f"{API_VERSION}.{operation}", self.credentials.get_frozen_credentials(), self.clock()
        )
        # Ask for the answer as it is: small JSON, not worth a decompression.
        headers.append(("accept-encoding", "identity"))
        self.calls += 1
        try:
            # The exchanger's timeout bounds connecting and each read; the whole attempt
            # (slow trickling answers included) is bounded here.
            async with asyncio.timeout(timeout):
                response = await self.exchanger.request("POST", self._url, headers, body, timeout=timeout)
                try:
                    status, content = response.status, await response.read()
                finally:
                    await response.close()
        except (ReadTimeout, TimeoutError) as error:
            raise AwsError("Timeout") from error
        except ExchangeError as error:
            raise AwsError("ConnectionError") from error
        found = response.headers
        checksum = found.get("x-amz-crc32")
        if checksum is not None and not _crc32_matches(content, checksum):
            raise AwsError(CRC32_MISMATCH, None, status, date=found.get("date"))
        if status == 200:
            return parse_answer(status, content)
        query_error, date = found.get("x-amzn-query-error"), found.get("date")
        return parse_answer(status, content, query_error=query_error, date=date)


def _crc32_matches(content: bytes, checksum: str) -> bool:
    """botocore's check: CRC32 of the body's bytes (unsigned) against the header's integer."""
    try:
        return zlib.crc32(content) == int(checksum)
    except ValueError:  # botocore fails the call with it: a damaged header is a damaged answer
        return False
