"""Window math for the stream metrics: pure, mergeable, unit-tested.

Latency quantiles come from :class:`LatencySketch`, a log-bucket sketch in the
manner of DDSketch (Masson et al., VLDB 2019): every value lands in bucket
``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``, and a quantile is
answered with the bucket's midpoint. For any quantile ``q`` the answer is
within relative error ``a`` (default 1 %) of the exact order statistic
``sorted(x)[floor(q * (n - 1))]`` (numpy's ``method="lower"``). Two sketches
merge by adding bucket counts, so partial windows from several partitions or
workers combine into the same answer as one sketch over all values.

Predictions go into a :class:`PredictionSketch`: numbers into two such sketches
(positive values, and the magnitudes of negative ones) with their count, sum,
sum of squares, minimum and maximum; classes (text and booleans) are counted,
the :data:`CLASSES_KEPT` commonest kept and the rest summed. Error texts are
counted the same way (:data:`CAUSES_KEPT`). Each merges exactly, except that a
merge keeps the commonest classes or causes of the union (the rest are summed
under "other"), so totals are always exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from driftline.schemas.records import LatencySketchState, PredictionSketchState, WindowMetrics

DEFAULT_RELATIVE_ACCURACY = 0.01
_MIN_POSITIVE = 1e-6  # latencies at or below this (ms) count as zero
CLASSES_KEPT = 50  # distinct prediction classes a window keeps
CAUSES_KEPT = 20  # distinct error texts a window keeps
OTHER_CAUSES = "(other)"


@dataclass
class LatencySketch:
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    buckets: Counter[int] = field(default_factory=Counter)
    zeros: int = 0
    count: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.relative_accuracy < 1:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {self.relative_accuracy}")
        self._gamma = (1 + self.relative_accuracy) / (1 - self.relative_accuracy)
        self._log_gamma = math.log(self._gamma)

    def add(self, value: float) -> None:
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"latency must be a finite non-negative number, got {value}")
        self.count += 1
        if value <= _MIN_POSITIVE:
            self.zeros += 1
        else:
            self.buckets[math.ceil(math.log(value) / self._log_gamma)] += 1

    def add_many(self, values: Any) -> None:
        """:meth:`add` for each of ``values`` (a sequence or array of latencies) at once."""
        array = np.asarray(values, dtype=float)
        if array.size and ((array < 0).any() or not np.isfinite(array).all()):
            raise ValueError("latencies must be finite non-negative numbers")
        positive = array[array > _MIN_POSITIVE]
        self.count += int(array.size)
        self.zeros += int(array.size - positive.size)
        indexes, counts = np.unique(np.ceil(np.log(positive) / self._log_gamma).astype(np.int64), return_counts=True)
        self.buckets.update(dict(zip(indexes.tolist(), counts.tolist(), strict=True)))

    def merge(self, other: LatencySketch) -> LatencySketch:
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("cannot merge sketches with different relative accuracy")
        merged = LatencySketch(
            self.relative_accuracy, self.buckets + other.buckets, self.zeros + other.zeros, self.count + other.count
        )
        return merged

    def quantile(self, q: float) -> float | None:
        if not 0 <= q <= 1:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return None
        rank = math.floor(q * (self.count - 1))
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                return self.value_of(index)
        raise AssertionError("unreachable: rank below count")

    def value_of(self, index: int) -> float:
        """The value a bucket stands for (within ``relative_accuracy`` of every value in it)."""
        return 2 * self._gamma**index / (self._gamma + 1)

    def to_record(self) -> LatencySketchState:
        return LatencySketchState(
            relative_accuracy=self.relative_accuracy,
            zeros=self.zeros,
            count=self.count,
            buckets={str(k): v for k, v in sorted(self.buckets.items())},
        )

    @classmethod
    def from_record(cls, state: LatencySketchState) -> LatencySketch:
        return cls(
            state.relative_accuracy, Counter({int(k): v for k, v in state.buckets.items()}), state.zeros, state.count
        )


def keep_commonest(counts: Counter[str], kept: int) -> tuple[Counter[str], int]:
    """The ``kept`` commonest entries (ties by name) and the sum of the rest."""
    if len(counts) <= kept:
        return counts, 0
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Counter(dict(ranked[:kept])), sum(n for _, n in ranked[kept:])


@dataclass
class PredictionSketch:
    """A window's predictions, mergeable (module docstring)."""

    numeric: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    positive: LatencySketch = field(default_factory=LatencySketch)
    negative: LatencySketch = field(default_factory=LatencySketch)
    classes: Counter[str] = field(default_factory=Counter)
    other_classes: int = 0
    missing: int = 0

    def add(self, prediction: float | int | str | bool | None) -> None:
        if prediction is None:
            self.missing += 1
        elif isinstance(prediction, bool | str):
            label = str(prediction).lower() if isinstance(prediction, bool) else prediction
            if label in self.classes or len(self.classes) < CLASSES_KEPT:
                self.classes[label] += 1
            else:
                self.other_classes += 1
        else:  # the hot path of every numeric prediction: LatencySketch.add inlined (a decoded number is finite)
            value = float(prediction)
            self.numeric += 1
            self.total += value
            self.total_squares += value * value
            if self.minimum is None:
                self.minimum = self.maximum = value
            elif value < self.minimum:
                self.minimum = value
            elif value > self.maximum:  # type: ignore[operator]
                self.maximum = value
            side = self.positive if value >= 0 else self.negative
            magnitude = value if value >= 0 else -value
            side.count += 1
            if magnitude <= _MIN_POSITIVE:
                side.zeros += 1
            else:
                side.buckets[math.ceil(math.log(magnitude) / side._log_gamma)] += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.numeric if self.numeric else None

    def quantile(self, q: float) -> float | None:
        """Of the numeric predictions, within the sketch's relative accuracy."""
        if not self.numeric:
            return None
        rank = math.floor(q * (self.numeric - 1))
        below = self.negative.count
        if rank < below:  # among the negative values, the largest magnitude first
            value = self.negative.quantile(1 - rank / (below - 1) if below > 1 else 0.0)
            return None if value is None else -value
        positives = self.positive.count
        return self.positive.quantile((rank - below) / (positives - 1) if positives > 1 else 0.0)

    def count_above(self, x: float) -> int:
        """Numeric predictions above ``x`` (each bucket counted by the value it stands for)."""
        if x >= 0:
            return sum(n for i, n in self.positive.buckets.items() if self.positive.value_of(i) > x)
        below = sum(n for i, n in self.negative.buckets.items() if self.negative.value_of(i) >= -x)
        return self.positive.count + self.negative.count - below

    def merge(self, other: PredictionSketch) -> PredictionSketch:
        classes, other_classes = keep_commonest(self.classes + other.classes, CLASSES_KEPT)
        minimums = [v for v in (self.minimum, other.minimum) if v is not None]
        maximums = [v for v in (self.maximum, other.maximum) if v is not None]
        return PredictionSketch(
            self.numeric + other.numeric,
            self.total + other.total,
            self.total_squares + other.total_squares,
            min(minimums) if minimums else None,
            max(maximums) if maximums else None,
            self.positive.merge(other.positive),
            self.negative.merge(other.negative),
            classes,
            self.other_classes + other.other_classes + other_classes,
            self.missing + other.missing,
        )

    def to_record(self) -> PredictionSketchState:
        return PredictionSketchState(
            numeric=self.numeric,
            total=self.total,
            total_squares=self.total_squares,
            minimum=self.minimum,
            maximum=self.maximum,
            positive=self.positive.to_record() if self.positive.count else None,
            negative=self.negative.to_record() if self.negative.count else None,
            classes=dict(sorted(self.classes.items())),
            other_classes=self.other_classes,
            missing=self.missing,
        )

    @classmethod
    def from_record(cls, state: PredictionSketchState | None) -> PredictionSketch:
        if state is None:
            return cls()
        return cls(
            state.numeric,
            state.total,
            state.total_squares,
            state.minimum,
            state.maximum,
            LatencySketch.from_record(state.positive) if state.positive else LatencySketch(),
            LatencySketch.from_record(state.negative) if state.negative else LatencySketch(),
            Counter(state.classes),
            state.other_classes,
            state.missing,
        )


