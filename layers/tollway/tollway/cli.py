"""The `tollway` command. Each subcommand lives in `tollway.commands.<name>`.

Run from a folder where `tollway dev` is running, every command picks up the emulator's
connection settings from `.tollway/dev.env`, so a second terminal needs no flags.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

COMMANDS = ("routes", "keys", "usage", "dev", "openapi")
DEV_ENV = Path(".tollway") / "dev.env"


def load_dev_env(path: Path = DEV_ENV) -> None:
    """Fill unset variables from `.tollway/dev.env` (KEY=VALUE lines)."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key.strip(), value.strip())


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tollway", description="Tollway API gateway tools")
    sub = top.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tollway.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tollway.commands.{name}":
                raise
            continue
        module.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "dev":
        load_dev_env()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
