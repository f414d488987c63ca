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
from tollway.quota.store import Budget, QuotaStore, StoreUnavailable
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
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
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


async def test_a_damaged_counter_is_never_believed(aws, moto_url, front) -> None:
    table = aws["TOLLWAY_QUOTA_TABLE"]
    through = front(damaged=1)
    exchanger = AiohttpExchanger()
    try:
        caller = DynamoCaller(exchanger, through.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
        store = QuotaStore(caller, table)
        budget = Budget("D2026-12-07#0#acme", 1_800_000_000, quota=100, rate=None, window=None)
        counters = await store.spend(budget, 1)
    finally:
        await exchanger.close()
    assert orjson.loads(through.answers[0])["Attributes"]["used"] == {"N": "0"}  # the damage was made
    # The first write counted, its answer was refused, the retry counted again: the store
    # reports what DynamoDB holds (2, towards rejecting), never the damaged 0.
    assert len(through.answers) == 2
    assert counters.used == used(moto_url, table, budget.pk) == 2


async def test_an_answer_damaged_every_time_makes_the_store_unavailable(aws, moto_url, front) -> None:
    table = aws["TOLLWAY_QUOTA_TABLE"]
    through = front(damaged=2)
    exchanger = AiohttpExchanger()
    try:
        caller = DynamoCaller(exchanger, through.url, "us-east-1", CREDENTIALS, pause=lambda: 0.0)
        budget = Budget("D2026-12-07#0#acme", 1_800_000_000, quota=100, rate=None, window=None)
        with pytest.raises(StoreUnavailable, match="CRC32Mismatch"):
            await QuotaStore(caller, table).spend(budget, 1)
    finally:
        await exchanger.close()
    assert [orjson.loads(a)["Attributes"]["used"] for a in through.answers] == [{"N": "0"}, {"N": "0"}]
