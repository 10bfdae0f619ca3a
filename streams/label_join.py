"""The late-label join: labels that arrive minutes or days after their predictions, joined in the stream with
bounded state and a deadline, giving each window's realized performance. Pure.

A model takes part when its monitor config sets ``performance.label_deadline`` (off by default: the drift DAG
computes realized performance from the stored labels either way). Predictions and labels are keyed by request id,
so a prediction and its label land on the same partition number of their two topics, and the worker's source
consumer, subscribed to both, is assigned the same partitions of each (the range assignor co-partitions topics
with equal partition counts). Each source partition keeps one :class:`LabelJoin`:

- a counted prediction of a taking-part model waits in ``pending`` (its request id's hash, its window, its
  prediction) until its label comes;
- a label finds its prediction and is folded into the prediction's window (:class:`PerformanceAggregate`); a
  label that comes first waits in ``early`` for its prediction;
- a window's performance **closes** when both the predictions' watermark and the labels' watermark (the newest
  label time read minus the allowed lateness, or the wall clock when the labels partition is idle) have passed
  ``window end + label_deadline``: its predictions still without a label are counted ``unlabelled``, and labels
  stamped later than that are ``late_labels``; the partial goes to the merger with the partition's report;
- an early label whose prediction has not come by the time the predictions' watermark passes the label's own time
  is an ``orphan`` (its prediction was refused, or never sent).

**Bounded.** ``pending`` and ``early`` hold at most ``max_pending`` entries each per partition
(``performance.max_pending``); past that the oldest prediction is given up (counted ``unlabelled`` in its
window, and ``evicted``) and the oldest early label is dropped (``orphans``). The merger publishes a window's
performance once every partition has closed it, on ``<prefix>.performance``.

**Crash safety.** The join is saved in its partition's checkpoint (both topics' offsets, the pending entries, the
open windows) after every batch, with the predictions' state, so a restart resumes both topics exactly where the
checkpoint ends, and joins the same pairs.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.schemas.config import PerformanceSettings
from driftline.schemas.events import EventLimits, LabelRecord
from driftline.schemas.records import WindowPerformance
from driftline.schemas.worker_state import LabelJoinState
from driftline.streams.progress import PartitionProgress
from driftline.streams.windows import window_start

Scalar = float | int | str | bool | None
WindowKey = tuple[str, str, datetime]


def request_digest(request_id: str) -> bytes:
    return hashlib.blake2b(request_id.encode(), digest_size=8).digest()


def as_class(value: Scalar) -> str | None:
    """A prediction or label as a class name: booleans and integers as text; a float only when it is whole."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    return str(value)


@dataclass
class PerformanceAggregate:
    """One window's joined pairs of one model version on one partition (merges by adding)."""

    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    task: str
    threshold: float
    predictions: int = 0
    labelled: int = 0
    unlabelled: int = 0
    late_labels: int = 0
    correct: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0
    absolute_error: float = 0.0
    squared_error: float = 0.0
    unscored: int = 0  # pairs whose prediction or label could not be compared (a text label on a regression)
    digests: set[bytes] = field(default_factory=set, repr=False)  # this window's predictions still pending

    def fold(self, prediction: Scalar, label: Scalar) -> None:
        if self.task == "regression":
            if not _number(prediction) or not _number(label):
                self.unscored += 1
                return
            error = float(prediction) - float(label)  # type: ignore[arg-type]
            self.labelled += 1
            self.absolute_error += abs(error)
            self.squared_error += error * error
            return
        actual = as_class(label)
        if actual is None:
            self.unscored += 1
            return
        # A score (a float in [0, 1]) against a 0/1 label is thresholded; anything else is compared as a class.
        binary = isinstance(prediction, float) and 0.0 <= prediction <= 1.0 and actual in ("0", "1")
        if binary:
            predicted: str | None = "1" if float(prediction) >= self.threshold else "0"  # type: ignore[arg-type]
        else:
            predicted = as_class(prediction)
        if predicted is None:
            self.unscored += 1
            return
        self.labelled += 1
        self.correct += int(predicted == actual)
        if actual in ("0", "1") and predicted in ("0", "1"):
            if predicted == "1":
                self.true_positives += int(actual == "1")
                self.false_positives += int(actual == "0")
            else:
                self.false_negatives += int(actual == "1")
                self.true_negatives += int(actual == "0")

    def record(self, partition: int, deadline: timedelta) -> WindowPerformance:
        return WindowPerformance(
            model=self.model,
            model_version=self.model_version,
            window_start=self.window_start,
            window_end=self.window_end,
            label_deadline_seconds=deadline.total_seconds(),
            task=self.task,  # type: ignore[arg-type]
            threshold=self.threshold,
            predictions=self.predictions,
            labelled=self.labelled,
            unlabelled=self.unlabelled,
            late_labels=self.late_labels,
            unscored=self.unscored,
            correct=self.correct,
            true_positives=self.true_positives,
            false_positives=self.false_positives,
            false_negatives=self.false_negatives,
            true_negatives=self.true_negatives,
            absolute_error=self.absolute_error,
            squared_error=self.squared_error,
            partitions=[partition],
        )

    @classmethod
    def from_record(cls, record: WindowPerformance) -> PerformanceAggregate:
        return cls(
            record.model,
            record.model_version,
            record.window_start,
            record.window_end,
            record.task,
            record.threshold,
            record.predictions,
            record.labelled,
            record.unlabelled,
            record.late_labels,
            record.correct,
            record.true_positives,
            record.false_positives,
            record.false_negatives,
            record.true_negatives,
            record.absolute_error,
            record.squared_error,
            record.unscored,
        )


