from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from driftline.dags.tasks.performance import (
    ConfidenceSums,
    PredictionSample,
    check_model_age,
    estimated_performance,
    realized_performance,
    request_hashes,
)
from driftline.schemas.config import MonitorConfig, PerformanceSettings
from driftline.schemas.storage import Storage, state
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import store as rollout_store

T0 = datetime(2026, 5, 1, 6, tzinfo=UTC)


def frames(scores: list[float], labels: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"r{i}" for i in range(len(scores))]
    return (
        pd.DataFrame({"request_id": ids, "prediction": scores}),
        pd.DataFrame({"request_id": ids, "label": labels}),
    )


def test_realized_accuracy_is_exact_and_a_drop_beyond_the_interval_is_degraded():
    settings = PerformanceSettings(min_labels=10)
    # 100 rows: 70 right (score 0.9 and label 1), 30 wrong (score 0.8, label 0).
    predictions, labels = frames([0.9] * 70 + [0.8] * 30, [1.0] * 70 + [0.0] * 30)
    section = realized_performance(predictions, labels, settings, {"accuracy": 0.95})
    accuracy = section["metrics"]["accuracy"]
    assert accuracy["value"] == 0.7 and accuracy["n"] == 100
    assert accuracy["ci_low"] < 0.7 < accuracy["ci_high"] < 0.95 - 0.02
    assert section["status"] == "degraded" and [d["metric"] for d in section["degraded"]] == ["accuracy"]
    assert realized_performance(predictions, labels, settings, {"accuracy": 0.72})["status"] == "ok"  # within noise


def test_labels_are_joined_on_request_id_and_too_few_give_no_verdict():
    predictions, labels = frames([0.9, 0.2, 0.7], [1.0, 0.0, 0.0])
    labels = pd.concat([labels, pd.DataFrame({"request_id": ["other"], "label": [1.0]})])
    section = realized_performance(predictions, labels, PerformanceSettings(min_labels=10), {"accuracy": 0.9})
    assert section == {"status": "insufficient_labels", "labelled_rows": 3, "min_labels": 10}


def test_regression_metrics_are_exact():
    predictions, labels = frames([1.0, 2.0, 4.0] * 4, [1.0, 3.0, 2.0] * 4)
    section = realized_performance(predictions, labels, PerformanceSettings(task="regression", min_labels=10), {})
    assert section["metrics"]["mae"]["value"] == pytest.approx(1.0)
    assert section["metrics"]["rmse"]["value"] == pytest.approx(np.sqrt(5 / 3))


def sums(*batches: list[float]) -> ConfidenceSums:
    total = ConfidenceSums()
    for batch in batches:
        total.add(np.array(batch, dtype=float))
    return total


def test_the_confidence_based_estimate_is_the_mean_probability_of_being_right():
    scores = sums([0.9, 0.2], [0.6, float("nan"), 0.5])  # summed batch by batch; a missing score is skipped
    estimate = estimated_performance(scores, PerformanceSettings())
    assert estimate is not None and estimate["value"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4)
    assert estimate["rows"] == 4
    half = 1.959963984540054 * np.sqrt(0.9 * 0.1 + 0.8 * 0.2 + 0.6 * 0.4 + 0.5 * 0.5) / 4
    assert (estimate["ci_low"], estimate["ci_high"]) == pytest.approx((0.7 - half, 1.0))  # clipped to [0, 1]
    assert estimated_performance(sums([0.5], [3.0]), PerformanceSettings()) is None  # not scores
    assert estimated_performance(scores, PerformanceSettings(task="regression")) is None


def test_the_prediction_sample_keeps_every_prediction_up_to_its_capacity_and_then_a_consistent_uniform_part():
    ids = np.array([f"r{i}" for i in range(1000)], dtype=object)
    small = PredictionSample(capacity=1000)
    for part in range(0, 1000, 300):
        small.add(ids[part : part + 300], np.arange(part, min(part + 300, 1000), dtype=float))
    assert not small.sampled and sorted(small.frame()["request_id"]) == sorted(ids)
    bounded = PredictionSample(capacity=100)
    for part in range(0, 1000, 70):
        bounded.add(ids[part : part + 70], np.zeros(len(ids[part : part + 70])))
    kept = bounded.frame()
    assert bounded.sampled and bounded.seen == 1000 and len(kept) == 100
    # The 100 requests with the smallest hashes, whatever the order they came in: a label process keeps the same.
    smallest = ids[np.argsort(request_hashes(ids))[:100]]
    assert sorted(kept["request_id"]) == sorted(smallest)
    again = PredictionSample(capacity=100)
    again.add(ids[::-1].copy(), np.zeros(1000))
    assert sorted(again.frame()["request_id"]) == sorted(smallest)


def test_a_model_served_longer_than_its_max_age_is_alerted_once_per_version(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    config = MonitorConfig.model_validate({"model": "m", "reference": "r.parquet", "retrain": {"max_age": "30d"}})
    model_store.save_model(storage, {"a": 1}, name="m", version="v1", trained_at=T0)
    rollout_store.switch(storage, "m", "v1", reason="initial", signing_key=None)
    assert check_model_age(storage, config, T0 + timedelta(days=30)) is None
    finding = check_model_age(storage, config, T0 + timedelta(days=31))
    assert finding is not None and "trained 31 days before this window" in finding
    assert check_model_age(storage, config, T0 + timedelta(days=32)) is not None
    [alert] = state.pending_alerts(storage)  # the same version: one alert
    assert alert.kind == "model_age" and "retrain.max_age is 30 days" in (alert.text or "")
    off = MonitorConfig.model_validate({"model": "m", "reference": "r.parquet", "retrain": {"max_age": 0}})
    assert check_model_age(storage, off, T0 + timedelta(days=400)) is None
