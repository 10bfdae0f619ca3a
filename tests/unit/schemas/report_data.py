"""A whole drift report as its JSON holds it, for tests of the report's readers and of decisions on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

HOUR = datetime(2026, 5, 1, 6, tzinfo=UTC)


def report_fields(drifted: list[str], features: int) -> dict[str, Any]:
    """A whole report of a window in which ``drifted`` of ``features`` features drifted and nothing else happened."""
    return {
        "model": "m",
        "model_versions": ["v1"],
        "window_start": HOUR.isoformat(),
        "window_end": (HOUR + timedelta(hours=1)).isoformat(),
        "generated_at": (HOUR + timedelta(hours=1, minutes=5)).isoformat(),
        "current_rows": 500,
        "reference_rows": 2000,
        "alpha": 0.05,
        "correction": "fdr",
        "verdict": "drift" if drifted else "no_drift",
        "drifted_features": drifted,
        "share_drifted": len(drifted) / features,
        "minor_features": [],
        "insufficient_data": [],
        "multivariate": {"status": "off"},
        "features": [],
        "quality": [],
        "skipped_files": [],
        "skipped_events_at_most": 0,
        "production_drift": {"status": "off"},
        "segments": [],
        "performance": {"realized": {"status": "insufficient_labels", "labelled_rows": 0}, "estimated": None},
        "model_age": None,
        "alert": False,
        "quality_alert": False,
        "retrain_requested": False,
        "alerts_held_back": {},
    }
