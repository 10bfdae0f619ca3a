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

from driftline.schemas.records import WindowMetrics, WindowPerformance
from driftline.streams.label_join import LabelJoin, realized
from driftline.streams.windows import PredictionSketch

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
        self.throughput = gauge("driftline_window_requests_per_second", "Requests per second, last window.", *version)
        self.fallback_rate = gauge("driftline_window_fallback_rate", "Share answered by a default.", *version)
        self.errors_by_cause = gauge("driftline_window_errors", "Errors by cause, last window.", *version, "cause")
        self.prediction_mean = gauge("driftline_window_prediction_mean", "Mean numeric prediction.", *version)
        self.prediction_quantile = gauge(
            "driftline_window_prediction", "Numeric prediction quantile, last window.", *version, "quantile"
        )
        self.class_share = gauge("driftline_window_prediction_class_share", "Share of a class.", *version, "class")
        self.realized = gauge("driftline_window_realized", "Realized performance, last window.", *version, "metric")
        self.label_coverage = gauge("driftline_window_label_coverage", "Share labelled by the deadline.", *version)
        self.join_pending = gauge("driftline_label_join_pending", "Predictions waiting for their label.")
        self.join_early = gauge("driftline_label_join_early", "Labels waiting for their prediction.")
        self.join_given_up = gauge(
            "driftline_label_join_given_up", "Entries given up on this worker's partitions since loaded.", "kind"
        )
        self.prediction_drift = counter(
            "driftline_prediction_drift_detections", "Online detector detections on the predictions.", *version
        )
        self._taken: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._lag_partitions: set[tuple[str, str]] = set()
        self._labelled: dict[tuple[str, tuple[str, str]], set[str]] = {}  # (gauge, version) -> label values set

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

    def label_join(self, topic: str, lags: Mapping[int, int | None], joins: list[LabelJoin]) -> None:
        """The labels partitions' lags (in ``driftline_consumer_lag``) and the joins' state."""
        for partition, lag in lags.items():
            if lag is not None:
                self.lag.labels(topic, str(partition)).set(lag)
        self.join_pending.set(sum(len(j.pending) for j in joins))
        self.join_early.set(sum(len(j.early) for j in joins))
        self.join_given_up.labels("evicted_predictions").set(sum(j.evicted for j in joins))
        self.join_given_up.labels("orphan_labels").set(sum(j.orphans for j in joins))

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
        if metrics.throughput_per_s is not None:
            self.throughput.labels(*key).set(metrics.throughput_per_s)
        self.fallback_rate.labels(*key).set(metrics.fallback_rate)
        self._set_only("errors", self.errors_by_cause, key, dict(metrics.errors_by_cause))
        sketch = PredictionSketch.from_record(metrics.predictions)
        if sketch.mean is not None:
            self.prediction_mean.labels(*key).set(sketch.mean)
        quantiles = {q: sketch.quantile(float(q)) for q in ("0.05", "0.5", "0.95")}
        self._set_only("quantile", self.prediction_quantile, key, {q: v for q, v in quantiles.items() if v is not None})
        classified = sum(sketch.classes.values()) + sketch.other_classes
        shares = {label: n / classified for label, n in sketch.classes.items()} if classified else {}
        self._set_only("class", self.class_share, key, shares)

    def performance_published(self, performance: WindowPerformance) -> None:
        key = (performance.model, performance.model_version)
        figures = {name: r.value for name, r in realized(performance).items()}
        self._set_only("realized", self.realized, key, figures)
        if performance.predictions:
            self.label_coverage.labels(*key).set(performance.labelled / performance.predictions)

    def _set_only(self, name: str, gauge: Gauge, key: tuple[str, str], values: Mapping[str, float]) -> None:
        """Set the version's series of ``gauge`` to ``values``, removing those the last window did not have."""
        with self._lock:
            before = self._labelled.get((name, key), set())
            for gone in before - set(values):
                gauge.remove(*key, gone)
            self._labelled[(name, key)] = set(values)
        for label, value in values.items():
            gauge.labels(*key, label).set(value)

    # -- alert delivery ---------------------------------------------------------------------------------------
    def alert(self, kind: str, outcome: str, count: int = 1) -> None:
        if count:
            self.alerts.labels(kind, outcome).inc(count)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
