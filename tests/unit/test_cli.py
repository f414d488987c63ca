"""The `tollway` command line itself: --version, a help text for every flag, usage errors on
one line with exit status 2 (the convention is in tollway/commands/common.py)."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest
from tollway.cli import main, parser


def every_parser(top: argparse.ArgumentParser, name: str = "tollway"):
    yield name, top
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from every_parser(sub, f"{name} {sub_name}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tollway {version('tollway')}"


def test_every_flag_and_argument_has_a_help_text() -> None:
    missing = []
    for name, command in every_parser(parser()):
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_keys_and_usage_commands_take_a_stack() -> None:
    commands = dict(every_parser(parser()))
    names = ("keys create", "keys revoke", "keys list", "usage report", "usage replay", "usage reconcile")
    for name in names:
        flags = {f for a in commands[f"tollway {name}"]._actions for f in a.option_strings}
        assert {"--stack", "--region", "--profile"} <= flags, name


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["usage", "report", "--period", "2026-13"], "argument --period: period must be YYYY-MM"),
        (["usage", "reconcile", "--period", "nov"], "argument --period"),
        (["keys", "create", "--consumer", "a b", "--plan", "free"], "argument --consumer: 'a b'"),
        (["keys", "create", "--consumer", "a", "--plan", "p", "--expires-in", "0d"], "--expires-in: '0d'"),
        (["keys", "create", "--consumer", "a", "--plan", "free", "--scopes", 'a,"b'], "is not a valid scope"),
        (["keys", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["routes", "list", "--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_a_command_line_that_cannot_run_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("tollway") and says in line and line.endswith("--help)")
