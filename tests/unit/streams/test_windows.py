from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.schemas.records import WindowMetrics
from driftline.streams.windows import LatencySketch, WindowAggregate, merge_snapshots, window_start


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
        a.add(10.0 + i, failed=i % 10 == 0)  # 3 errors
    for _ in range(10):
        b.add(100.0, failed=True)
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
        aggregate.add(latency, failed=False)
    snapshot = aggregate.snapshot()
    again = WindowMetrics.parse(snapshot.to_json())
    assert again == snapshot
    assert WindowAggregate.from_snapshot(again).latency.quantile(0.5) == aggregate.latency.quantile(0.5)
