"""A small AWS JSON-protocol service on loopback that misbehaves on purpose.

It answers each POST from a script of `Answer`s (the last one repeats), and can check the
signing time the way AWS does: with `clock` set, a request whose `x-amz-date` is five
minutes or more away from that clock is refused (`refusal`, by default DynamoDB's
InvalidSignatureException "Signature expired"), with the service's `Date`. Every answer
carries a `Date` header from `clock` (the real time when unset), unless `dated` is false.
Requests are recorded as received.
"""

from __future__ import annotations

import calendar
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

SKEWED = {"__type": "com.amazon.coral.service#InvalidSignatureException", "message": "Signature expired"}


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    crc32: bool | str = False  # True: the body's CRC32; a string: that value, whatever the body

    def encoded(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else orjson.dumps(self.body)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def signed_at(self) -> float:
        return float(calendar.timegm(time.strptime(self.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")))

    @property
    def access_key(self) -> str:
        return self.headers["authorization"].split("Credential=")[1].split("/")[0]


class FakeAws:
    def __init__(
        self,
        *answers: Answer,
        clock: Callable[[], float] | None = None,
        refusal: Answer | None = None,
        dated: bool = True,
    ) -> None:
        self.answers = list(answers) or [Answer()]
        self.clock = clock
        self.refusal = refusal or Answer(400, SKEWED)
        self.dated = dated
        self.requests: list[Received] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(received)
                answer = fake.next_answer(received)
                content = answer.encoded()
                self.send_response(answer.status)
                self.send_header("content-type", "application/x-amz-json-1.0")
                self.send_header("content-length", str(len(content)))
                if answer.crc32 is True:
                    self.send_header("x-amz-crc32", str(zlib.crc32(content)))
                elif answer.crc32:
                    self.send_header("x-amz-crc32", answer.crc32)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

            def send_response(self, code: int, message: str | None = None) -> None:
                self.send_response_only(code, message)
                if fake.dated:
                    self.send_header("date", formatdate(fake.now(), usegmt=True))

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def next_answer(self, received: Received) -> Answer:
        if self.clock is not None and abs(received.signed_at - self.now()) >= 300:
            return self.refusal
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def late(start: float, then: float) -> Callable[[], float]:
    """A monotonic clock that reads `start` once (the attempt's own timeout), then `then`:
    the first attempt took the time up to `then`."""
    readings = iter([start])
    return lambda: next(readings, then)
