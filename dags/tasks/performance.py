"""The truth of a drift window: realized performance once its labels are stored, an estimate before, and the
serving model's age.

:func:`realized_performance` and :func:`estimated_performance` are pure (rows in, a report section out);
:func:`window_performance` reads the window's labels; :func:`check_model_age` queues the age alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from driftline.detectors.performance import degradation, evaluate
from driftline.schemas.config import MonitorConfig, PerformanceSettings
from driftline.schemas.records import QuarantinedFile
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage import models as model_store

Z_95 = 1.959963984540054


def realized_performance(
    predictions: pd.DataFrame, labels: pd.DataFrame, settings: PerformanceSettings, reference: dict[str, float]
) -> dict[str, Any]:
    """The window's metrics with 95 % bootstrap intervals, from its predictions joined to their labels on request
    id, and which metrics degraded against ``reference`` (the whole interval worse by more than the tolerance).
    Fewer labelled rows than ``min_labels``: ``insufficient_labels``, no verdict. Pure."""
    if predictions.empty or labels.empty or "prediction" not in predictions:
        return {"status": "insufficient_labels", "labelled_rows": 0, "min_labels": settings.min_labels}
    label_name = events.label_column(labels)
    joined = predictions.drop_duplicates("request_id").merge(
        labels.drop_duplicates("request_id")[["request_id", label_name]], on="request_id", how="inner"
    )
    joined = joined[joined["prediction"].notna() & joined[label_name].notna()]
    if len(joined) < settings.min_labels:
        return {"status": "insufficient_labels", "labelled_rows": len(joined), "min_labels": settings.min_labels}
    truth = joined[label_name].to_numpy(dtype=float)
    scores = joined["prediction"].to_numpy(dtype=float)
    if settings.task == "classification":
        predicted = (scores >= settings.threshold).astype(float)
        probabilities = scores if ((scores >= 0) & (scores <= 1)).all() else None
        metrics = evaluate(truth, predicted, probabilities, task="classification")
    else:
        metrics = evaluate(truth, scores, task="regression")
    verdicts = degradation(reference, metrics, tolerance=settings.tolerance)
    return {
        "status": "degraded" if any(v.degraded for v in verdicts) else "ok",
        "labelled_rows": len(joined),
        "metrics": {name: estimate.to_dict() for name, estimate in metrics.items()},
        "reference": reference,
        "degraded": [v.to_dict() for v in verdicts if v.degraded],
    }


def estimated_performance(predictions: pd.DataFrame, settings: PerformanceSettings) -> dict[str, Any] | None:
    """Accuracy expected from the window's own scores before any label arrives (confidence-based, as CBPE does):
    a calibrated score p is right with probability p when it says 1 and 1 - p when it says 0. The interval is the
    normal approximation of that sum of Bernoulli trials. Only for classifiers with scores in [0, 1]; it is as
    good as the calibration, so a drift in calibration shows in the realized figure, not here. Pure."""
    if settings.task != "classification" or "prediction" not in predictions:
        return None
    scores = predictions["prediction"].dropna().to_numpy(dtype=float)
    if len(scores) == 0 or not ((scores >= 0) & (scores <= 1)).all():
        return None
    right = np.where(scores >= settings.threshold, scores, 1 - scores)
    value = float(right.mean())
    half = Z_95 * float(np.sqrt((right * (1 - right)).sum())) / len(right)
    return {
        "method": "confidence-based (CBPE)",
        "metric": "accuracy",
        "value": value,
        "ci_low": max(0.0, value - half),
        "ci_high": min(1.0, value + half),
        "rows": len(right),
    }


def performance_reference(storage: Storage, config: MonitorConfig) -> dict[str, float]:
    """The configured reference metrics, else the serving version's holdout accuracy, else none."""
    if config.performance.reference:
        return dict(config.performance.reference)
    version = model_store.serving_version(storage, config.model)
    if version is None or version.holdout_accuracy is None:
        return {}
    return {"accuracy": version.holdout_accuracy}


def window_performance(
    storage: Storage, config: MonitorConfig, predictions: pd.DataFrame, window: tuple[datetime, datetime], now: datetime
) -> tuple[dict[str, Any], list[QuarantinedFile]]:
    """The report's ``performance`` section: realized (labels stored from the window's start until now, since
    labels come late) and estimated; and the unreadable label files moved to quarantine on the way."""
    labels, quarantined = events.read_window_events(storage, "labels", config.model, window[0], max(window[1], now))
    reference = performance_reference(storage, config)
    section = {
        "realized": realized_performance(predictions, labels, config.performance, reference),
        "estimated": estimated_performance(predictions, config.performance),
    }
    return section, quarantined


def check_model_age(storage: Storage, config: MonitorConfig, window_end: datetime) -> str | None:
    """Queue a ``model_age`` alert (once per version) when the serving version was trained more than
    ``retrain.max_age`` before ``window_end``; returns the finding, or none."""
    if config.retrain.max_age <= timedelta(0):
        return None
    version = model_store.serving_version(storage, config.model)
    if version is None:
        return None
    age = window_end - version.trained_at
    if age <= config.retrain.max_age:
        return None
    finding = (
        f"model *{config.model}* is served by {version.version}, trained {age.days} days before this window "
        f"({version.trained_at:%Y-%m-%d}); retrain.max_age is {config.retrain.max_age.days} days"
    )
    state.queue_occurrence_alert(
        storage,
        kind="model_age",
        model=config.model,
        key=version.version,
        text=f":hourglass: driftline: {finding}. Retrain it, or raise retrain.max_age.",
        channel=config.alerts.slack_channel,
    )
    return finding
