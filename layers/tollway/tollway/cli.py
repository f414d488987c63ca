"""The `tollway` command. Each subcommand lives in `tollway.commands.<name>`; what they
share (exit codes, one-line errors, `--stack`) in `tollway.commands.common`.

Run from a folder where `tollway dev` is running, every command picks up the emulator's
connection settings from `.tollway/dev.env`, so a second terminal needs no flags; `--stack
NAME` points `keys` and `usage` at a deployed stack instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tollway.commands.common import INTERRUPTED, OK, Parser, describe, load_dev_env, wants_aws

COMMANDS = ("routes", "keys", "usage", "dev", "openapi")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tollway")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def parser() -> argparse.ArgumentParser:
    top = Parser(
        prog="tollway",
        description="Tollway API gateway tools",
        epilog="Exit status: 0 done, 1 failed or problems found, 2 unusable command line, 130 interrupted.",
    )
    top.add_argument("--version", action="version", version=f"tollway {version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else OK
    args.dev_env = {}
    if args.command != "dev" and not wants_aws(args):
        args.dev_env = load_dev_env()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        return OK
    except Exception as exc:
        if os.environ.get("TOLLWAY_DEBUG"):
            raise
        line, code = describe(exc)
        action = getattr(args, "action", None)
        print(f"tollway {args.command}{' ' + action if action else ''}: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
