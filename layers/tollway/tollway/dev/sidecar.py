"""A part of `tollway dev` that runs in a process of its own: the AWS emulator, the usage
function, the demo backends and the demo gRPC service.

In the gateway's process they shared its GIL: under wrk -c32 on a public route, moto's
request handlers took ~60% of that process's CPU samples (py-spy) and the gateway served a
quarter of the bare worker's rate. Alone in its process, the gateway runs as it does in
`make bench`.

    python -m tollway.dev.sidecar ROLE READY_FD

The parent writes the role's spec as one JSON line on the child's stdin and keeps stdin
open; the child answers with one JSON line on READY_FD (`{"ok": ...}` or `{"error": "..."}`)
and runs until its stdin closes. So a child never outlives `tollway dev`, even one killed
with SIGKILL, and Ctrl-C (which the terminal sends to every process of the group) is left
to the parent, which stops the parts in order: the gateway's last usage flush still needs
the emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tollway.dev.preflight import DevSetupError


@dataclass
class Sidecar:
    role: str
    process: subprocess.Popen
    ready_fd: int
    info: dict[str, Any] = field(default_factory=dict)

    def wait_ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """The child's ready answer; a `DevSetupError` with its one-line reason if it failed."""
        deadline = time.monotonic() + timeout_s
        data = b""
        try:
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.ready_fd], [], [], left)[0]:
                    raise DevSetupError(f"the {self.role} did not start within {timeout_s:.0f} s")
                chunk = os.read(self.ready_fd, 65536)
                if not chunk:
                    code = self.process.wait(5)
                    raise DevSetupError(f"the {self.role} exited with status {code} before it was ready")
                data += chunk
        except DevSetupError:
            self.stop()
            raise
        finally:
            os.close(self.ready_fd)
        answer = json.loads(data)
        if "error" in answer:
            self.stop()
            raise DevSetupError(answer["error"])
        self.info = answer.get("ok") or {}
        return self.info

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(role: str, spec: dict[str, Any], *, name: str | None = None) -> Sidecar:
    """Start the child and hand it its spec; `wait_ready` then waits for it (start several first)."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tollway.dev.sidecar", role, str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            # Out of the terminal's process group: Ctrl-C reaches the parent only, which
            # stops the parts in order; stdin's end stops a child whose parent died.
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    assert process.stdin is not None
    process.stdin.write(json.dumps(spec).encode() + b"\n")
    process.stdin.flush()
    return Sidecar(name or role, process, read_fd)


# --- the child's side -------------------------------------------------------------------


def _emulator(spec: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
    from tollway.dev.emulator import start_emulator

    url, stop = start_emulator(
        spec["host"], spec["port"], serialize=spec.get("serialize", True), sqs_url=spec.get("sqs_url")
    )
    return {"url": url}, stop


def _backends(spec: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
    from tollway.dev.backends import DEMO_SERVICES
    from tollway.dev.serve import serve_in_thread

    served = []
    try:
        for name, host, port in spec["services"]:
            served.append(serve_in_thread(DEMO_SERVICES[name], host=host, port=port))
    except Exception:
        for one in served:
            one.stop()
        raise

    def stop() -> None:
        for one in served:
            one.stop()

    return {"urls": [s.url for s in served]}, stop


def _usage(spec: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
    from pathlib import Path

    from tollway.dev.demo import start_usage_pipeline

    os.environ.update(spec["env"])
    return {}, start_usage_pipeline(spec["env"], Path(spec["infra"]))


def _grpc(spec: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
    from tollway.dev.grpc_demo import serve

    return serve(spec)


ROLES: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], Callable[[], None]]]] = {
    "emulator": _emulator,
    "backends": _backends,
    "grpc": _grpc,
    "usage": _usage,
}
# Under load the gateway comes first: these only serve it (emulator, backends) or work
# after its responses (usage), and catch up when it idles. A spec's "nice" overrides: the
# DynamoDB emulator gets 5 (`tollway dev`), as under load most of its work is the usage
# function's transactions (rows D1-D2 of `make bench`: the last 10 s of a minute went from
# 0.51x to 0.95x of the first).
NICENESS = {"emulator": 0, "backends": 0, "grpc": 0, "usage": 10}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def main(argv: list[str]) -> int:
    role, ready_fd = argv[0], int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, in order
    with os.fdopen(ready_fd, "w") as ready:
        spec = json.loads(sys.stdin.buffer.readline())
        with contextlib.suppress(OSError):
            os.nice(spec.get("nice", NICENESS.get(role, 0)))
        try:
            info, stop = ROLES[role](spec)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported to the parent as one line
            name = spec.get("name", role)
            ready.write(json.dumps({"error": f"the {name} could not start: {_describe(exc)}"}) + "\n")
            return 1
        ready.write(json.dumps({"ok": info}) + "\n")
    try:
        sys.stdin.buffer.read()  # until the parent closes it or dies
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
