"""Real gRPC services the tests start on loopback (grpcio servers), and their messages.

The contract is tests/protos/tollway/test/v1/things.proto, compiled once per session with
the build-time compiler (`tollway.config.protos.compile_protos`, i.e. grpcio-tools' protoc);
the messages are dynamic classes of that descriptor set, as the gateway's are.

`ThingsServer` answers `tollway.test.v1.Things` as each test scripts it and keeps what every
call brought: the request bytes, the metadata, and the time left to the call's deadline.
Its handlers take and give raw bytes, so a test can make it answer garbage.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from tollway.config.protos import compile_protos
from tollway.table.grpc import pool_of

PROTOS = Path(__file__).resolve().parent / "protos"
SERVICE = "tollway.test.v1.Things"


@functools.cache
def descriptors() -> bytes:
    files = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    compiled, errors = compile_protos(PROTOS, files)
    assert compiled is not None, errors
    return compiled


def message_class(name: str) -> Any:
    pool = pool_of(descriptors())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tollway.test.v1.{name}"))


def thing(**fields: Any) -> bytes:
    """A serialized Thing from its JSON fields."""
    return json_format.ParseDict(fields, message_class("Thing")()).SerializeToString()


def as_json(name: str, data: bytes) -> dict[str, Any]:
    """A serialized message of `name`, as canonical JSON with proto field names kept."""
    return json_format.MessageToDict(message_class(name).FromString(data), preserving_proto_field_name=True)


def copy_protos(infra: Path) -> Path:
    """The test protos under an infra folder's protos/, as a deployment keeps them."""
    shutil.copytree(PROTOS, infra / "protos", dirs_exist_ok=True)
    return infra


@dataclass
class Call:
    method: str
    request: bytes
    metadata: list[tuple[str, str | bytes]]
    time_remaining: float | None
    at: float
    peer: str = ""  # the caller's address: one per connection

    def header(self, name: str) -> str | bytes | None:
        found = [v for k, v in self.metadata if k == name]
        return found[0] if found else None


# A handler gets the request bytes and the context; it returns reply bytes (unary), yields
# them (streaming), or aborts with a status.
Handler = Callable[[bytes, grpc.ServicerContext], Any]


def echo_get(request: bytes, context: grpc.ServicerContext) -> bytes:
    got = as_json("GetRequest", request)
    return thing(id=got.get("id", ""), big=got.get("version", "0"), displayName=f"thing {got.get('id', '')}")


def echo_thing(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def list_things(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    got = as_json("ListRequest", request)
    for i in range(int(got.get("count", 0))):
        yield thing(id=f"{got.get('prefix', 't')}{i}", small=i)


@dataclass
class ThingsServer:
    """A grpcio server (its own threads) for tollway.test.v1.Things on 127.0.0.1."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    server: grpc.Server | None = None

    def __post_init__(self) -> None:
        defaults = {"Get": echo_get, "Create": echo_thing, "List": list_things}
        self.handlers = {**defaults, **self.handlers}

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def _record(self, method: str, request: bytes, context: grpc.ServicerContext) -> None:
        metadata = [(m.key, m.value) for m in context.invocation_metadata()]
        remaining = context.time_remaining()
        self.calls.append(Call(method, request, metadata, remaining, time.monotonic(), context.peer()))

    def _unary(self, method: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self._record(method, request, context)
            return self.handlers[method](request, context)

        return handle

    def _streaming(self, method: str) -> Callable[[bytes, grpc.ServicerContext], Iterator[bytes]]:
        def handle(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            self._record(method, request, context)
            yield from self.handlers[method](request, context)

        return handle

    def start(self, port: int = 0) -> ThingsServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handlers = {
            "Get": grpc.unary_unary_rpc_method_handler(self._unary("Get")),
            "Create": grpc.unary_unary_rpc_method_handler(self._unary("Create")),
            "List": grpc.unary_stream_rpc_method_handler(self._streaming("List")),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait(5)


def wait_for_cancel(context: grpc.ServicerContext, limit_s: float = 10.0) -> None:
    """Block like a service that never answers, until the caller gives up (or `limit_s`)."""
    until = time.monotonic() + limit_s
    while context.is_active() and time.monotonic() < until:
        time.sleep(0.01)


@dataclass
class RawServer:
    """A TCP server on loopback that is no gRPC service: it writes `garbage` (or nothing)."""

    garbage: bytes | None = None
    accepted: int = 0
    received: bytearray = field(default_factory=bytearray)
    port: int = 0
    _socket: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> RawServer:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._socket = listener
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._socket is not None
        held = []
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # stopped
            self.accepted += 1
            held.append(conn)
            conn.settimeout(0.2)
            with contextlib.suppress(OSError):  # TimeoutError included
                self.received += conn.recv(65536)
            if self.garbage is not None:
                try:
                    conn.sendall(self.garbage)
                    conn.close()
                except OSError:
                    pass
        for conn in held:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._socket is not None:
            self._socket.close()
