"""One uvicorn worker serving Tollway, the naive floor or a test backend, as `tollway dev` does.

    python -m tests.bench.serve tollway|naive|backend|sqs-sink|slow-dynamodb --port N --info FILE [...]

Settings come from the environment the bench gives it (TOLLWAY_INFRA_DIR, ...). The info file
records the event loop and HTTP protocol uvicorn actually chose.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import uvicorn


def make_app(kind: str) -> Any:
    if kind == "tollway":
        from tollway.assemble import build_app
        from tollway.settings import Settings

        return build_app(Settings.from_environ(os.environ, Path(os.environ["TOLLWAY_INFRA_DIR"])))
    if kind == "naive":
        from tests.bench.floor import naive_app

        return naive_app(os.environ["BENCH_BACKEND"])
    if kind == "slow-dynamodb":
        from tests.bench.flood import slow_dynamodb

        return slow_dynamodb(os.environ["BENCH_DYNAMODB"], float(os.environ["BENCH_DYNAMODB_DELAY_MS"]))
    if kind == "sqs-sink":
        from tests.bench.sqs_sink import sqs_sink

        return sqs_sink
    from tests.backends import loopback_backend

    return loopback_backend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["tollway", "naive", "backend", "sqs-sink", "slow-dynamodb"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--info", type=Path, required=True)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    args = parser.parse_args()
    app = make_app(args.kind)
    # The same settings as `tollway dev` (tollway/dev/server.py) for Tollway, its server
    # limits included; uvicorn's defaults otherwise.
    if args.kind == "tollway" and args.http == "auto":
        from tollway.dev.serve import server_config

        config = server_config(app, "127.0.0.1", args.port, loop=args.loop)
    else:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            lifespan="auto",
            server_header=False,
            loop=args.loop,
            http=args.http,
        )
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets)
        loop = asyncio.get_running_loop()
        chosen = {
            "loop": f"{type(loop).__module__}.{type(loop).__name__}",
            "http": config.http_protocol_class.__name__,
        }
        args.info.write_text(json.dumps(chosen))

    server.startup = startup  # type: ignore[method-assign]
    server.run()


if __name__ == "__main__":
    main()