def _number(value: Scalar) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def merge_performance(partials: list[WindowPerformance]) -> WindowPerformance:
    """One window's partials from every partition, added up."""
    first = partials[0]
    totals: dict[str, Any] = {}
    for name in (
        "predictions",
        "labelled",
        "unlabelled",
        "late_labels",
        "unscored",
        "correct",
        "true_positives",
        "false_positives",
        "false_negatives",
        "true_negatives",
        "absolute_error",
        "squared_error",
    ):
        totals[name] = sum(getattr(p, name) for p in partials)
    totals["partitions"] = sorted({n for p in partials for n in p.partitions})
    return first.model_copy(update=totals)


@dataclass
class Pending:
    key: WindowKey
    prediction: Scalar


@dataclass
class EarlyLabel:
    label: Scalar
    event_time: datetime
    model: str
    window_end: datetime  # of the window its time falls in: its prediction, not later, is in a window ending by then


@dataclass
class LabelJoin(PartitionProgress):
    """One source partition's join (module docstring). Offsets and watermark are the labels topic's."""

    topic: str
    partition: int
    settings_for_model: Callable[[str], PerformanceSettings | None]  # None: the model does not take part
    window_for_model: Callable[[str], timedelta]
    allowed_lateness: timedelta
    limits: EventLimits
    max_pending: int = 100_000
    last_offset: int = -1
    max_label_time: datetime | None = None
    idle_watermark: datetime | None = None
    pending: dict[bytes, Pending] = field(default_factory=dict)  # insertion order: oldest first
    early: dict[bytes, EarlyLabel] = field(default_factory=dict)
    windows: dict[WindowKey, PerformanceAggregate] = field(default_factory=dict)
    orphans: int = 0
    evicted: int = 0
    closed_through: datetime | None = None  # performance windows ending (+ deadline) at or before this are sent

    @property
    def latest_time(self) -> datetime | None:
        """The newest label time read (capped by its broker time); the labels' watermark follows it."""
        return self.max_label_time

    # -- the two sides ----------------------------------------------------------------------------------------
    def expect(  # noqa: PLR0917 - the prediction's fields, in the accumulator's hot path
        self, request_id: str, model: str, version: str, start: datetime, end: datetime, prediction: Scalar
    ) -> None:
        """A counted prediction (of a model that takes part) waits for its label."""
        performance = self.settings_for_model(model)
        if performance is None:
            return
        key = (model, version, start)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = PerformanceAggregate(
                model, version, start, end, performance.task, performance.threshold
            )
        digest = request_digest(request_id)
        if digest in self.pending:
            return  # a copy past the accumulator's dedupe horizon: counted once
        window.predictions += 1
        early = self.early.pop(digest, None)
        if early is not None:
            self._fold(window, prediction, early.label, early.event_time, performance)
            return
        self.pending[digest] = Pending(key, prediction)
        window.digests.add(digest)
        if len(self.pending) > self.max_pending:
            oldest = next(iter(self.pending))
            self._give_up(oldest, self.pending.pop(oldest))
            self.evicted += 1

    def add_label(self, label: LabelRecord, offset: int, broker_time: datetime | None, now: datetime) -> str | None:
        """Fold one label in; returns a reason when it is refused (out of time bounds)."""
        self.refuse(offset)
        reason = self.limits.time_problem(label.event_time, broker_time, now)
        if reason:
            return reason
        progress = label.event_time if broker_time is None else min(label.event_time, broker_time)
        if self.max_label_time is None or progress > self.max_label_time:
            self.max_label_time = progress
        digest = request_digest(label.request_id)
        pending = self.pending.pop(digest, None)
        if pending is not None:
            window = self.windows[pending.key]
            window.digests.discard(digest)
            performance = self.settings_for_model(window.model)
            if performance is not None:
                self._fold(window, pending.prediction, label.label, label.event_time, performance)
            return None
        if self.settings_for_model(label.model) is None or digest in self.early:
            return None  # a model that does not take part, or a copy
        self.early[digest] = EarlyLabel(
            label.label, label.event_time, label.model, self._window_end(label.model, label.event_time)
        )
        if len(self.early) > self.max_pending:
            self.early.pop(next(iter(self.early)))
            self.orphans += 1
        return None

    def _window_end(self, model: str, at: datetime) -> datetime:
        size = self.window_for_model(model)
        return window_start(at, size) + size

    def _fold(
        self,
        window: PerformanceAggregate,
        prediction: Scalar,
        label: Scalar,
        labelled_at: datetime,
        performance: PerformanceSettings,
    ) -> None:
        if labelled_at >= window.window_end + performance.label_deadline:
            window.late_labels += 1
            window.unlabelled += 1
        else:
            window.fold(prediction, label)

    def _give_up(self, digest: bytes, pending: Pending) -> None:
        window = self.windows.get(pending.key)
        if window is not None:
            window.digests.discard(digest)
            window.unlabelled += 1

    # -- closing ----------------------------------------------------------------------------------------------
    def performance_through(self, predictions_watermark: datetime | None) -> datetime | None:
        """Windows whose end + deadline is at or before this are complete on this partition."""
        labels = self.watermark
        if predictions_watermark is None or labels is None:
            return None
        return min(predictions_watermark, labels)

    def close_ready(self, predictions_watermark: datetime | None) -> list[WindowPerformance]:
        """This partition's closed performance windows, oldest first; orphaned early labels are dropped."""
        if predictions_watermark is not None:
            # A prediction made before its label is in a window ending no later than the label's window; once the
            # predictions' watermark has passed that end, such a prediction would be refused as late: the label's
            # prediction will not come (whatever the order the two topics were read in).
            for digest in [d for d, e in self.early.items() if e.window_end <= predictions_watermark]:
                del self.early[digest]
                self.orphans += 1
        through = self.performance_through(predictions_watermark)
        if through is None:
            return []
        self.closed_through = through if self.closed_through is None else max(self.closed_through, through)
        closed = []
        for key in sorted(self.windows, key=lambda k: (k[2], k[0], k[1])):
            window = self.windows[key]
            performance = self.settings_for_model(window.model)
            deadline = performance.label_deadline if performance else timedelta(0)
            if window.window_end + deadline > through:
                continue
            for digest in window.digests:
                del self.pending[digest]
                window.unlabelled += 1
            window.digests = set()
            closed.append(window.record(self.partition, deadline))
            del self.windows[key]
        return closed

    # -- checkpoint -------------------------------------------------------------------------------------------
    def state(self) -> LabelJoinState:
        keys = sorted({p.key for p in self.pending.values()}, key=lambda k: (k[2], k[0], k[1]))
        index = {key: n for n, key in enumerate(keys)}
        open_windows = []
        for key in sorted(self.windows, key=lambda k: (k[2], k[0], k[1])):
            window = self.windows[key]
            performance = self.settings_for_model(window.model)
            open_windows.append(
                window.record(self.partition, performance.label_deadline if performance else timedelta())
            )
        return LabelJoinState(
            topic=self.topic,
            last_offset=self.last_offset,
            max_label_time=self.max_label_time,
            idle_watermark=self.idle_watermark,
            pending_keys=[[m, v, s.isoformat()] for m, v, s in keys],
            pending_digests=base64.b64encode(b"".join(self.pending)).decode(),
            pending_windows=[index[p.key] for p in self.pending.values()],
            pending_predictions=[p.prediction for p in self.pending.values()],
            early_digests=base64.b64encode(b"".join(self.early)).decode(),
            early_labels=[e.label for e in self.early.values()],
            early_times=[e.event_time for e in self.early.values()],
            early_models=[e.model for e in self.early.values()],
            open_windows=open_windows,
            orphans=self.orphans,
            evicted=self.evicted,
            closed_through=self.closed_through,
        )

    def restore(self, state: LabelJoinState) -> None:
        self.last_offset = state.last_offset
        self.max_label_time = state.max_label_time
        self.idle_watermark = state.idle_watermark
        self.orphans, self.evicted, self.closed_through = state.orphans, state.evicted, state.closed_through
        self.windows = {}
        for record in state.open_windows:
            aggregate = PerformanceAggregate.from_record(record)
            self.windows[(aggregate.model, aggregate.model_version, aggregate.window_start)] = aggregate
        keys = [(m, v, datetime.fromisoformat(s).astimezone(UTC)) for m, v, s in state.pending_keys]
        digests = base64.b64decode(state.pending_digests)
        self.pending = {}
        for n, (window, prediction) in enumerate(zip(state.pending_windows, state.pending_predictions, strict=True)):
            digest = digests[8 * n : 8 * n + 8]
            self.pending[digest] = Pending(keys[window], prediction)
            if keys[window] in self.windows:
                self.windows[keys[window]].digests.add(digest)
        early = base64.b64decode(state.early_digests)
        self.early = {
            early[8 * n : 8 * n + 8]: EarlyLabel(label, at, model, self._window_end(model, at))
            for n, (label, at, model) in enumerate(
                zip(state.early_labels, state.early_times, state.early_models, strict=True)
            )
        }


