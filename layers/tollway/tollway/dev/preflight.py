"""What `tollway dev` checks before it starts anything: the files it reads and the ports it binds.

Each problem is a `DevSetupError` whose message is one line naming the file or port and
the flag that fixes it; the command prints it and exits 2, with no traceback.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = "template.yaml"
# Tollway's own template.yaml, at the root of a source checkout (layers/tollway/tollway/dev/).
OWN_TEMPLATE = Path(__file__).resolve().parents[4] / TEMPLATE


class DevSetupError(Exception):
    """A file, folder, flag or port `tollway dev` cannot use; the message is one line."""


def find_template(explicit: Path | None, infra: Path, cwd: Path, own: Path = OWN_TEMPLATE) -> Path:
    """`--template` if given, else the template.yaml next to the infra folder, the current
    folder's, then Tollway's own: the tables and queues are the gateway's, not the routes'."""
    if explicit is not None:
        if not explicit.is_file():
            raise DevSetupError(f"template not found: {explicit} (given with --template)")
        return explicit
    candidates = _unique([infra.resolve().parent / TEMPLATE, cwd.resolve() / TEMPLATE, own])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DevSetupError(f"no {TEMPLATE} found (looked for {looked}); pass --template FILE")


def check_template(path: Path) -> dict[str, Any]:
    """The template, read; a file that is not a SAM template is named with its line."""
    from tollway.dev.template import read_template

    try:
        template = read_template(path)
    except OSError as exc:
        raise DevSetupError(f"cannot read {path}: {exc.strerror} (pass --template FILE)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DevSetupError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise DevSetupError(f"{path}:1: not a SAM template (no Resources mapping); pass --template FILE")
    return template


def check_infra(infra: Path) -> None:
    if not infra.is_dir():
        raise DevSetupError(f"infra folder not found: {infra}; pass --infra DIR")
    if not (infra / "gateway.yaml").is_file():
        raise DevSetupError(f"{infra} is not an infra folder (no gateway.yaml); pass --infra DIR")


def check_port(host: str, port: int, what: str, fix: str) -> None:
    """Fails if `port` cannot be bound on `host`, as the server would bind it (SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DevSetupError(f"port {port} on {host} is already in use ({what}); {fix}") from None
            raise DevSetupError(f"cannot listen on {host}:{port} ({what}): {exc.strerror}; {fix}") from None


def check_ports(host: str, ports: Iterable[tuple[int, str, str]]) -> None:
    """Every (port, what, fix) bindable, and no port wanted twice."""
    seen: dict[int, str] = {}
    for port, what, fix in ports:
        if port in seen:
            raise DevSetupError(f"port {port} is wanted twice ({seen[port]} and {what}); {fix}")
        seen[port] = what
        check_port(host, port, what, fix)


def _unique(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path not in out:
            out.append(path)
    return out
