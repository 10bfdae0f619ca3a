"""What the stream worker tells Prometheus: one registry per worker, updated by the source reader's thread and the
Faust agents, served at ``/metrics`` (streams/health.py). No IO here.

Names follow Prometheus' conventions (``_total`` for counters, units in the name). Labels are bounded: models
and versions are what the serving code names (one rule, schemas/names.py), a dead letter's reason is its cause
(:data:`driftline.streams.intake.DEAD_LETTER_CAUSES`), never its text, and partitions are the topic's. The table
of every metric, and who sets it, is in docs/operations.md ("Watching the worker").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from driftline.schemas.records import WindowMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST
RATE_SPAN = 10.0  # seconds over which events_per_second is measured


class WorkerTelemetry:
    """The worker's metrics (module docstring); thread-safe, as prometheus_client's metrics are."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, about: str, *labels: str) -> Counter:
            return Counter(name, about, labels, registry=registry)

        def gauge(name: str, about: str, *labels: str) -> Gauge:
            return Gauge(name, about, labels, registry=registry)

        version = ("model", "model_version")
        self.events = counter("driftline_events", "Prediction events taken, by outcome.", "outcome")
        self.model_events = counter("driftline_model_events", "Prediction events counted.", *version)
        self.rate = gauge("driftline_events_per_second", f"Events taken per second over the last {RATE_SPAN:g} s.")
        self.dead_letters = counter("driftline_dead_letters", "Events sent to the dead-letter topic.", "reason")
        self.lag = gauge("driftline_consumer_lag", "Messages not counted yet.", "topic", "partition")
        self.assigned = gauge("driftline_partitions_assigned", "Source partitions this worker reads.")
        self.open_windows = gauge("driftline_open_windows", "Partial windows open on this worker's source partitions.")
        self.reported = counter("driftline_windows_reported", "Partial windows closed and sent to the merger.")
        self.published = counter("driftline_windows_published", "Whole windows published on the metrics topic.")
        self.pending = gauge("driftline_merger_pending_windows", "Windows the merger holds for a slower partition.")
        self.merging = gauge("driftline_merging", "1 on the worker that runs the window merger.")
        self.broker_up = gauge("driftline_broker_up", "1 while the broker answers the worker.")
        self.alerts = counter("driftline_alerts", "Alert deliveries, by kind and outcome.", "kind", "outcome")
        self.latency = gauge("driftline_window_latency_ms", "Latency quantile, last window.", *version, "quantile")
        self.error_rate = gauge("driftline_window_error_rate", "Error rate of the last published window.", *version)
        self.window_events = gauge("driftline_window_events", "Events in the last published window.", *version)
        self.window_end = gauge("driftline_window_end_timestamp_seconds", "End of the last window (Unix).", *version)
        self._taken: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._lag_partitions: set[tuple[str, str]] = set()

    # -- the source reader, once per batch --------------------------------------------------------------------
    def batch(
        self,
        *,
        counted: Mapping[tuple[str, str], int],
        dead_lettered: Mapping[str, int],
        duplicates: int,
        taken: int,
    ) -> None:
        """One batch's tallies: events counted per (model, version), dead letters per reason class, copies
        skipped, and every message taken (for the rate)."""
        for (model, version), count in counted.items():
            self.model_events.labels(model, version).inc(count)
        total_counted = sum(counted.values())
        if total_counted:
            self.events.labels("counted").inc(total_counted)
        if duplicates:
            self.events.labels("duplicate").inc(duplicates)
        total_dead = sum(dead_lettered.values())
        if total_dead:
            self.events.labels("dead_lettered").inc(total_dead)
        for reason, count in dead_lettered.items():
            self.dead_letters.labels(reason).inc(count)
        self.note_taken(taken)

    def note_taken(self, taken: int) -> None:
        now = self.clock()
        with self._lock:
            if taken:
                self._taken.append((now, taken))
            while self._taken and self._taken[0][0] < now - RATE_SPAN:
                self._taken.popleft()
            self.rate.set(sum(n for _, n in self._taken) / RATE_SPAN)

    def partitions(self, topic: str, lags: Mapping[int, int | None], open_windows: int) -> None:
        """The reader's partitions now: their lags (unknown ones are left out), and the open partial windows."""
        self.assigned.set(len(lags))
        self.open_windows.set(open_windows)
        current = {(topic, str(p)) for p, lag in lags.items() if lag is not None}
        with self._lock:
            for gone in self._lag_partitions - current:
                self.lag.remove(*gone)
            self._lag_partitions = current
        for partition, lag in lags.items():
            if lag is not None:
                self.lag.labels(topic, str(partition)).set(lag)

    # -- the merger -------------------------------------------------------------------------------------------
    def window_published(self, metrics: WindowMetrics) -> None:
        self.published.inc()
        key = (metrics.model, metrics.model_version)
        for quantile, value in (
            ("0.5", metrics.latency_p50_ms),
            ("0.95", metrics.latency_p95_ms),
            ("0.99", metrics.latency_p99_ms),
        ):
            if value is not None:
                self.latency.labels(*key, quantile).set(value)
        self.error_rate.labels(*key).set(metrics.error_rate)
        self.window_events.labels(*key).set(metrics.count)
        self.window_end.labels(*key).set(metrics.window_end.timestamp())

    # -- alert delivery ---------------------------------------------------------------------------------------
    def alert(self, kind: str, outcome: str, count: int = 1) -> None:
        if count:
            self.alerts.labels(kind, outcome).inc(count)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
