"""The checked-in JSON Schemas of the usage event and of the SQS message that carries events,
generated from `UsageEvent` and `UsageMessage`.

python -m tollway.usage.schema schemas          # write
python -m tollway.usage.schema schemas --check  # fail if the file is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from tollway.config.schema import render
from tollway.usage.events import UsageEvent, UsageMessage

NAME = "usage-event.v1.schema.json"
MESSAGE_NAME = "usage-message.v1.schema.json"


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv and not argv[0].startswith("--") else "schemas")
    stale = 0
    for model, name in ((UsageEvent, NAME), (UsageMessage, MESSAGE_NAME)):
        path = folder / name
        text = render(model, name)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                print(f"stale JSON Schema (run `make schemas`): {path}", file=sys.stderr)
                stale += 1
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
