"""A small, real-looking model for the demo and the tests: logistic regression in numpy.

``train(features, labels, config)`` is a valid ``retrain.entry_point``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NUMERIC = [f"x{i}" for i in range(8)]
CATEGORICAL = {"plan": ["basic", "plus", "pro"], "region": ["eu", "us", "apac"]}
FEATURES = [*NUMERIC, *CATEGORICAL]
TRUE_WEIGHTS = np.array([1.2, -0.8, 0.5, 0.0, 0.9, -1.1, 0.3, 0.0])
PLAN_EFFECT = {"basic": -0.5, "plus": 0.0, "pro": 0.7}


def sample_features(n: int, rng: np.random.Generator, *, shifted: bool = False) -> pd.DataFrame:
    """Training-like features; ``shifted`` moves x0 and x3 and changes the plan mix."""
    numeric = rng.normal(0.0, 1.0, size=(n, len(NUMERIC)))
    if shifted:
        numeric[:, 0] += 0.8
        numeric[:, 3] = numeric[:, 3] * 1.8
    frame = pd.DataFrame(numeric, columns=NUMERIC)
    frame["plan"] = rng.choice(CATEGORICAL["plan"], size=n, p=[0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2])
    frame["region"] = rng.choice(CATEGORICAL["region"], size=n, p=[0.4, 0.4, 0.2])
    return frame


def true_labels(features: pd.DataFrame, rng: np.random.Generator, *, concept_shift: bool = False) -> np.ndarray:
    weights = TRUE_WEIGHTS.copy()
    if concept_shift:
        weights[1] = -weights[1]  # the relationship of x1 to the outcome flips: old models go wrong
    logits = features[NUMERIC].to_numpy() @ weights + features["plan"].map(PLAN_EFFECT).to_numpy()
    return np.asarray(rng.random(len(features)) < 1 / (1 + np.exp(-logits)), dtype=int)


@dataclass
class LogisticModel:
    weights: np.ndarray
    bias: float
    means: np.ndarray
    scales: np.ndarray
    # The demo's serving node simulates how long a call takes (its median, in ms): a heavier candidate is slower.
    service_ms: float = 20.0

    def _design(self, features: pd.DataFrame) -> np.ndarray:
        numeric = (features[NUMERIC].to_numpy(dtype=float) - self.means) / self.scales
        one_hot = [
            (features[name].to_numpy() == level).astype(float)[:, None]
            for name, levels in CATEGORICAL.items()
            for level in levels
        ]
        return np.hstack([numeric, *one_hot])

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-(self._design(features) @ self.weights + self.bias))), dtype=float)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(features) >= 0.5).astype(int)


def train(
    features: pd.DataFrame,
    labels: pd.Series,
    config: Any = None,
    *,
    iterations: int = 400,
    learning_rate: float = 0.5,
    l2: float = 1e-3,
) -> LogisticModel:
    """Full-batch gradient descent on the log loss; deterministic."""
    means = features[NUMERIC].to_numpy(dtype=float).mean(axis=0)
    scales = features[NUMERIC].to_numpy(dtype=float).std(axis=0) + 1e-9
    model = LogisticModel(np.zeros(len(NUMERIC) + sum(map(len, CATEGORICAL.values()))), 0.0, means, scales)
    design, target = model._design(features), labels.to_numpy(dtype=float)
    for _ in range(iterations):
        error = 1 / (1 + np.exp(-(design @ model.weights + model.bias))) - target
        model.weights -= learning_rate * (design.T @ error / len(target) + l2 * model.weights)
        model.bias -= learning_rate * float(error.mean())
    return model
