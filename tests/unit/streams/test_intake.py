from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from driftline.schemas.config import MonitorConfig
from driftline.streams.intake import TOMBSTONE_REASON, PredictionIntake
from tests.unit.streams.test_partition_state import accumulator as partition

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def raw(**changes: object) -> bytes:
    event = {
        "event_type": "prediction",
        "model": "known",
        "model_version": "v1",
        "request_id": "r1",
        "event_time": "2026-05-01T10:00:05Z",
        "features": {"x": 1.0},
        "prediction": 0.5,
        "latency_ms": 12.5,
    }
    event.update(changes)
    return json.dumps(event).encode()


def make_intake() -> PredictionIntake:
    configs = {"known": MonitorConfig(model="known", reference="r.parquet")}
    return PredictionIntake(configs, max_bytes=2000)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (None, TOMBSTONE_REASON),
        (b"{not json", "not valid JSON"),
        (raw(latency_ms="12.5"), "field 'latency_ms': Input should be a valid number"),
        (raw(latency_ms=True), "field 'latency_ms': Input should be a valid number"),
        (raw().replace(b"12.5", b"NaN"), "NaN is not a JSON number"),
        (raw().replace(b'"x": 1.0', b'"x": Infinity'), "Infinity is not a JSON number"),
        (raw(features={"blob": "a" * 3000}), "exceeds the limit of 2,000 bytes (DRIFTLINE_MAX_EVENT_BYTES)"),
        (raw(event_time="2099-01-01T00:00:00Z"), "DRIFTLINE_MAX_EVENT_FUTURE_SECONDS"),
    ],
)
def test_every_kind_of_bad_message_is_refused_with_its_reason_and_the_next_one_counts(message, reason):
    intake, acc = make_intake(), partition()
    outcome = intake.take(acc, 0, message, broker_time=T0)
    assert outcome.refused is not None and reason in outcome.refused
    assert acc.last_offset == 0  # held as seen: a replay after a restart skips it
    assert intake.take(acc, 1, raw(), broker_time=T0).refused is None
    assert sum(a.count for a in acc.open_windows.values()) == 1


def test_an_unknown_model_is_counted_and_flagged_once():
    intake, acc = make_intake(), partition()
    first = intake.take(acc, 0, raw(model="stranger"), broker_time=T0)
    assert first.refused is None and first.alert is not None
    assert first.alert.kind == "unconfigured_model" and "*stranger*" in (first.alert.text or "")
    again = intake.take(partition(1), 0, raw(model="stranger", request_id="r2"), broker_time=T0)
    assert again.alert is None
    assert intake.unconfigured == {"stranger": 2}
    assert intake.take(acc, 1, raw(), broker_time=T0).alert is None  # a configured model says nothing
