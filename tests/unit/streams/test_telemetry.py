from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.streams.telemetry import RATE_SPAN, WorkerTelemetry
from driftline.streams.windows import WindowAggregate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def samples(telemetry: WorkerTelemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back with prometheus_client's own parser."""
    text = telemetry.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_batch_counts_events_by_outcome_model_and_dead_letter_cause():
    telemetry = WorkerTelemetry(clock=Clock())
    telemetry.batch(
        counted={("churn", "v3"): 7, ("churn", "v4"): 2},
        dead_lettered={"late": 2, "invalid": 1},
        duplicates=1,
        taken=13,
    )
    telemetry.batch(counted={("churn", "v3"): 1}, dead_lettered={}, duplicates=0, taken=1)
    got = samples(telemetry)
    assert got[("driftline_events_total", (("outcome", "counted"),))] == 10
    assert got[("driftline_events_total", (("outcome", "dead_lettered"),))] == 3
    assert got[("driftline_events_total", (("outcome", "duplicate"),))] == 1
    assert got[("driftline_model_events_total", (("model", "churn"), ("model_version", "v3")))] == 8
    assert got[("driftline_model_events_total", (("model", "churn"), ("model_version", "v4")))] == 2
    assert got[("driftline_dead_letters_total", (("reason", "late"),))] == 2
    assert got[("driftline_dead_letters_total", (("reason", "invalid"),))] == 1


def test_the_rate_counts_what_was_taken_in_the_last_span_only():
    clock = Clock()
    telemetry = WorkerTelemetry(clock=clock)
    telemetry.note_taken(500)
    clock.now += RATE_SPAN / 2
    telemetry.note_taken(300)
    assert telemetry.rate._value.get() == 800 / RATE_SPAN
    clock.now += RATE_SPAN / 2 + 0.1  # the first batch is now older than the span
    telemetry.note_taken(0)
    assert telemetry.rate._value.get() == 300 / RATE_SPAN


def test_lags_of_partitions_no_longer_held_disappear():
    telemetry = WorkerTelemetry()
    telemetry.partitions("p.predictions", {0: 5, 1: 0, 2: None}, open_windows=4)
    got = samples(telemetry)
    assert got[("driftline_consumer_lag", (("partition", "0"), ("topic", "p.predictions")))] == 5
    assert got[("driftline_consumer_lag", (("partition", "1"), ("topic", "p.predictions")))] == 0
    assert ("driftline_consumer_lag", (("partition", "2"), ("topic", "p.predictions"))) not in got  # unknown
    assert got[("driftline_partitions_assigned", ())] == 3 and got[("driftline_open_windows", ())] == 4
    telemetry.partitions("p.predictions", {1: 2}, open_windows=0)
    got = samples(telemetry)
    assert ("driftline_consumer_lag", (("partition", "0"), ("topic", "p.predictions"))) not in got
    assert got[("driftline_consumer_lag", (("partition", "1"), ("topic", "p.predictions")))] == 2


def test_a_published_window_sets_its_versions_gauges():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    aggregate = WindowAggregate("churn", "v3", start, start + timedelta(minutes=5))
    for latency, error in ((10.0, None), (20.0, "Timeout"), (30.0, None), (40.0, None)):
        aggregate.add(latency, error)
    telemetry = WorkerTelemetry()
    metrics = aggregate.snapshot()
    telemetry.window_published(metrics)
    got = samples(telemetry)
    version = (("model", "churn"), ("model_version", "v3"))
    assert got[("driftline_window_error_rate", version)] == 0.25
    assert got[("driftline_window_events", version)] == 4
    assert got[("driftline_window_end_timestamp_seconds", version)] == (start + timedelta(minutes=5)).timestamp()
    assert got[("driftline_window_latency_ms", (*version, ("quantile", "0.95")))] == metrics.latency_p95_ms
    assert got[("driftline_windows_published_total", ())] == 1


def test_alert_outcomes_are_counted_by_kind():
    telemetry = WorkerTelemetry()
    telemetry.alert("threshold", "delivered")
    telemetry.alert("threshold", "attempt_failed", 2)
    telemetry.alert("threshold", "attempt_failed", 0)
    got = samples(telemetry)
    assert got[("driftline_alerts_total", (("kind", "threshold"), ("outcome", "delivered")))] == 1
    assert got[("driftline_alerts_total", (("kind", "threshold"), ("outcome", "attempt_failed")))] == 2


def test_a_windows_causes_classes_and_prediction_figures_replace_the_last_ones():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    first = WindowAggregate("churn", "v3", start, start + timedelta(minutes=1))
    for i in range(60):
        first.add(5.0, "Timeout" if i < 6 else None, prediction="stay" if i % 3 else "churn", fallback=i < 3)
    telemetry = WorkerTelemetry()
    telemetry.window_published(first.snapshot())
    version = (("model", "churn"), ("model_version", "v3"))
    got = samples(telemetry)
    assert got[("driftline_window_errors", (("cause", "Timeout"), *version))] == 6
    assert got[("driftline_window_fallback_rate", version)] == 0.05
    assert got[("driftline_window_requests_per_second", version)] == 1.0
    assert got[("driftline_window_prediction_class_share", (("class", "churn"), *version))] == 20 / 60
    second = WindowAggregate("churn", "v3", start + timedelta(minutes=1), start + timedelta(minutes=2))
    for value in (0.1, 0.2, 0.9):
        second.add(5.0, "Refused", prediction=value)
    telemetry.window_published(second.snapshot())
    got = samples(telemetry)
    assert ("driftline_window_errors", (("cause", "Timeout"), *version)) not in got  # only the last window's
    assert got[("driftline_window_errors", (("cause", "Refused"), *version))] == 3
    assert not [k for k in got if k[0] == "driftline_window_prediction_class_share"]
    assert got[("driftline_window_prediction_mean", version)] == pytest.approx(0.4)
    assert got[("driftline_window_prediction", (*version, ("quantile", "0.5")))] == pytest.approx(0.2, rel=0.01)


def test_the_label_joins_state_and_lag_are_served():
    from driftline.schemas.config import PerformanceSettings
    from driftline.schemas.events import EventLimits
    from driftline.streams.label_join import LabelJoin

    settings = PerformanceSettings(label_deadline=timedelta(hours=1))
    limits = EventLimits(max_bytes=1_000, max_age=timedelta(days=1), max_future=timedelta(minutes=5))
    join = LabelJoin("p.labels", 0, lambda m: settings, lambda m: timedelta(minutes=5), timedelta(seconds=30), limits,
                     max_pending=100)  # fmt: skip
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    for n in range(103):
        join.expect(f"r{n}", "m", "v1", start, start + timedelta(minutes=5), 0.5)
    telemetry = WorkerTelemetry()
    telemetry.label_join("p.labels", {0: 7, 1: None}, [join])
    got = samples(telemetry)
    assert got[("driftline_consumer_lag", (("partition", "0"), ("topic", "p.labels")))] == 7
    assert got[("driftline_label_join_pending", ())] == 100 and got[("driftline_label_join_early", ())] == 0
    assert got[("driftline_label_join_given_up", (("kind", "evicted_predictions"),))] == 3
