"""JSON Schemas of the infra files, generated from the models, for editors and CI.

python -m tollway.config.schema schemas          # write
python -m tollway.config.schema schemas --check  # fail if the files are stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from tollway.config.models import Gateway, Plans, RouteFile

SCHEMAS: dict[str, type[BaseModel]] = {
    "gateway.schema.json": Gateway,
    "plans.schema.json": Plans,
    "routes.schema.json": RouteFile,
}


def render(model: type[BaseModel], name: str) -> str:
    schema = model.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "schemas")
    check = "--check" in argv
    stale = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, model in SCHEMAS.items():
        text = render(model, name)
        path = folder / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print("stale JSON Schemas (run `make schemas`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
