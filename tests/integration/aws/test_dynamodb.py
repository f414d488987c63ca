"""A counter DynamoDB sent is never read from an answer damaged on its way: the quota store
through a front that passes calls to the moto server and damages answers, keeping the
`x-amz-crc32` moto computed for the answer it sent."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
import orjson
import pytest
from tollway.aws.dynamodb import DynamoCaller
from tollway.quota.store import Budget, Exhausted, QuotaStore
from tollway.transport.exchange import AiohttpExchanger

from tests.unit.aws.test_dynamodb import CREDENTIALS


def damage(body: bytes) -> bytes:
    """The answer as a damaged byte could leave it: `used` reads 0, whatever it was."""
    return re.sub(rb'("used": ?\{"N": ?")\d+', rb"\g<1>0", body)


class DamagingFront:
    def __init__(self, target: str, damaged: int) -> None:
        self.target = urlsplit(target)
        self.damaged = damaged  # how many answers, from the first, arrive damaged
        self.answers: list[bytes] = []
        self.targets: list[str] = []  # each call's x-amz-target
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                front.targets.append(self.headers.get("x-amz-target", ""))
                connection = http.client.HTTPConnection(front.target.hostname, front.target.port, timeout=5)
                try:
                    connection.request("POST", self.path, body, dict(self.headers))
                    response = connection.getresponse()
                    status, headers, content = response.status, response.getheaders(), response.read()
                finally:
                    connection.close()
                if len(front.answers) < front.damaged:
                    content = damage(content)
                front.answers.append(content)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection", "server", "date"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front(moto_url: str) -> Iterator[type[DamagingFront]]:
    started: list[DamagingFront] = []

    def start(damaged: int) -> DamagingFront:
        started.append(DamagingFront(moto_url, damaged))
        return started[-1]

    yield start  # type: ignore[misc]
    for made in started:
        made.close()


def used(moto_url: str, table: str, pk: str) -> int:
    item = boto3.client("dynamodb", endpoint_url=moto_url).get_item(TableName=table, Key={"pk": {"S": pk}})
    return int(item["Item"]["used"]["N"])


def spend_through(front: DamagingFront, table: str, budget: Budget, cost: int = 1):
    async def run():
        exchanger = AiohttpExchanger()
        try:
            caller = DynamoCaller(exchanger, front.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
            return await QuotaStore(caller, table).spend(budget, cost)
        finally:
            await exchanger.close()

    return run()


def operations(front: DamagingFront) -> list[str]:
    return [target.rpartition(".")[2] for target in front.targets]


async def test_a_damaged_counter_is_never_believed_and_never_counted_twice(aws, moto_url, front) -> None:
    table = aws["TOLLWAY_QUOTA_TABLE"]
    through = front(damaged=1)
    budget = Budget("D2026-12-07#0#acme", 1_800_000_000, quota=100, rate=None, window=None)
    counters = await spend_through(through, table, budget)
    assert orjson.loads(through.answers[0])["Attributes"]["used"] == {"N": "0"}  # the damage was made
    # DynamoDB answered the write 200: it counted. Sent again it would count twice (it did:
    # used 2 for one request); the item is read instead, and the store reports what DynamoDB
    # holds, never the damaged 0.
    assert operations(through) == ["UpdateItem", "GetItem"]
    assert counters.used == used(moto_url, table, budget.pk) == 1


async def test_a_refusal_whose_answer_is_damaged_is_asked_again(aws, moto_url, front) -> None:
    """A failed condition changed nothing: sending it again is safe, and its item is what
    says which limit was hit."""
    table = aws["TOLLWAY_QUOTA_TABLE"]
    budget = Budget("D2026-12-07#0#full", 1_800_000_000, quota=1, rate=None, window=None)
    await spend_through(front(damaged=0), table, budget)
    through = front(damaged=1)
    with pytest.raises(Exhausted) as refused:
        await spend_through(through, table, budget)
    assert operations(through) == ["UpdateItem", "UpdateItem"]
    assert refused.value.counters is not None and refused.value.counters.used == 1
    assert used(moto_url, table, budget.pk) == 1


async def test_a_counted_write_whose_every_answer_is_damaged_stays_counted_once(aws, moto_url, front) -> None:
    """The write's answer and both reads of the item damaged: the request was counted, so it is
    admitted as counted (not refused: the counter, which is also the bill, holds it), with its
    own units as what the store knows."""
    table = aws["TOLLWAY_QUOTA_TABLE"]
    through = front(damaged=3)
    budget = Budget("D2026-12-07#0#acme", 1_800_000_000, quota=100, rate=None, window=None)
    await spend_through(front(damaged=0), table, budget, cost=5)
    counters = await spend_through(through, table, budget)
    assert operations(through) == ["UpdateItem", "GetItem", "GetItem"]
    assert [
        orjson.loads(a).get("Attributes", orjson.loads(a).get("Item"))["used"] for a in through.answers
    ] == [{"N": "0"}] * 3
    assert counters.used == 1  # what it knows: its own unit; DynamoDB's condition decides the next
    assert used(moto_url, table, budget.pk) == 6
