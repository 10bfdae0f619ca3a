from __future__ import annotations

import json
from datetime import UTC, datetime

from driftline.dags.tasks.ingest import plan_partition


def prediction(request_id: str, minute: int, model: str = "m", version: str = "v1", hour: int = 10) -> bytes:
    return json.dumps(
        {
            "event_type": "prediction",
            "model": model,
            "model_version": version,
            "request_id": request_id,
            "event_time": f"2026-05-01T{hour:02d}:{minute:02d}:00Z",
            "features": {"x": 1.5},
            "prediction": 0.5,
            "latency_ms": 3.0,
        }
    ).encode()


def test_records_are_grouped_by_model_version_and_hour_and_invalid_ones_set_aside():
    records = [
        (100, prediction("a", 1)),
        (101, b"{not json"),
        (102, prediction("b", 59)),
        (103, prediction("c", 0, hour=11)),
        (104, prediction("d", 5, version="v2")),
    ]
    plan = plan_partition("predictions", "t", 3, records)
    assert (plan.first_offset, plan.last_offset) == (100, 104)
    assert [(f.model_version, f.hour.hour, [r["request_id"] for r in f.rows]) for f in plan.files] == [
        ("v1", 10, ["a", "b"]),
        ("v1", 11, ["c"]),
        ("v2", 10, ["d"]),
    ]
    assert plan.files[0].hour == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert [r["kafka_offset"] for r in plan.files[0].rows] == [100, 102]
    [dead] = plan.dead_letters
    assert (dead.source, dead.topic, dead.partition, dead.offset, dead.original) == ("ingest", "t", 3, 101, "{not json")
    assert dead.reason.startswith("not valid JSON")


def test_a_label_on_the_predictions_topic_is_set_aside_with_the_reason():
    label = json.dumps(
        {
            "event_type": "label",
            "model": "m",
            "model_version": "v1",
            "request_id": "a",
            "event_time": "2026-05-01T10:00:00Z",
            "label": 1,
        }
    ).encode()
    plan = plan_partition("predictions", "t", 0, [(7, label)])
    assert plan.files == []
    assert plan.dead_letters[0].reason == "field 'event_type': expected 'prediction' on this topic, got 'label'"


def test_a_tombstone_is_set_aside_and_the_records_after_it_are_kept():
    plan = plan_partition("predictions", "t", 0, [(1, None), (2, prediction("a", 1))])
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["a"]
    [dead] = plan.dead_letters
    assert (dead.offset, dead.original) == (1, None) and dead.reason.startswith("tombstone: the message has no value")
