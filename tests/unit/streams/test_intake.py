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


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        (None, "tombstone"),
        (b"\xff not json", "invalid"),
        (raw(latency_ms="12.5"), "invalid"),
        (raw().replace(b"12.5", b"NaN"), "invalid"),
        (raw(features={"blob": "a" * 3000}), "too_large"),
        (raw(event_time="2099-01-01T00:00:00Z"), "out_of_time_bounds"),
        (raw(event_time="2026-04-01T10:00:00Z"), "out_of_time_bounds"),
    ],
)
def test_each_refusal_names_its_cause_for_the_metrics(message, cause):
    outcome = make_intake().take(partition(), 0, message, broker_time=T0)
    assert outcome.refused is not None and outcome.cause == cause


def test_a_late_event_is_refused_as_late():
    intake, acc = make_intake(), partition()
    assert intake.take(acc, 0, raw(event_time="2026-05-01T10:30:00Z"), broker_time=T0.replace(minute=30)).cause is None
    late = intake.take(acc, 1, raw(request_id="r2"), broker_time=T0.replace(minute=30))
    assert late.cause == "late" and late.refused is not None and late.refused.startswith("late event")


def test_counted_events_and_copies_are_tallied_per_model_and_version_until_drained():
    intake, acc = make_intake(), partition()
    intake.take(acc, 0, raw(), broker_time=T0)
    intake.take(acc, 1, raw(), broker_time=T0)  # the same request id again: a producer's retry
    intake.take(acc, 2, raw(request_id="r2", model_version="v2"), broker_time=T0)
    intake.take(acc, 3, raw(request_id="r3", model="stranger"), broker_time=T0)
    intake.take(acc, 4, None, broker_time=T0)
    assert intake.drain() == ({("known", "v1"): 1, ("known", "v2"): 1, ("stranger", "v1"): 1}, 1)
    assert intake.drain() == ({}, 0)
