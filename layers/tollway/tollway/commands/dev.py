"""`tollway dev`: run the gateway locally with an embedded AWS emulator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("dev", help="run the gateway locally with an embedded AWS emulator")
    dev.add_argument("--infra", type=Path, default=Path("infra"))
    dev.add_argument("--template", type=Path, default=Path("template.yaml"))
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--aws-port", type=int, default=4566, help="port of the embedded AWS emulator")
    dev.add_argument("--stage", default="dev")
    dev.add_argument("--no-demo-backends", dest="demo_backends", action="store_false")
    dev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tollway.dev.server import DevOptions
    from tollway.dev.server import run as run_dev

    return run_dev(
        DevOptions(
            infra=args.infra,
            template=args.template,
            port=args.port,
            aws_port=args.aws_port,
            stage=args.stage,
            demo_backends=args.demo_backends,
            demo_key=os.environ.get("TOLLWAY_DEMO_KEY", "demo-key"),
        )
    )
