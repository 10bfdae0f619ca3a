"""Regenerate the checked-in JSON Schemas: ``python -m driftline.schemas.write_jsonschema``."""

from __future__ import annotations

import json
from pathlib import Path

from driftline.schemas.events import json_schemas

FOLDER = Path(__file__).parent / "jsonschema"


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, schema in json_schemas().items():
        (FOLDER / name).write_text(render(schema))
        print(f"wrote {FOLDER / name}")


if __name__ == "__main__":
    main()
