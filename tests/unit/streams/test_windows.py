from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.schemas.records import WindowMetrics
from driftline.streams.windows import LatencySketch, PredictionSketch, WindowAggregate, merge_snapshots, window_start


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sketch_quantiles_are_within_one_percent_of_the_exact_order_statistic(seed):
    values = np.random.default_rng(seed).lognormal(np.log(30), 0.8, size=20_000)
    sketch = LatencySketch()
    for value in values:
        sketch.add(float(value))
    for q in (0.5, 0.95, 0.99):
        exact = np.quantile(values, q, method="lower")
        assert abs(sketch.quantile(q) - exact) <= 0.01 * exact


def test_merged_sketches_answer_like_one_sketch_over_all_values():
    values = np.random.default_rng(3).exponential(20, size=5000)
    whole, left, right = LatencySketch(), LatencySketch(), LatencySketch()
    for i, value in enumerate(values):
        whole.add(float(value))
        (left if i % 3 else right).add(float(value))
    merged = left.merge(right)
    assert merged.buckets == whole.buckets and merged.count == 5000
    assert [merged.quantile(q) for q in (0.5, 0.95, 0.99)] == [whole.quantile(q) for q in (0.5, 0.95, 0.99)]
    assert LatencySketch.from_record(merged.to_record()).quantile(0.95) == whole.quantile(0.95)


def test_sketch_edges():
    sketch = LatencySketch()
    assert sketch.quantile(0.5) is None
    sketch.add(0.0)
    assert sketch.quantile(0.99) == 0.0
    with pytest.raises(ValueError, match="finite non-negative"):
        sketch.add(-1.0)


def test_window_start_is_epoch_aligned():
    at = datetime(2026, 5, 1, 10, 7, 42, tzinfo=UTC)
    assert window_start(at, timedelta(minutes=5)) == datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    assert window_start(at, timedelta(hours=1)) == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_snapshot_counts_and_merge_of_partials():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    a = WindowAggregate("m", "v1", start, start + timedelta(minutes=5))
    b = WindowAggregate("m", "v1", start, start + timedelta(minutes=5))
    for i in range(30):
        a.add(10.0 + i, "E" if i % 10 == 0 else None)  # 3 errors
    for _ in range(10):
        b.add(100.0, "E")
    a.partitions.add(0)
    b.partitions.add(1)
    merged = merge_snapshots([a.snapshot(), b.snapshot()])
    assert len(merged) == 1
    assert merged[0].count == 40 and merged[0].errors == 13
    assert merged[0].error_rate == 13 / 40
    assert merged[0].partitions == [0, 1]


def test_a_snapshot_survives_its_wire_form():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    aggregate = WindowAggregate("m", "v1", start, start + timedelta(minutes=5))
    for latency in (1.0, 2.0, 40.0):
        aggregate.add(latency, None)
    snapshot = aggregate.snapshot()
    again = WindowMetrics.parse(snapshot.to_json())
    assert again == snapshot
    assert WindowAggregate.from_snapshot(again).latency.quantile(0.5) == aggregate.latency.quantile(0.5)


def test_errors_by_cause_fallbacks_and_throughput_are_counted_exactly():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    aggregate = WindowAggregate("m", "v1", start, start + timedelta(minutes=5))
    for i in range(300):
        error = ("Timeout" if i % 3 else "ValueError") if i % 10 == 0 else None
        aggregate.add(5.0, error, prediction=0.5, fallback=i % 4 == 0)
    snapshot = aggregate.snapshot()
    assert snapshot.errors == 30 and snapshot.errors_by_cause == {"Timeout": 20, "ValueError": 10}
    assert (snapshot.fallbacks, snapshot.fallback_rate) == (75, 0.25)
    assert snapshot.throughput_per_s == 1.0  # 300 requests in 300 s
    assert snapshot.requests == 300 and snapshot.error_rate == 0.1


def test_sampled_events_count_for_the_requests_they_stand_for():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    aggregate = WindowAggregate("m", "v1", start, start + timedelta(minutes=1))
    for _ in range(30):
        aggregate.add(5.0, None, sample_rate=0.1)  # each stands for 10 requests
    for _ in range(6):
        aggregate.add(5.0, "Timeout", sample_rate=1.0)  # errors are always kept
    snapshot = aggregate.snapshot()
    assert snapshot.count == 36 and snapshot.requests == 306
    assert snapshot.error_rate == 6 / 306  # not 6 / 36: the unsampled errors do not inflate the rate
    assert snapshot.throughput_per_s == 306 / 60


def test_error_causes_beyond_those_kept_are_summed_and_merges_keep_the_commonest():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    a = WindowAggregate("m", "v1", start, start + timedelta(minutes=1))
    b = WindowAggregate("m", "v1", start, start + timedelta(minutes=1))
    for i in range(25):
        a.add(1.0, f"E{i:02d}")
    a.add(1.0, "E00")
    b.add(1.0, "X" * 500)  # long texts are cut to 200 characters
    b.add(1.0, "X" * 300)
    assert sum(a.causes.values()) == 26 and a.causes["(other)"] == 5 and a.causes["E00"] == 2
    merged = a.merge(b).snapshot()
    assert sum(merged.errors_by_cause.values()) == merged.errors == 28
    assert merged.errors_by_cause["X" * 200] == 2 and merged.errors_by_cause["E00"] == 2
    assert len(merged.errors_by_cause) == 21  # 20 kept and "(other)"


def test_the_prediction_sketch_answers_quantiles_of_signed_values_and_counts_classes():
    rng = np.random.default_rng(5)
    values = rng.normal(0.2, 1.0, 5_000)
    sketch = PredictionSketch()
    left, right = PredictionSketch(), PredictionSketch()
    for i, value in enumerate(values):
        sketch.add(float(value))
        (left if i % 2 else right).add(float(value))
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        exact = float(np.quantile(values, q, method="lower"))
        assert abs(sketch.quantile(q) - exact) <= 0.01 * abs(exact) + 1e-9
    assert sketch.mean == pytest.approx(values.mean())
    assert (sketch.minimum, sketch.maximum) == (values.min(), values.max())
    assert left.merge(right).to_record() == PredictionSketch.from_record(sketch.to_record()).to_record().model_copy(
        update={"total": left.merge(right).total, "total_squares": left.merge(right).total_squares}
    )
    classes = PredictionSketch()
    for label in ["churn"] * 3 + ["stay"] + [True, False, None]:
        classes.add(label)
    assert classes.to_record().classes == {"churn": 3, "false": 1, "stay": 1, "true": 1}
    assert (classes.missing, classes.numeric, classes.mean) == (1, 0, None)


def test_classes_beyond_those_kept_are_summed():
    sketch = PredictionSketch()
    for i in range(60):
        sketch.add(f"c{i:02d}")
    sketch.add("c00")
    assert len(sketch.classes) == 50 and sketch.other_classes == 10 and sketch.classes["c00"] == 2


def test_an_older_writers_window_without_the_new_fields_reads_back():
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    aggregate = WindowAggregate("m", "v1", start, start + timedelta(minutes=5))
    aggregate.add(3.0, "E")
    old = {
        k: v
        for k, v in json.loads(aggregate.snapshot().to_json()).items()
        if k in {"schema_version", "model", "model_version", "window_start", "window_end", "count", "errors"}
        or k.startswith("latency")
        or k in {"error_rate", "partitions"}
    }
    again = WindowAggregate.from_snapshot(WindowMetrics.parse(old))
    assert (again.count, again.errors, again.requests, again.estimated_errors) == (1, 1, 1.0, 1.0)