def answers_agree(live: float | int | str | bool | None, shadow: float | int | str | bool | None) -> bool:
    """Whether a shadow's answer agrees with the live one: scores in [0, 1] on the same side of 0.5, other
    numbers within 1 % of each other, classes (text, booleans, whole numbers) equal."""
    numbers = isinstance(live, int | float) and isinstance(shadow, int | float)
    if numbers and not isinstance(live, bool) and not isinstance(shadow, bool):
        a, b = float(live), float(shadow)  # type: ignore[arg-type]
        if 0 <= a <= 1 and 0 <= b <= 1 and not (a.is_integer() and b.is_integer()):
            return (a >= 0.5) == (b >= 0.5)
        return abs(a - b) <= 0.01 * max(abs(a), abs(b)) or a == b
    return str(live).lower() == str(shadow).lower()


def window_start(event_time: datetime, size: timedelta) -> datetime:
    """Start of the tumbling window of ``size`` that holds ``event_time`` (aligned to the epoch)."""
    seconds = size.total_seconds()
    epoch = event_time.timestamp()
    return datetime.fromtimestamp(math.floor(epoch / seconds) * seconds, tz=UTC)


@dataclass
class WindowAggregate:
    """What one model version did in one tumbling window: events (and the requests they stand for), errors by
    cause, fallbacks, latency and predictions."""

    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    count: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    partitions: set[int] = field(default_factory=set)
    requests: float = 0.0  # sum of 1/sample_rate
    estimated_errors: float = 0.0
    causes: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    estimated_fallbacks: float = 0.0
    predictions: PredictionSketch = field(default_factory=PredictionSketch)
    shadow_pairs: int = 0  # shadow predictions compared with the live answer to the same request
    shadow_agreements: int = 0

    def add(
        self,
        latency_ms: float,
        error: str | None,
        *,
        prediction: float | int | str | bool | None = None,
        fallback: bool = False,
        sample_rate: float = 1.0,
    ) -> None:
        weight = 1.0 if sample_rate == 1.0 else 1.0 / sample_rate
        self.count += 1
        self.requests += weight
        if error is not None:
            self.errors += 1
            self.estimated_errors += weight
            cause = error[:200]
            self.causes[cause if cause in self.causes or len(self.causes) < CAUSES_KEPT else OTHER_CAUSES] += 1
        if fallback:
            self.fallbacks += 1
            self.estimated_fallbacks += weight
        self.latency.add(latency_ms)
        self.predictions.add(prediction)

    def merge(self, other: WindowAggregate) -> WindowAggregate:
        if (other.model, other.model_version, other.window_start) != (
            self.model,
            self.model_version,
            self.window_start,
        ):
            raise ValueError("can only merge aggregates of the same model, version and window")
        union = self.causes + other.causes
        others = union.pop(OTHER_CAUSES, 0)
        causes, beyond = keep_commonest(union, CAUSES_KEPT)
        if others + beyond:
            causes[OTHER_CAUSES] += others + beyond
        return WindowAggregate(
            self.model,
            self.model_version,
            self.window_start,
            self.window_end,
            self.count + other.count,
            self.errors + other.errors,
            self.latency.merge(other.latency),
            self.partitions | other.partitions,
            self.requests + other.requests,
            self.estimated_errors + other.estimated_errors,
            causes,
            self.fallbacks + other.fallbacks,
            self.estimated_fallbacks + other.estimated_fallbacks,
            self.predictions.merge(other.predictions),
            self.shadow_pairs + other.shadow_pairs,
            self.shadow_agreements + other.shadow_agreements,
        )

    @property
    def error_rate(self) -> float:
        return min(1.0, self.estimated_errors / self.requests) if self.requests else 0.0

    @property
    def fallback_rate(self) -> float:
        return min(1.0, self.estimated_fallbacks / self.requests) if self.requests else 0.0

    def snapshot(self) -> WindowMetrics:
        """The record published to the metrics topic for a closed window."""
        seconds = (self.window_end - self.window_start).total_seconds()
        return WindowMetrics(
            model=self.model,
            model_version=self.model_version,
            window_start=self.window_start,
            window_end=self.window_end,
            count=self.count,
            errors=self.errors,
            error_rate=self.error_rate,
            latency_p50_ms=self.latency.quantile(0.50),
            latency_p95_ms=self.latency.quantile(0.95),
            latency_p99_ms=self.latency.quantile(0.99),
            latency_sketch=self.latency.to_record(),
            partitions=sorted(self.partitions),
            requests=self.requests,
            estimated_errors=self.estimated_errors,
            errors_by_cause=dict(sorted(self.causes.items())),
            fallbacks=self.fallbacks,
            estimated_fallbacks=self.estimated_fallbacks,
            fallback_rate=self.fallback_rate,
            throughput_per_s=self.requests / seconds if seconds > 0 else None,
            prediction_mean=self.predictions.mean,
            predictions=self.predictions.to_record(),
            shadow_pairs=self.shadow_pairs,
            shadow_agreements=self.shadow_agreements,
        )

    @classmethod
    def from_snapshot(cls, metrics: WindowMetrics) -> WindowAggregate:
        """Back from a record (an older writer's, without the newer fields, too)."""
        return cls(
            metrics.model,
            metrics.model_version,
            metrics.window_start,
            metrics.window_end,
            metrics.count,
            metrics.errors,
            LatencySketch.from_record(metrics.latency_sketch),
            set(metrics.partitions),
            float(metrics.count) if metrics.requests is None else metrics.requests,
            float(metrics.errors) if metrics.estimated_errors is None else metrics.estimated_errors,
            Counter(metrics.errors_by_cause),
            metrics.fallbacks,
            float(metrics.fallbacks) if metrics.estimated_fallbacks is None else metrics.estimated_fallbacks,
            PredictionSketch.from_record(metrics.predictions),
            metrics.shadow_pairs,
            metrics.shadow_agreements,
        )


def merge_snapshots(snapshots: Iterable[WindowMetrics]) -> list[WindowMetrics]:
    """Combine partial snapshots (one per worker) into one per model, version and window."""
    merged: dict[tuple[str, str, datetime], WindowAggregate] = {}
    for snapshot in snapshots:
        aggregate = WindowAggregate.from_snapshot(snapshot)
        key = (aggregate.model, aggregate.model_version, aggregate.window_start)
        merged[key] = merged[key].merge(aggregate) if key in merged else aggregate
    return [merged[key].snapshot() for key in sorted(merged)]
