"""The checked-in JSON Schema of the usage event, generated from `UsageEvent`.

python -m tollway.usage.schema schemas          # write
python -m tollway.usage.schema schemas --check  # fail if the file is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from tollway.config.schema import render
from tollway.usage.events import UsageEvent

NAME = "usage-event.v1.schema.json"


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv and not argv[0].startswith("--") else "schemas")
    path = folder / NAME
    text = render(UsageEvent, NAME)
    if "--check" in argv:
        if not path.exists() or path.read_text() != text:
            print(f"stale JSON Schema (run `make schemas`): {path}", file=sys.stderr)
            return 1
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
