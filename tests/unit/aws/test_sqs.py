"""The lean SQS sender against fake SQS servers on loopback: the request it signs, the
answers and failures it maps, its one kept connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from botocore.credentials import Credentials
from tollway.aws.clock import AwsClock
from tollway.aws.errors import AwsError
from tollway.aws.protocol import CONTENT_TYPE
from tollway.aws.sqs import LeanSqs

from tests.backends import read_body
from tests.unit.aws.test_dynamodb import botocore_authorization

CREDENTIALS = Credentials("AK", "SK", "TOKEN")
QUEUE = "http://127.0.0.1/123456789012/UsageQueue"
ENTRIES = [
    {"Id": "0", "MessageBody": '{"event_id": "e-0"}'},
    {"Id": "1", "MessageBody": '{"event_id": "e-1"}'},
]
NOW = 1_795_000_000.25


class FakeSqs:
    """An ASGI SQS: records requests; answers SendMessageBatch, or from `script` when given."""

    def __init__(self, *script: tuple[int, bytes]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": headers,
                "body": body,
                "client": tuple(scope["client"]),
            }
        )
        if self.script:
            status, content = self.script.pop(0)
        else:
            entries = orjson.loads(body)["Entries"]
            status, content = (
                200,
                orjson.dumps({"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}),
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", CONTENT_TYPE.encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})


class Rotating:
    """Credentials whose frozen value changes on every read, as refreshed ones do over time."""

    def __init__(self) -> None:
        self.reads = 0

    def get_frozen_credentials(self):
        self.reads += 1
        return Credentials(f"AK{self.reads}", "SK", None).get_frozen_credentials()


def test_a_batch_is_one_signed_json_post_botocore_would_sign_the_same(serve) -> None:
    fake = FakeSqs()
    url = serve(fake)
    sqs = LeanSqs(url, "eu-west-1", CREDENTIALS, clock=AwsClock(lambda: NOW))
    answer = sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    assert answer == {"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []}
    [request] = fake.requests
    assert (request["method"], request["path"]) == ("POST", "/")
    assert orjson.loads(request["body"]) == {"QueueUrl": QUEUE, "Entries": ENTRIES}
    headers = request["headers"]
    assert headers["x-amz-target"] == "AmazonSQS.SendMessageBatch"
    assert headers["content-type"] == "application/x-amz-json-1.0"
    assert headers["x-amz-security-token"] == "TOKEN"
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(NOW))
    theirs = botocore_authorization(
        url, "eu-west-1", CREDENTIALS, "AmazonSQS.SendMessageBatch", request["body"], amz_date, "sqs"
    )
    assert headers["authorization"] == theirs["authorization"]
    assert headers["host"] == url.removeprefix("http://")


def test_credentials_are_frozen_for_every_call(serve) -> None:
    fake = FakeSqs()
    sqs = LeanSqs(serve(fake), "us-east-1", Rotating())
    sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    keys = [r["headers"]["authorization"].split("Credential=")[1].split("/")[0] for r in fake.requests]
    assert keys == ["AK1", "AK2"]


def test_missing_credentials_fail_before_any_request(serve) -> None:
    fake = FakeSqs()
    with pytest.raises(AwsError, match="NoCredentials"):
        LeanSqs(serve(fake), "us-east-1", None).send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    assert fake.requests == []


def error(code: str) -> bytes:
    return orjson.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": "injected"})


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, error("QueueDoesNotExist"), "QueueDoesNotExist"),
        (400, error("BatchEntryIdsNotDistinct"), "BatchEntryIdsNotDistinct"),
        (403, orjson.dumps({"__type": "AccessDenied"}), "AccessDenied"),  # no namespace
        (500, error("InternalError"), "InternalError"),
        (503, b"<html>Service Unavailable</html>", "InternalServerError"),
        (502, b"", "InternalServerError"),
        (403, b"forbidden", "BadResponse"),
        (200, b"not json", "BadResponse"),
        (200, b"[1, 2]", "BadResponse"),
    ],
)
def test_errors_and_garbage_raise_sqs_error_with_the_code(serve, status, body, code) -> None:
    fake = FakeSqs((status, body))
    sqs = LeanSqs(serve(fake), "us-east-1", CREDENTIALS)
    with pytest.raises(AwsError) as failed:
        sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    assert (failed.value.code, failed.value.status) == (code, status)
    assert len(fake.requests) == 1  # never retried: the emitter retries on its next flush
    if body.startswith(b"{"):
        assert failed.value.body == orjson.loads(body)
    assert sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)["Failed"] == []  # the connection lives on


def free_port() -> int:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return placeholder.getsockname()[1]


def test_a_refused_connection_is_a_connection_error() -> None:
    sqs = LeanSqs(f"http://127.0.0.1:{free_port()}", "us-east-1", CREDENTIALS)
    with pytest.raises(AwsError, match="ConnectionError"):
        sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)


def test_an_unanswered_call_times_out_after_the_read_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        sqs = LeanSqs(
            f"http://127.0.0.1:{silent.getsockname()[1]}", "us-east-1", CREDENTIALS, read_timeout=0.2
        )
        started = time.monotonic()
        with pytest.raises(AwsError, match="Timeout"):
            sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
        assert 0.2 <= time.monotonic() - started < 1.0


class RawServer:
    """A TCP server on loopback; each accepted connection is handed to `handle` on a thread."""

    OK = b'{"Successful": [], "Failed": []}'

    def __init__(self, handle: Callable[[socket.socket, int], None]) -> None:
        self.handle = handle
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(connection, self.connections), daemon=True).start()

    @staticmethod
    def read_request(connection: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(
                b":"
            )[1]
        )
        while len(body) < length:
            body += connection.recv(65536)
        return head

    @classmethod
    def answer(cls, connection: socket.socket) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(cls.OK), cls.OK)
        )

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Callable[[socket.socket, int], None]) -> RawServer:
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_kept_connection_closed_while_idle_is_replaced_once(raw_server) -> None:
    def one_answer_then_close(connection: socket.socket, number: int) -> None:
        # Keep-alive promised (no `connection: close`), then closed: as an idle timeout does.
        with connection:
            RawServer.read_request(connection)
            RawServer.answer(connection)

    server = raw_server(one_answer_then_close)
    sqs = LeanSqs(server.url, "us-east-1", CREDENTIALS)
    for _ in range(3):
        assert sqs.send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES) == {"Successful": [], "Failed": []}
    assert (sqs.calls, server.connections) == (3, 3)


def test_a_new_connection_that_breaks_is_not_retried(raw_server) -> None:
    def close_without_answer(connection: socket.socket, number: int) -> None:
        with connection:
            RawServer.read_request(connection)

    server = raw_server(close_without_answer)
    with pytest.raises(AwsError, match="ConnectionError"):
        LeanSqs(server.url, "us-east-1", CREDENTIALS).send_message_batch(QueueUrl=QUEUE, Entries=ENTRIES)
    assert server.connections == 1


def test_one_connection_serves_callers_on_several_threads(serve) -> None:
    fake = FakeSqs()
    sqs = LeanSqs(serve(fake), "us-east-1", CREDENTIALS)

    def send(i: int) -> dict[str, Any]:
        return sqs.send_message_batch(QueueUrl=QUEUE, Entries=[{"Id": str(i), "MessageBody": str(i)}])

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(40)))
    assert [a["Successful"] for a in answers] == [[{"Id": str(i)}] for i in range(40)]
    assert len({r["client"] for r in fake.requests}) == 1  # all on the one kept connection


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        LeanSqs("sqs.us-east-1.amazonaws.com", "us-east-1", CREDENTIALS)
