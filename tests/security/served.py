"""The gateway alone in a process, served as `tollway dev` serves it, so a test can measure
that process (its memory, its descriptors) while raw-socket clients push at its limits.

    python -m tests.security.served SPEC.json

SPEC: {"infra": DIR, "port": N, "limits": {ServerLimits fields}, "nofile": N (optional)}.
Prints one line, `ready`, once it serves. `served(...)` starts one from a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from tollway.assemble import build_app
from tollway.dev.serve import ServerLimits, server_config
from tollway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    rest: int = 0  # its descriptors at rest, once measured

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def connect(self, timeout_s: float = 15.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s)

    def answer(self, raw: bytes) -> bytes:
        with self.connect() as sock:
            sock.sendall(raw)
            return read_until_closed(sock)

    def at_rest(self) -> int:
        """Its descriptors at rest (after one request: the pool's connection to the backend)."""
        if not self.rest:
            assert self.answer(b"GET /v1/echo HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").startswith(
                b"HTTP/1.1 200 "
            )
            time.sleep(0.2)
            self.rest = self.descriptors() + 2
        return self.rest

    def settle(self, what: str, timeout_s: float = 15.0) -> None:
        """Wait until the server holds no more descriptors than at rest."""
        deadline = time.monotonic() + timeout_s
        while self.descriptors() > self.at_rest():
            assert time.monotonic() < deadline, f"{what}: still {self.descriptors()} descriptors"
            time.sleep(0.02)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@contextmanager
def served(folder: Path, infra: Path, limits: dict[str, Any], nofile: int | None = None) -> Iterator[Served]:
    port = _free_port()
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"infra": str(infra), "port": port, "limits": limits, "nofile": nofile}))
    log = folder / "server.log"  # its access lines: a pipe nobody reads would stall it
    with log.open("w") as out:
        argv = [sys.executable, "-m", "tests.security.served", str(spec)]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in log.read_text().splitlines():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        yield Served(proc, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec.get("nofile"):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (spec["nofile"], hard))
    app = build_app(Settings(infra=Path(spec["infra"]), stage="dev", environ={}))
    limits = ServerLimits(**spec.get("limits", {}))
    server = uvicorn.Server(server_config(app, "127.0.0.1", spec["port"], limits, lifespan="on"))
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets)
        await asyncio.sleep(0)
        print("ready", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()


if __name__ == "__main__":
    main()
