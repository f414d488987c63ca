"""A gateway process to kill: `python -m tests.fuzz.kill_gateway INFRA PORT`.

The gateway as `tollway dev` runs it (tollway.assemble under uvicorn, lifespan on: usage
flushed every 200 ms, settles in tasks), configured from the environment (the tables, the
queue, the key secret and the emulators' endpoints). Its log (the unsent-usage lines
included) goes to standard output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from tollway.assemble import build_app
from tollway.settings import Settings


def main(argv: list[str]) -> int:
    infra, port = Path(argv[0]), int(argv[1])
    app = build_app(Settings.from_environ(os.environ, infra))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", server_header=False
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
