"""Regenerate the checked-in JSON Schemas (``make schemas``): events and every record that crosses a boundary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from driftline.schemas import events, records, reports, worker_state

FOLDER = Path(__file__).parent / "jsonschema"


RECORDS: tuple[type[records.Record], ...] = (
    records.DeadLetter,
    records.WindowMetrics,
    records.Alert,
    records.DriftSummary,
    records.RetrainRequest,
    records.ModelVersion,
    records.DeploymentEvent,
    records.DeploymentState,
    records.IngestLedger,
    records.IngestProgress,
    records.QuarantinedFile,
    records.ReferenceSource,
    worker_state.PartitionReport,
    worker_state.PartitionCheckpoint,
    worker_state.MergerCheckpoint,
    records.WindowPerformance,
    reports.DriftReport,
)


def record_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the records, by file name (``<record type>.v<its version>.json``)."""
    return {
        f"{record.record_type}.v{record.kind_version()}.json": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://driftline.dev/schemas/{record.record_type}.v{record.kind_version()}.json",
            **record.model_json_schema(),
        }
        for record in RECORDS
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, schema in {**events.json_schemas(), **record_schemas()}.items():
        (FOLDER / name).write_text(render(schema))
        print(f"wrote {FOLDER / name}")


if __name__ == "__main__":
    main()
