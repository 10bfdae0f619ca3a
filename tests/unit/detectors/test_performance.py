from __future__ import annotations

import numpy as np
import pytest

from driftline.detectors import performance as perf


def test_metrics_on_a_hand_checked_example():
    labels = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    predicted = np.array([1, 0, 0, 1, 0, 1, 1, 0])
    scores = np.array([0.9, 0.1, 0.4, 0.8, 0.3, 0.6, 0.7, 0.2])
    assert perf.accuracy(labels, predicted) == 6 / 8
    assert perf.precision(labels, predicted) == 3 / 4
    assert perf.recall(labels, predicted) == 3 / 4
    assert perf.f1(labels, predicted) == 0.75
    # positives 0.9 0.4 0.8 0.7 vs negatives 0.1 0.3 0.6 0.2: 15 of 16 pairs ordered right
    assert perf.roc_auc(labels, scores) == 15 / 16
    expected_loss = -np.mean(np.log([0.9, 0.9, 0.4, 0.8, 0.7, 0.4, 0.7, 0.8]))
    assert perf.log_loss(labels, scores) == pytest.approx(expected_loss, abs=1e-12)
    assert perf.roc_auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5  # ties count one half


def test_regression_metrics():
    y, p = np.array([2.0, 4.0, 8.0]), np.array([3.0, 4.0, 6.0])
    assert perf.mae(y, p) == 1.0
    assert perf.rmse(y, p) == pytest.approx(np.sqrt(5 / 3))
    assert perf.mape(y, p) == pytest.approx((0.5 + 0 + 0.25) / 3)
    with pytest.raises(ValueError, match="MAPE is undefined when a label is 0"):
        perf.mape(np.array([0.0]), np.array([1.0]))


def test_bootstrap_interval_covers_the_value_and_is_seeded():
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 2, 2000)
    scores = np.clip(labels * 0.3 + rng.random(2000) * 0.7, 0, 1)
    predicted = (scores >= 0.5).astype(int)
    first = perf.evaluate(labels, predicted, scores, seed=3)
    assert first == perf.evaluate(labels, predicted, scores, seed=3)
    for estimate in first.values():
        assert estimate.ci_low <= estimate.value <= estimate.ci_high
        assert estimate.ci_high - estimate.ci_low < 0.1
    assert set(perf.evaluate(labels, predicted).keys()) == {"accuracy", "precision", "recall", "f1"}


def test_degradation_needs_the_whole_interval_on_the_bad_side():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 2, 3000)
    good = np.where(rng.random(3000) < 0.9, labels, 1 - labels)  # ≈ 90 % accurate
    worse = np.where(rng.random(3000) < 0.8, labels, 1 - labels)  # ≈ 80 % accurate
    reference = {"accuracy": 0.9}
    assert [d.degraded for d in perf.degradation(reference, perf.evaluate(labels, good))] == [False]
    [verdict] = [d for d in perf.degradation(reference, perf.evaluate(labels, worse)) if d.metric == "accuracy"]
    assert verdict.degraded and "vs reference 0.9000" in verdict.reason
    losses = perf.evaluate(labels.astype(float), labels + rng.normal(0, 1, 3000), task="regression")
    assert set(losses) == {"mae", "rmse"}  # MAPE is undefined with zero labels and left out
    assert [d.degraded for d in perf.degradation({"mae": 0.5, "rmse": 0.6}, losses)] == [True, True]
    assert [d.degraded for d in perf.degradation({"mae": 0.9, "rmse": 1.1}, losses)] == [False, False]
