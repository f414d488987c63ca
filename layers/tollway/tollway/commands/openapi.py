"""`tollway openapi [--infra DIR] [--stage S] [--server URL]`: the public surface as OpenAPI 3.1."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("openapi", help="print an OpenAPI 3.1 document of the gateway's routes")
    cmd.add_argument("--infra", type=Path, default=Path("infra"), help="the infra folder (default: ./infra)")
    cmd.add_argument("--stage", default=None, help="the stage whose routes to document (default: the first)")
    cmd.add_argument("--server", default=None, help="the gateway's base URL for `servers`")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tollway.openapi import document

    try:
        config = compile_infra(args.infra, args.stage, os.environ, Path.cwd())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(document(config, args.server), indent=2))
    return 0
