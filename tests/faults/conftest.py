"""Fault injection on loopback: a DynamoDB front door that can throttle, fail or hang, and
backends that refuse, reset, hang, dribble or flood.

The gateway is `tollway.assemble.build_app` itself, its DynamoDB endpoint
(`AWS_ENDPOINT_URL_DYNAMODB`) the fault front: key lookups and quota calls both wait only
for what is left of the route's deadline (the routes here keep it short).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tollway.dev.serve import free_port
from tollway.http.app import GatewayApp
from tollway.settings import Settings


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()


class DynamoFront:
    """Passes DynamoDB calls to moto, or answers them with the fault of the moment."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.mode = "pass"  # pass | throttle | error | hang
        self.calls = 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                front.calls += 1
                if front.mode == "hang":
                    time.sleep(1.0)
                    self.close_connection = True
                    return
                if front.mode == "pass":
                    status, headers, payload = front.forward(self.path, dict(self.headers), body)
                elif front.mode == "throttle":
                    status, payload = 400, error_body("ThrottlingException", "Rate exceeded")
                    headers = {"x-amzn-ErrorType": "ThrottlingException"}
                else:
                    status, payload = 500, error_body("InternalServerError", "injected")
                    headers = {}
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(name, value)
                self.send_header("content-type", "application/x-amz-json-1.0")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=5)
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dynamo_front(moto_url: str) -> Iterator[DynamoFront]:
    front = DynamoFront(moto_url)
    yield front
    front.close()


def assemble(infra: Path, aws: dict[str, str], dynamodb_url: str, environ: dict[str, str]) -> GatewayApp:
    """`build_app` as a container runs it, its DynamoDB calls sent to `dynamodb_url`."""
    from tollway.assemble import build_app

    settings = Settings(
        infra=infra,
        stage="dev",
        keys_table=aws["TOLLWAY_KEYS_TABLE"],
        quota_table=aws["TOLLWAY_QUOTA_TABLE"],
        key_secret_id=aws["TOLLWAY_KEY_SECRET_ID"],
        # The container's environment: the emulator's endpoint (the key secret is read there).
        environ={
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            **environ,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        },
    )
    return build_app(settings)


class RawBackend:
    """A TCP server that misbehaves on purpose, one connection at a time per thread."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                getattr(self, "_" + self.behaviour)(conn)
            except OSError:
                pass

    def _reset(self, conn: socket.socket) -> None:
        # SO_LINGER 0: close() sends RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def _hang(self, conn: socket.socket) -> None:
        self.stop.wait(5)

    def _dribble(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
        for _ in range(100):
            if self.stop.wait(0.05):
                return
            conn.sendall(b" ")

    def _flood(self, conn: socket.socket) -> None:
        # 10 MB, chunked, with no content-length to refuse it by.
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        for _ in range(160):
            if self.stop.is_set():
                return
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.sendall(b"0\r\n\r\n")

    def _garbage(self, conn: socket.socket) -> None:
        conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def raw_backend() -> Iterator:
    made: list[RawBackend] = []

    def make(behaviour: str) -> RawBackend:
        made.append(RawBackend(behaviour))
        return made[-1]

    yield make
    for backend in made:
        backend.close()
