"""`tollway dev` started as users start it: a subprocess, in its own folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each held open until all are chosen."""
    held = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


@dataclass
class DevServer:
    url: str
    aws_url: str
    cwd: Path
    process: subprocess.Popen
    output: list[str]
    services: dict[str, str] = field(default_factory=dict)  # TOLLWAY_SERVICE_* it was started with

    def env(self) -> dict[str, str]:
        """The settings `tollway dev` wrote for other commands run from its folder."""
        lines = (self.cwd / ".tollway" / "dev.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    def wait_for_output(self, text: str, since: int = 0, timeout_s: float = 20.0) -> str:
        """The first line of output from line `since` on that contains `text`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.output)[since:]:
                if text in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in tollway dev's output:\n" + "".join(self.output))

    def tollway(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tollway.cli", *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOLLWAY_"))},
        )


def launch_dev(cwd: Path, infra: Path = ROOT / "infra") -> DevServer:
    """`tollway dev` from `cwd` on free ports, once it printed its ready line; its later
    output keeps coming into `output` (read by a thread, so the pipe never fills)."""
    # Seven ports, all different: ports asked for one at a time can come back twice.
    port, aws_port, *spare = free_ports(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOLLWAY_"))}
    for service in ("USERS", "ORDERS", "REVIEWS", "ASSISTANTS"):
        env[f"TOLLWAY_SERVICE_{service}"] = f"http://127.0.0.1:{spare.pop()}"
    env["TOLLWAY_SERVICE_CATALOG"] = f"grpc://127.0.0.1:{spare.pop()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tollway.cli",
            "dev",
            # No --template: the one next to the infra folder is found (the ready output names it).
            "--infra",
            str(infra),
            "--port",
            str(port),
            "--aws-port",
            str(aws_port),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "ready" in line:
            break
    else:
        process.kill()
    if not any("ready" in line for line in output):
        process.kill()
        pytest.fail("tollway dev did not print ready:\n" + "".join(output))
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
    services = {k: v for k, v in env.items() if k.startswith("TOLLWAY_SERVICE_")}
    url, aws_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{aws_port}"
    return DevServer(url, aws_url, cwd, process, output, services)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = launch_dev(tmp_path_factory.mktemp("dev"))
    process, output = server.process, server.output
    sidecars = children(process.pid)
    yield server
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode in (0, 130), "".join(output)  # 130: uvicorn re-raises the SIGINT
    assert not alive(sidecars, within_s=5), f"left running after Ctrl-C: {alive(sidecars)}"


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def alive(pids: list[int], within_s: float = 0.0) -> list[int]:
    """Those of `pids` still running after waiting up to `within_s` for them to end."""
    deadline = time.monotonic() + within_s
    while True:
        running = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state != "Z":  # a zombie has ended; its parent has not reaped it yet
                running.append(pid)
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)
