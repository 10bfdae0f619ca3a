"""Window math for the stream metrics: pure, mergeable, unit-tested.

Latency quantiles come from :class:`LatencySketch`, a log-bucket sketch in the
manner of DDSketch (Masson et al., VLDB 2019): every value lands in bucket
``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``, and a quantile is
answered with the bucket's midpoint. For any quantile ``q`` the answer is
within relative error ``a`` (default 1 %) of the exact order statistic
``sorted(x)[floor(q * (n - 1))]`` (numpy's ``method="lower"``). Two sketches
merge by adding bucket counts, so partial windows from several partitions or
workers combine into the same answer as one sketch over all values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from driftline.schemas.records import LatencySketchState, WindowMetrics

DEFAULT_RELATIVE_ACCURACY = 0.01
_MIN_POSITIVE = 1e-6  # latencies at or below this (ms) count as zero


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
                return 2 * self._gamma**index / (self._gamma + 1)
        raise AssertionError("unreachable: rank below count")

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


def window_start(event_time: datetime, size: timedelta) -> datetime:
    """Start of the tumbling window of ``size`` that holds ``event_time`` (aligned to the epoch)."""
    seconds = size.total_seconds()
    epoch = event_time.timestamp()
    return datetime.fromtimestamp(math.floor(epoch / seconds) * seconds, tz=UTC)


@dataclass
class WindowAggregate:
    """Count, errors and latency of one model version in one tumbling window."""

    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    count: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    partitions: set[int] = field(default_factory=set)

    def add(self, latency_ms: float, failed: bool) -> None:
        self.count += 1
        self.errors += int(failed)
        self.latency.add(latency_ms)

    def merge(self, other: WindowAggregate) -> WindowAggregate:
        if (other.model, other.model_version, other.window_start) != (
            self.model,
            self.model_version,
            self.window_start,
        ):
            raise ValueError("can only merge aggregates of the same model, version and window")
        return WindowAggregate(
            self.model,
            self.model_version,
            self.window_start,
            self.window_end,
            self.count + other.count,
            self.errors + other.errors,
            self.latency.merge(other.latency),
            self.partitions | other.partitions,
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def snapshot(self) -> WindowMetrics:
        """The record published to the metrics topic for a closed window."""
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
        )

    @classmethod
    def from_snapshot(cls, metrics: WindowMetrics) -> WindowAggregate:
        return cls(
            metrics.model,
            metrics.model_version,
            metrics.window_start,
            metrics.window_end,
            metrics.count,
            metrics.errors,
            LatencySketch.from_record(metrics.latency_sketch),
            set(metrics.partitions),
        )


def merge_snapshots(snapshots: Iterable[WindowMetrics]) -> list[WindowMetrics]:
    """Combine partial snapshots (one per worker) into one per model, version and window."""
    merged: dict[tuple[str, str, datetime], WindowAggregate] = {}
    for snapshot in snapshots:
        aggregate = WindowAggregate.from_snapshot(snapshot)
        key = (aggregate.model, aggregate.model_version, aggregate.window_start)
        merged[key] = merged[key].merge(aggregate) if key in merged else aggregate
    return [merged[key].snapshot() for key in sorted(merged)]
