"""The gateway alone in a process, served as `tollway dev` serves it, so a test can measure
that process (its memory, its descriptors) while raw-socket clients push at its limits.

    python -m tests.security.served SPEC.json

SPEC: {"infra": DIR, "port": N, "limits": {ServerLimits fields}, "nofile": N (optional)}.
Prints one line, `ready`, once it serves.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any

import uvicorn
from tollway.assemble import build_app
from tollway.dev.serve import ServerLimits, server_config
from tollway.settings import Settings


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec.get("nofile"):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (spec["nofile"], hard))
    app = build_app(Settings(infra=Path(spec["infra"]), stage="dev", environ={}))
    limits = ServerLimits(**spec.get("limits", {}))
    server = uvicorn.Server(server_config(app, "127.0.0.1", spec["port"], limits, lifespan="on"))
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets)
        await asyncio.sleep(0)
        print("ready", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()


if __name__ == "__main__":
    main()
