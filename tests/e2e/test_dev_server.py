"""`tollway dev` behaves like a server: it says what it starts while it starts, reloads the
routes when a file under the infra folder changes (a broken edit keeps the last good table
and prints its problems as FILE:LINE), and SIGTERM stops it in order, like Ctrl-C."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, DevServer, alive, children, launch_dev

pytestmark = pytest.mark.e2e

EXTRA = """\
team: extra
routes:
  - id: extra.ping
    path: /v1/extra
    methods: [GET]
    public: true
    backends: [{name: users, service: users, path: /health}]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, Path]]:
    root = tmp_path_factory.mktemp("reload")
    infra = root / "infra"
    shutil.copytree(ROOT / "infra", infra)
    shutil.copy(ROOT / "template.yaml", root / "template.yaml")
    (root / "work").mkdir()
    server = launch_dev(root / "work", infra)
    yield server, infra
    server.process.send_signal(signal.SIGINT)
    server.process.wait(30)


def status(server: DevServer, path: str) -> int:
    return httpx.get(f"{server.url}{path}", timeout=5).status_code


def wait_for_status(server: DevServer, path: str, expected: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := status(server, path)) != expected:
        assert time.monotonic() < deadline, f"{path}: {got}, not {expected}\n" + "".join(server.output)
        time.sleep(0.2)


def test_it_says_what_it_starts_before_it_is_ready(served: tuple[DevServer, Path]) -> None:
    server, _ = served
    lines = [line.strip() for line in server.output]
    ready = next(i for i, line in enumerate(lines) if line.startswith("tollway dev ready on"))
    before = lines[:ready]
    said = [
        "route(s) of stage dev from",
        "starting the AWS emulator on 127.0.0.1:",
        "starting the demo backends: users :",
        "emulators up; creating the tables, queues and secrets of",
        "starting the usage function",
        "starting the gateway on http://127.0.0.1:",
    ]
    positions = [next(i for i, line in enumerate(before) if text in line) for text in said]
    assert positions == sorted(positions), before
    assert before[0].startswith("tollway dev: ")
    # SPEC §3: one line contains `ready`, when it serves; none of these may.
    assert [line for line in lines if "ready" in line] == [lines[ready]]


def test_an_edit_under_the_infra_folder_reloads_the_routes(served: tuple[DevServer, Path]) -> None:
    server, infra = served
    assert status(server, "/v1/extra") == 404
    # How many routes the stage had at start: "tollway dev: N route(s) of stage dev from ...".
    started = next(line for line in server.output if "route(s) of stage dev from" in line)
    count = int(re.search(r"(\d+) route\(s\) of stage", started).group(1))
    mark = len(server.output)
    (infra / "routes" / "extra.yaml").write_text(EXTRA)
    wait_for_status(server, "/v1/extra", 200)
    said = server.wait_for_output("reloaded", mark)
    assert f"routes/extra.yaml changed: reloaded {count + 1} route(s)" in said
    mark = len(server.output)
    (infra / "routes" / "extra.yaml").unlink()
    wait_for_status(server, "/v1/extra", 404)
    said = server.wait_for_output("reloaded", mark)
    assert f"routes/extra.yaml changed: reloaded {count} route(s)" in said


def test_a_broken_edit_keeps_the_last_good_table_and_says_where(served: tuple[DevServer, Path]) -> None:
    server, infra = served
    users = infra / "routes" / "users.yaml"
    good = users.read_text()
    mark = len(server.output)
    try:
        broken = good.replace("    path: /v1/status\n", "    path: /v1/status\n   methods: [GET]\n", 1)
        users.write_text(broken)  # one space short: the indentation does not match
        line = server.wait_for_output("invalid YAML", mark)
        assert line.strip().startswith(f"{infra.name}/routes/users.yaml:6: file: invalid YAML: column 4:")
        assert "still serving the last good routes" in server.wait_for_output("still serving", mark)
        assert status(server, "/v1/status") == 200  # the last good table
        assert httpx.get(f"{server.url}/v1/users/1", headers={"x-api-key": "demo-key"}).status_code == 200
    finally:
        mark = len(server.output)
        users.write_text(good)
    server.wait_for_output("reloaded", mark)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_stops_it_in_order_like_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    server = launch_dev(tmp_path)
    sidecars = children(server.process.pid)
    # Usage events waiting to be flushed when the signal comes: the ordered stop sends them
    # while the emulator still runs (stopped first, they would be logged as unsent).
    for _ in range(8):  # within the demo plan's burst
        assert httpx.get(f"{server.url}/v1/users/1", headers={"x-api-key": "demo-key"}).status_code == 200
    server.process.send_signal(sig)
    try:
        code = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise
    time.sleep(0.5)  # the output thread's last lines
    output = "".join(server.output)
    assert code == (0 if sig == signal.SIGTERM else 130), output
    assert "Traceback" not in output and "usage event unsent" not in output, output
    why = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    stopping = f"tollway dev: stopping ({why}): the usage function, the demo backends, the emulators"
    assert output.splitlines()[-2:] == [stopping, "tollway dev: stopped"], output
    assert not alive(sidecars, within_s=5)
