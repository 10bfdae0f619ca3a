"""The truth of a drift window: realized performance once its labels are stored, an estimate before, and the
serving model's age.

:func:`realized_performance` and :func:`estimated_performance` are pure (rows in, a report section out);
:func:`window_performance` reads the window's labels; :func:`check_model_age` queues the age alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from driftline.detectors.performance import degradation, evaluate
from driftline.schemas.config import MonitorConfig, PerformanceSettings
from driftline.schemas.records import QuarantinedFile
from driftline.schemas.storage import Storage, events
from driftline.schemas.storage import models as model_store
from driftline.streams.alerts import outbox

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


@dataclass
class ConfidenceSums:
    """What the confidence-based estimate needs of a window's scores, summed batch by batch (bounded memory)."""

    threshold: float = 0.5
    rows: int = 0
    right: float = 0.0  # Σ p(right): the expected number of right answers
    variance: float = 0.0  # Σ p(right)(1 - p(right))
    scores_in_unit_interval: bool = True

    def add(self, scores: np.ndarray) -> None:
        scores = scores[~np.isnan(scores)]
        if not len(scores):
            return
        if not ((scores >= 0) & (scores <= 1)).all():
            self.scores_in_unit_interval = False
            return
        right = np.where(scores >= self.threshold, scores, 1 - scores)
        self.rows += len(right)
        self.right += float(right.sum())
        self.variance += float((right * (1 - right)).sum())


def estimated_performance(sums: ConfidenceSums, settings: PerformanceSettings) -> dict[str, Any] | None:
    """Accuracy expected from the window's own scores before any label arrives (confidence-based, as CBPE does):
    a calibrated score p is right with probability p when it says 1 and 1 - p when it says 0. The interval is the
    normal approximation of that sum of Bernoulli trials. Only for classifiers with scores in [0, 1]; it is as
    good as the calibration, so a drift in calibration shows in the realized figure, not here. Pure."""
    if settings.task != "classification" or sums.rows == 0 or not sums.scores_in_unit_interval:
        return None
    value = sums.right / sums.rows
    half = Z_95 * float(np.sqrt(sums.variance)) / sums.rows
    return {
        "method": "confidence-based (CBPE)",
        "metric": "accuracy",
        "value": value,
        "ci_low": max(0.0, value - half),
        "ci_high": min(1.0, value + half),
        "rows": sums.rows,
    }


# At most this many predictions of a window are kept for the join with their labels.
PERFORMANCE_SAMPLE = 200_000


def request_hashes(request_ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each request id, the same in every process (pandas' fixed-key SipHash)."""
    return np.asarray(pd.util.hash_array(np.asarray(request_ids, dtype=object)), dtype=np.uint64)


class PredictionSample:
    """The window's predictions with the smallest request-id hashes, at most ``capacity`` of them (a bottom-k
    sample): uniform over requests, and consistent, since a label is kept exactly when its request is. Below the
    capacity it holds every prediction, so the realized figures are exact; above, they are those of a uniform
    sample of ``capacity`` requests, which the bootstrap intervals account for."""

    def __init__(self, capacity: int = PERFORMANCE_SAMPLE) -> None:
        self.capacity = capacity
        self.seen = 0
        self.hashes = np.empty(0, dtype=np.uint64)
        self.ids = np.empty(0, dtype=object)
        self.scores = np.empty(0, dtype=np.float64)

    def add(self, request_ids: np.ndarray, scores: np.ndarray) -> None:
        self.seen += len(request_ids)
        hashes = request_hashes(request_ids)
        if len(self.hashes) >= self.capacity:
            below = hashes < self.hashes.max()
            hashes, request_ids, scores = hashes[below], request_ids[below], scores[below]
        self.hashes = np.concatenate([self.hashes, hashes])
        self.ids = np.concatenate([self.ids, np.asarray(request_ids, dtype=object)])
        self.scores = np.concatenate([self.scores, scores])
        if len(self.hashes) > 2 * self.capacity:
            self._shrink()

    def _shrink(self) -> None:
        if len(self.hashes) <= self.capacity:
            return
        keep = np.argpartition(self.hashes, self.capacity - 1)[: self.capacity]
        self.hashes, self.ids, self.scores = self.hashes[keep], self.ids[keep], self.scores[keep]

    def frame(self) -> pd.DataFrame:
        self._shrink()
        return pd.DataFrame({"request_id": self.ids, "prediction": self.scores})

    @property
    def sampled(self) -> bool:
        return self.seen > self.capacity


def performance_reference(storage: Storage, config: MonitorConfig) -> dict[str, float]:
    """The configured reference metrics, else the serving version's holdout accuracy, else none."""
    if config.performance.reference:
        return dict(config.performance.reference)
    version = model_store.serving_version(storage, config.model)
    if version is None or version.holdout_accuracy is None:
        return {}
    return {"accuracy": version.holdout_accuracy}


LABEL_COLUMNS = frozenset({"request_id", "label", "label_class"})


def window_performance(
    storage: Storage,
    config: MonitorConfig,
    predictions: PredictionSample,
    confidence: ConfidenceSums,
    window: tuple[datetime, datetime],
    *,
    now: datetime,
) -> tuple[dict[str, Any], list[QuarantinedFile]]:
    """The report's ``performance`` section: realized (labels stored from the window's start until now, since
    labels come late, joined to the sampled predictions) and estimated; and the unreadable label files moved to
    quarantine on the way. Labels are streamed; only those of sampled requests are kept."""
    sample = predictions.frame()
    wanted = pa.array(sample["request_id"].dropna().unique(), type=pa.string())
    quarantined: list[QuarantinedFile] = []
    kept: list[pd.DataFrame] = []
    if len(wanted):

        def labels_of_sampled(batches: Iterator[pa.RecordBatch]) -> list[pd.DataFrame]:
            return [
                batch.filter(pc.is_in(batch.column("request_id"), value_set=wanted)).to_pandas()
                for batch in batches
                if "request_id" in batch.schema.names
            ]

        kept = events.scan_window(
            labels_of_sampled,
            storage,
            "labels",
            config.model,
            (window[0], max(window[1], now)),
            columns=LABEL_COLUMNS.__contains__,
            quarantined=quarantined,
        )
    labels = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    reference = performance_reference(storage, config)
    realized = realized_performance(sample, labels, config.performance, reference)
    if predictions.sampled:
        realized["sampled"] = {"predictions": predictions.seen, "kept": len(sample), "by": "request id hash"}
    section = {"realized": realized, "estimated": estimated_performance(confidence, config.performance)}
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
    outbox.queue_occurrence_alert(
        storage,
        kind="model_age",
        model=config.model,
        key=version.version,
        text=f":hourglass: driftline: {finding}. Retrain it, or raise retrain.max_age.",
        channel=config.alerts.slack_channel,
    )
    return finding
