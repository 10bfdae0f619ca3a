"""Lineage of a retrained version: every metric of its task on the holdout, for it and the serving version."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.dags.tasks.retrain import _is_holdout, validation_metrics, worse
from driftline.infra import demo_model


def test_holdout_split_is_deterministic_and_about_a_fifth():
    ids = [f"req-{i}" for i in range(10_000)]
    first = [_is_holdout(r) for r in ids]
    assert first == [_is_holdout(r) for r in ids]
    assert sum(first) == 1992  # 52/256 = 20.3 % expected; this exact count pins the hash rule
    assert [i for i in range(12) if _is_holdout(f"req-{i}")] == [7]


class Line:
    """A regression model: y = slope * x0."""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.slope * features["x0"].to_numpy()


def test_classification_metrics_include_the_probability_based_ones():
    rng = np.random.default_rng(3)
    features = demo_model.sample_features(2000, rng)
    labels = pd.Series(demo_model.true_labels(features, rng))
    model = demo_model.train(features, labels)
    metrics = validation_metrics(model, features, labels, "classification")
    assert sorted(metrics) == ["accuracy", "f1", "log_loss", "precision", "recall", "roc_auc"]
    assert metrics["accuracy"] == round(float(np.mean(model.predict(features) == labels.to_numpy())), 6)
    assert validation_metrics(model, features.iloc[:0], labels.iloc[:0], "classification") == {}


def test_regression_versions_are_compared_on_mae_and_classification_on_accuracy():
    x = pd.DataFrame({"x0": np.linspace(1, 10, 50)})
    y = pd.Series(2.0 * x["x0"].to_numpy())
    exact, off = validation_metrics(Line(2.0), x, y, "regression"), validation_metrics(Line(2.2), x, y, "regression")
    assert exact == {"mae": 0.0, "rmse": 0.0, "mape": 0.0}
    assert off["mae"] == round(float(np.mean(0.2 * x["x0"])), 6) and off["mape"] == 0.1
    assert worse(off, exact, "regression", 0.0) == "holdout mae 1.1000 > serving 0.0000"
    assert worse(exact, off, "regression", 0.0) is None
    assert worse({"accuracy": 0.80}, {"accuracy": 0.81}, "classification", 0.02) is None  # within the tolerance
    assert worse({"accuracy": 0.78}, {"accuracy": 0.81}, "classification", 0.02) == (
        "holdout accuracy 0.7800 < serving 0.8100"
    )