# -- realized performance and its verdict ------------------------------------------------------------------------
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
HIGHER_IS_BETTER = {"accuracy", "precision", "recall"}
STREAM_METRICS = (*sorted(HIGHER_IS_BETTER), "mae")


@dataclass(frozen=True)
class Realized:
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval (95 %) of a proportion: valid at small n and near 0 or 1, unlike the normal one."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def realized(performance: WindowPerformance) -> dict[str, Realized]:
    """Each metric the counts give, with its 95 % interval: accuracy, precision and recall (Wilson) for
    classification (precision and recall when predictions and labels are 0/1); MAE (normal, from the sums of
    absolute and squared errors) for regression."""
    p = performance
    out: dict[str, Realized] = {}
    if p.labelled == 0:
        return out
    if p.task == "regression":
        mae = p.absolute_error / p.labelled
        variance = max(0.0, p.squared_error / p.labelled - mae * mae)
        half = Z95 * math.sqrt(variance / p.labelled)
        out["mae"] = Realized("mae", mae, max(0.0, mae - half), mae + half, p.labelled)
        out["rmse"] = Realized("rmse", math.sqrt(p.squared_error / p.labelled), math.nan, math.nan, p.labelled)
        return out
    out["accuracy"] = Realized("accuracy", p.correct / p.labelled, *wilson(p.correct, p.labelled), p.labelled)
    predicted_positive = p.true_positives + p.false_positives
    if predicted_positive:
        out["precision"] = Realized(
            "precision",
            p.true_positives / predicted_positive,
            *wilson(p.true_positives, predicted_positive),
            predicted_positive,
        )
    actual_positive = p.true_positives + p.false_negatives
    if actual_positive:
        out["recall"] = Realized(
            "recall", p.true_positives / actual_positive, *wilson(p.true_positives, actual_positive), actual_positive
        )
    return out
