"""One AWS service's JSON-protocol calls on one keep-alive connection, synchronously.

For the calls made outside the event loop: the usage sender (`tollway.aws.sqs`: the Lambda
extension's thread, `BackgroundFlusher`'s worker thread) and the key secret read at init
(`tollway.aws.secrets`). Why not the container's exchanger (tollway/transport), the one
stack of the request path: its aiohttp session belongs to the event loop it was made in,
and neither caller has that loop. The extension's thread runs while the router's loop is
idle between invocations (running a coroutine there would mean running that loop from a
second thread), and the init runs before any loop exists. A call is one orjson body, the
SigV4 of `tollway.aws.protocol`, one POST with the standard library's `http.client` and
one orjson parse: no botocore, no second HTTP library.

One connection per caller (a lock serializes callers); connect timeout 1 s, read 2 s by
default. A request that fails on a connection already used before (the service or a proxy
closed it while idle, or the environment was frozen) is sent once more on a new one. An
answer that refuses the signature because the container's clock is off (`AwsClock.corrects`)
is sent once more, signed with the corrected clock. Any other failure, and every timeout,
is raised at once: the caller decides (the usage emitter keeps its events for the next flush).

Errors are `tollway.aws.errors.AwsError` ("Timeout", "ConnectionError", "NoCredentials",
or the code the service gave, as botocore reports it). Credentials are frozen per call, so
refreshable ones stay valid.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tollway.aws.clock import AwsClock
from tollway.aws.errors import AwsError
from tollway.aws.protocol import JSON_10, Credentials, SigV4, canonical_host, parse_answer

# How a kept-alive connection that the other side has closed fails, before any answer.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class BlockingCaller:
    """Calls `<target>.<operation>` of the service at `endpoint` (`service`: its signing name)."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Credentials | None,
        *,
        service: str,
        target: str,
        content_type: str = JSON_10,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        ca_file: str | None = None,
        clock: AwsClock | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self.endpoint = endpoint
        self.credentials = credentials
        self.target = target
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ca_file = ca_file
        self.clock = clock or AwsClock()
        self.calls = 0  # signed requests (a resend on a new connection is the same one)
        self._path = parts.path.rstrip("/") + "/"
        self.signer = SigV4(region, canonical_host(endpoint), self._path, service, content_type)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._connection: http.client.HTTPConnection | None = None
        self._ssl: ssl.SSLContext | None = None
        self._used = False  # the connection has carried a request: it may have gone stale since
        self._lock = threading.Lock()

    @staticmethod
    def settings(service: str, environ: Mapping[str, str]) -> dict[str, Any]:
        """Endpoint, region, credentials and CA bundle as a boto3 client of `service` takes them."""
        import certifi  # the CA bundle botocore itself verifies with, without importing botocore

        from tollway import aws

        region = aws.region(environ)
        return {
            "endpoint": aws.endpoint(service, environ, region),
            "region": region,
            "credentials": aws.credentials(environ),
            "ca_file": certifi.where(),
        }

    def call(self, operation: str, body: bytes) -> dict[str, Any]:
        """One operation with a serialized JSON request; its parsed answer, or AwsError."""
        try:
            return self._call(operation, body)
        except AwsError as error:
            if not self.clock.corrects(error):
                raise
        return self._call(operation, body)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _call(self, operation: str, body: bytes) -> dict[str, Any]:
        if self.credentials is None:
            raise AwsError("NoCredentials")
        target = f"{self.target}.{operation}"
        frozen = self.credentials.get_frozen_credentials()
        headers = dict(self.signer.headers(body, target, frozen, self.clock()))
        with self._lock:
            self.calls += 1
            response, content = self._exchange(headers, body)
        return parse_answer(
            response.status,
            content,
            query_error=response.getheader("x-amzn-query-error"),
            date=response.getheader("date"),
        )

    def _exchange(self, headers: dict[str, str], body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        reused = self._used
        try:
            return self._attempt(headers, body)
        except _STALE as error:
            # A kept-alive connection the other side closed while idle: expected, try a new one.
            if not reused:
                raise AwsError("ConnectionError") from error
        try:
            return self._attempt(headers, body)
        except _STALE as error:
            raise AwsError("ConnectionError") from error

    def _attempt(self, headers: dict[str, str], body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on the kept connection (opened if need be); raises AwsError, or a
        `_STALE` error when the connection broke before any answer."""
        connection = self._connect()
        try:
            connection.request("POST", self._path, body, headers)
            self._used = True
            response = connection.getresponse()
            content = response.read()
        except _STALE:
            self._drop()
            raise
        except TimeoutError as error:
            self._drop()
            raise AwsError("Timeout") from error
        except (OSError, http.client.HTTPException) as error:
            self._drop()
            raise AwsError("ConnectionError") from error
        if response.will_close:
            self._drop()
        return response, content

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is not None and self._connection.sock is not None:
            return self._connection
        self._drop()
        connection: http.client.HTTPConnection
        if self._scheme == "https":
            if self._ssl is None:  # loading the CA bundle takes milliseconds: once, and not at init
                self._ssl = ssl.create_default_context(cafile=self.ca_file)
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.connect_timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise AwsError("ConnectionError") from error
        assert connection.sock is not None
        connection.sock.settimeout(self.read_timeout)
        self._connection = connection
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._used = None, False
