"""Model performance from labels: metrics, bootstrap confidence intervals, a degradation verdict.

Classification (binary, labels 0/1): accuracy, precision, recall, F1, ROC AUC
(from ranks, ties counted half, as ``sklearn.metrics.roc_auc_score``), log loss.
Regression: MAE, RMSE, MAPE. Confidence intervals are percentile bootstraps
with a seeded generator, vectorised over resamples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Task = Literal["classification", "regression"]
HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "mape": False,
}
_EPS = 1e-15


def _binary(labels: np.ndarray) -> np.ndarray:
    values = np.asarray(labels)
    if not np.isin(values, (0, 1)).all():
        raise ValueError("classification metrics need labels 0 or 1; map the positive class to 1 first")
    return values.astype(np.int8)


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(predicted)))


def precision(labels: np.ndarray, predicted: np.ndarray) -> float:
    y, p = _binary(labels), _binary(predicted)
    positives = p.sum()
    return float((y & p).sum() / positives) if positives else 0.0


def recall(labels: np.ndarray, predicted: np.ndarray) -> float:
    y, p = _binary(labels), _binary(predicted)
    actual = y.sum()
    return float((y & p).sum() / actual) if actual else 0.0


def f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    p, r = precision(labels, predicted), recall(labels, predicted)
    return 2 * p * r / (p + r) if p + r else 0.0


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    from scipy.stats import rankdata

    y = _binary(labels)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if not positives or not negatives:
        raise ValueError("ROC AUC needs both classes among the labels")
    ranks = rankdata(scores)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    y = _binary(labels)
    p = np.clip(np.asarray(probabilities, dtype=float), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def mae(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(labels, float) - np.asarray(predicted, float))))


def rmse(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(labels, float) - np.asarray(predicted, float)) ** 2)))


def mape(labels: np.ndarray, predicted: np.ndarray) -> float:
    y = np.asarray(labels, float)
    if np.any(y == 0):
        raise ValueError("MAPE is undefined when a label is 0; use MAE or RMSE for this target")
    return float(np.mean(np.abs((y - np.asarray(predicted, float)) / y)))


@dataclass(frozen=True)
class MetricEstimate:
    metric: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _metric_functions(task: Task) -> dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]]:
    if task == "classification":
        return {
            "accuracy": lambda y, p, s: accuracy(y, p),
            "precision": lambda y, p, s: precision(y, p),
            "recall": lambda y, p, s: recall(y, p),
            "f1": lambda y, p, s: f1(y, p),
            "roc_auc": lambda y, p, s: roc_auc(y, s),
            "log_loss": lambda y, p, s: log_loss(y, s),
        }
    if task == "regression":
        return {
            "mae": lambda y, p, s: mae(y, p),
            "rmse": lambda y, p, s: rmse(y, p),
            "mape": lambda y, p, s: mape(y, p),
        }
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def evaluate(
    labels: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    task: Task = "classification",
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, MetricEstimate]:
    """Every metric of the task with a percentile-bootstrap interval.

    ``scores`` (probabilities of class 1) enable ROC AUC and log loss; without
    them those two are skipped, as is any metric undefined for the data (MAPE
    with a zero label, ROC AUC with a single class).
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if len(labels) == 0 or len(labels) != len(predicted) or (scores is not None and len(scores) != len(labels)):
        raise ValueError(
            f"labels, predictions and scores must be non-empty and equally long "
            f"(got {len(labels)}, {len(predicted)}, {None if scores is None else len(scores)})"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    functions = _metric_functions(task)
    if scores is None:
        functions = {k: v for k, v in functions.items() if k not in ("roc_auc", "log_loss")}
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, len(labels), size=(n_bootstrap, len(labels)))
    estimates = {}
    for name, function in functions.items():
        try:
            value = function(labels, predicted, scores)
        except ValueError:  # undefined for this data (MAPE with a zero label, AUC with one class): left out
            continue
        boot = []
        for index in resamples:
            try:
                boot.append(function(labels[index], predicted[index], None if scores is None else scores[index]))
            except ValueError:  # a resample with one class has no AUC: it is left out
                continue
        tail = (1 - confidence) / 2
        low, high = np.quantile(boot, [tail, 1 - tail]) if boot else (np.nan, np.nan)
        estimates[name] = MetricEstimate(name, value, float(low), float(high), confidence, len(labels))
    return estimates


@dataclass(frozen=True)
class Degradation:
    metric: str
    reference: float
    current: MetricEstimate
    tolerance: float
    degraded: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "current": self.current.to_dict()}


def degradation(
    reference: dict[str, float], current: dict[str, MetricEstimate], *, tolerance: float = 0.0
) -> list[Degradation]:
    """A metric degraded when even the optimistic end of its interval is worse than the reference by more
    than ``tolerance``.

    (Relative for losses and errors, absolute for scores in [0, 1].) Noise
    alone therefore does not raise it: the whole interval must be on the bad side.
    """
    verdicts = []
    for name, estimate in current.items():
        if name not in reference:
            continue
        baseline = reference[name]
        if HIGHER_IS_BETTER[name]:
            limit = baseline - tolerance
            degraded = estimate.ci_high < limit
            reason = f"{name} {estimate.value:.4f} (CI up to {estimate.ci_high:.4f}) vs reference {baseline:.4f}"
        else:
            limit = baseline * (1 + tolerance)
            degraded = estimate.ci_low > limit
            reason = f"{name} {estimate.value:.4f} (CI from {estimate.ci_low:.4f}) vs reference {baseline:.4f}"
        verdicts.append(Degradation(name, baseline, estimate, tolerance, bool(degraded), reason))
    return verdicts
