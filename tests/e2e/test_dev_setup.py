"""`tollway dev` given bad files, flags or a taken port: one line naming it and the fix, no traceback.

Each runs the real CLI in a subprocess from a folder of its own; all of these fail before
anything is started, so they are quick.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tollway.dev.preflight import DevSetupError, find_template
from tollway.dev.serve import free_port

from tests.e2e.conftest import ROOT


def tollway_dev(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOLLWAY_"))}
    return subprocess.run(
        [sys.executable, "-m", "tollway.cli", "dev", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "ready" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something else already listens on (as LocalStack does on 4566)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder elsewhere: a copy of the infra folder, no template.yaml yet."""
    shutil.copytree(ROOT / "infra", tmp_path / "proj" / "infra")
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "proj"


def test_a_missing_explicit_template_is_named_with_its_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "template.yaml"
    done = tollway_dev(tmp_path, "--infra", str(ROOT / "infra"), "--template", str(missing))
    assert done.returncode == 2
    line = one_line_error(done)
    assert str(missing) in line and "--template" in line


def test_the_template_next_to_the_infra_folder_is_the_one_read(project: Path) -> None:
    # Run from another folder: the template found is the one beside --infra (here broken on
    # line 3, so the error shows which file was read and stops before anything starts).
    (project / "template.yaml").write_text("Resources:\n  A: 1\n  - broken\n")
    done = tollway_dev(project.parent / "elsewhere", "--infra", str(project / "infra"))
    assert done.returncode == 2
    line = one_line_error(done)
    assert line.startswith(f"tollway dev: {project / 'template.yaml'}:3: not valid YAML")


def test_then_the_current_folders_template(project: Path) -> None:
    here = project.parent / "elsewhere"
    (here / "template.yaml").write_text("just a string\n")
    done = tollway_dev(here, "--infra", str(project / "infra"))
    assert done.returncode == 2
    line = one_line_error(done)
    assert f"{here / 'template.yaml'}:1: not a SAM template" in line and "--template" in line


def test_no_template_anywhere_names_every_place_looked(tmp_path: Path) -> None:
    infra = tmp_path / "proj" / "infra"
    with pytest.raises(DevSetupError) as caught:
        find_template(None, infra, tmp_path, own=tmp_path / "tollway" / "template.yaml")
    message = str(caught.value)
    for looked in (tmp_path / "proj", tmp_path, tmp_path / "tollway"):
        assert str(looked / "template.yaml") in message
    assert message.endswith("pass --template FILE") and "\n" not in message


def test_a_missing_infra_folder(tmp_path: Path) -> None:
    done = tollway_dev(tmp_path, "--infra", str(tmp_path / "infra"))
    assert done.returncode == 2
    line = one_line_error(done)
    assert str(tmp_path / "infra") in line and "--infra" in line


def test_a_folder_that_is_not_an_infra_folder(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    done = tollway_dev(tmp_path, "--infra", str(tmp_path / "infra"))
    assert done.returncode == 2
    assert "no gateway.yaml" in one_line_error(done)


def test_an_unknown_stage_is_a_config_problem_with_its_line(tmp_path: Path) -> None:
    done = tollway_dev(
        tmp_path, "--infra", str(ROOT / "infra"), "--stage", "nope", "--port", str(free_port())
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert re.fullmatch(r"\S*infra/gateway\.yaml:\d+: gateway: unknown stage 'nope'", first), done.stderr


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_bad_port_flag(tmp_path: Path, value: str) -> None:
    done = tollway_dev(tmp_path, "--infra", str(ROOT / "infra"), "--port", value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "argument --port: not a port number" in done.stderr


def test_a_taken_gateway_port(tmp_path: Path, listening: int) -> None:
    done = tollway_dev(tmp_path, "--infra", str(ROOT / "infra"), "--port", str(listening))
    assert done.returncode == 2
    line = one_line_error(done)
    assert f"port {listening} on 127.0.0.1 is already in use (the gateway's port)" in line
    assert line.endswith("choose another with --port N")


def test_a_taken_emulator_port_says_aws_port(tmp_path: Path, listening: int) -> None:
    args = ["--infra", str(ROOT / "infra"), "--port", str(free_port()), "--aws-port", str(listening)]
    done = tollway_dev(tmp_path, *args)
    assert done.returncode == 2
    line = one_line_error(done)
    assert f"port {listening} on 127.0.0.1 is already in use (the AWS emulator's port" in line
    assert "LocalStack" in line and line.endswith("choose another with --aws-port N")


def test_a_taken_demo_backend_port(tmp_path: Path, listening: int) -> None:
    env = {"TOLLWAY_SERVICE_USERS": f"http://127.0.0.1:{listening}"}
    args = ["--infra", str(ROOT / "infra"), "--port", str(free_port()), "--aws-port", str(free_port())]
    done = tollway_dev(tmp_path, *args, env=env)
    assert done.returncode == 2
    line = one_line_error(done)
    assert f"port {listening}" in line and "demo users service" in line
    assert "TOLLWAY_SERVICE_USERS" in line and "--no-demo-backends" in line


def test_one_port_for_both(tmp_path: Path) -> None:
    port = str(free_port())
    done = tollway_dev(tmp_path, "--infra", str(ROOT / "infra"), "--port", port, "--aws-port", port)
    assert done.returncode == 2
    assert f"port {port} is wanted twice" in one_line_error(done)
