"""SQS's SendMessageBatch over one keep-alive connection: the usage flush without botocore.

Why not boto3's client: a flush of one event through it cost ~810 µs of CPU after each
Lambda invocation, and 27% of a uvicorn worker's throughput, nearly all of it botocore's
generic machinery (event hooks, validation, serialization, endpoint rules, parsing).
SQS speaks the AWS JSON 1.0 protocol, like DynamoDB: a call here is one orjson body, the
SigV4 of `tollway.aws.protocol` with service "sqs", one POST and one orjson parse.

Synchronous on purpose: the Lambda extension flushes from its own thread while the
Mangum event loop is idle, and `BackgroundFlusher` runs the flush on a worker thread.
One connection per sender (a lock serializes callers); connect timeout 1 s, read 2 s.
A request that fails on a connection already used before (SQS or a proxy closed it while
idle, or the environment was frozen) is sent once more on a new one; any other failure,
and every timeout, is raised at once: the emitter keeps the events for its next flush,
and the usage function's dedupe on `event_id` makes a doubled send harmless.

Errors are `tollway.aws.errors.AwsError` ("Timeout", "ConnectionError", "NoCredentials",
or the code SQS gave: QueueDoesNotExist, AccessDenied, RequestThrottled, ...).

`LeanSqs.from_environment` takes the endpoint as boto3 would (`AWS_ENDPOINT_URL[_SQS]`),
the region and the credential chain from `tollway.aws`; credentials are frozen per call,
so refreshable ones stay valid.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from tollway.aws.errors import AwsError
from tollway.aws.protocol import Credentials, SigV4, canonical_host, parse_answer

TARGET_PREFIX = "AmazonSQS"
# How a kept-alive connection that the other side has closed fails, before any answer.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class LeanSqs:
    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Credentials | None,
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        ca_file: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self.endpoint = endpoint
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ca_file = ca_file
        self.now = now
        self.calls = 0
        self._path = parts.path.rstrip("/") + "/"
        self.signer = SigV4(region, canonical_host(endpoint), self._path, service="sqs")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._connection: http.client.HTTPConnection | None = None
        self._ssl: ssl.SSLContext | None = None
        self._used = False  # the connection has carried a request: it may have gone stale since
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> LeanSqs:
        """Endpoint, region and credentials as a boto3 SQS client would take them."""
        import certifi  # the CA bundle botocore itself verifies with, without importing botocore

        from tollway import aws

        region = aws.region(environ)
        options.setdefault("ca_file", certifi.where())
        return cls(aws.endpoint("sqs", environ, region), region, aws.credentials(environ), **options)

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        """`{"Successful": [...], "Failed": [...]}`, as boto3's call answers; raises AwsError."""
        return self.call("SendMessageBatch", orjson.dumps({"QueueUrl": QueueUrl, "Entries": Entries}))

    def call(self, operation: str, body: bytes) -> dict[str, Any]:
        """One SQS operation with a serialized JSON request; its parsed answer."""
        if self.credentials is None:
            raise AwsError("NoCredentials")
        headers = dict(
            self.signer.headers(
                body, f"{TARGET_PREFIX}.{operation}", self.credentials.get_frozen_credentials(), self.now()
            )
        )
        with self._lock:
            self.calls += 1
            status, content = self._exchange(headers, body)
        return parse_answer(status, content)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _exchange(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
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

    def _attempt(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
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
        return response.status, content

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
