from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from driftline.dags.tasks.ingest import plan_partition
from driftline.schemas.events import EventLimits

RECEIVED = datetime(2026, 5, 1, 12, tzinfo=UTC)  # the broker's timestamp for the records below
LIMITS = EventLimits(max_bytes=2000, max_age=timedelta(days=1), max_future=timedelta(minutes=5))


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
        (100, prediction("a", 1), RECEIVED),
        (101, b"{not json", RECEIVED),
        (102, prediction("b", 59), RECEIVED),
        (103, prediction("c", 0, hour=11), RECEIVED),
        (104, prediction("d", 5, version="v2"), RECEIVED),
    ]
    plan = plan_partition("predictions", "t", 3, records, LIMITS)
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
    plan = plan_partition("predictions", "t", 0, [(7, label, RECEIVED)], LIMITS)
    assert plan.files == []
    assert plan.dead_letters[0].reason == "field 'event_type': expected 'prediction' on this topic, got 'label'"


def test_a_tombstone_is_set_aside_and_the_records_after_it_are_kept():
    plan = plan_partition("predictions", "t", 0, [(1, None, RECEIVED), (2, prediction("a", 1), RECEIVED)], LIMITS)
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["a"]
    [dead] = plan.dead_letters
    assert (dead.offset, dead.original) == (1, None) and dead.reason.startswith("tombstone: the message has no value")


def test_ingest_refuses_what_the_worker_refuses_so_no_event_can_move_the_window():
    future = prediction("future", 0).replace(b"2026-05-01T10:00:00Z", b"2099-01-01T00:00:00Z")
    huge = json.dumps({**json.loads(prediction("huge", 1)), "features": {"blob": "x" * 3000}}).encode()
    plan = plan_partition(
        "predictions", "t", 0, [(1, future, RECEIVED), (2, huge, RECEIVED), (3, prediction("ok", 2), RECEIVED)], LIMITS
    )
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["ok"]
    reasons = [d.reason for d in plan.dead_letters]
    assert "DRIFTLINE_MAX_EVENT_FUTURE_SECONDS" in reasons[0] and "DRIFTLINE_MAX_EVENT_BYTES" in reasons[1]


def test_an_event_whose_message_is_also_stamped_2099_is_refused():
    far = datetime(2099, 1, 1, tzinfo=UTC)
    future = prediction("future", 0).replace(b"2026-05-01T10:00:00Z", b"2099-01-01T00:00:00Z")
    plan = plan_partition("predictions", "t", 0, [(1, future, far), (2, prediction("ok", 2), None)], LIMITS)
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["ok"]
    assert "after it was read" in plan.dead_letters[0].reason
