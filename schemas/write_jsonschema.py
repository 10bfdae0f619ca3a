"""Regenerate the checked-in JSON Schemas (``make schemas``): events and every record that crosses a boundary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from driftline.schemas import events, records

FOLDER = Path(__file__).parent / "jsonschema"


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, schema in {**events.json_schemas(), **records.json_schemas()}.items():
        (FOLDER / name).write_text(render(schema))
        print(f"wrote {FOLDER / name}")


if __name__ == "__main__":
    main()
