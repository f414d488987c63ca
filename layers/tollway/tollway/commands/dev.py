"""`tollway dev`: run the gateway locally with an embedded AWS emulator."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (1-65535): {port}")
    return port


def register(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("dev", help="run the gateway locally with an embedded AWS emulator")
    dev.add_argument("--infra", type=Path, default=Path("infra"), help="the infra folder (default: ./infra)")
    dev.add_argument(
        "--template",
        type=Path,
        default=None,
        help="the SAM template whose tables and queues to create (default: the template.yaml "
        "next to the infra folder, else in this folder, else Tollway's own)",
    )
    dev.add_argument("--port", type=port_number, default=3000, help="the gateway's port (default 3000)")
    dev.add_argument(
        "--aws-port", type=port_number, default=4566, help="port of the embedded AWS emulator (default 4566)"
    )
    dev.add_argument("--stage", default="dev", help="the stage of gateway.yaml to serve (default dev)")
    dev.add_argument(
        "--no-demo-backends",
        dest="demo_backends",
        action="store_false",
        help="do not serve the demo users, orders, reviews and assistants services",
    )
    dev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tollway.config.errors import ConfigError
    from tollway.dev.preflight import DevSetupError
    from tollway.dev.server import DevOptions
    from tollway.dev.server import run as run_dev

    try:
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
    except DevSetupError as exc:
        print(f"tollway dev: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(
            f"tollway dev: {len(exc.problems)} problem(s) in {args.infra} (stage {args.stage})",
            file=sys.stderr,
        )
        return 1
