from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.schemas.config import MetricSettings, MonitorConfig
from driftline.schemas.records import LatencySketchState, WindowMetrics
from driftline.streams.thresholds import threshold_breaches, window_alerts

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def metrics(count: int = 50, p95: float | None = 80.0, error_rate: float = 0.05) -> WindowMetrics:
    return WindowMetrics(
        model="m",
        model_version="v1",
        window_start=T0,
        window_end=T0 + timedelta(minutes=5),
        count=count,
        errors=round(count * error_rate),
        error_rate=error_rate,
        latency_p50_ms=p95,
        latency_p95_ms=p95,
        latency_p99_ms=p95,
        latency_sketch=LatencySketchState(relative_accuracy=0.01, zeros=0, count=count, buckets={}),
        partitions=[0],
    )


def test_threshold_breaches_respect_min_count_and_are_strict():
    window = metrics()
    limits = MetricSettings(latency_p95_ms=50, error_rate=0.05, min_count=20)
    assert [b.metric for b in threshold_breaches(window, limits)] == ["latency_p95_ms"]
    stricter = limits.model_copy(update={"error_rate": 0.04})
    assert [b.metric for b in threshold_breaches(window, stricter)] == ["latency_p95_ms", "error_rate"]
    assert threshold_breaches(window, stricter.model_copy(update={"min_count": 51})) == []


def test_alerts_carry_the_window_the_value_the_threshold_and_the_channel():
    config = MonitorConfig.model_validate(
        {
            "model": "m",
            "reference": "r.parquet",
            "metrics": {"latency_p95_ms": 50, "error_rate": 0.5},
            "alerts": {"slack_channel": "#m"},
        }
    )
    [alert] = window_alerts(metrics(), config)
    assert (alert.kind, alert.metric, alert.value, alert.threshold, alert.count) == (
        "threshold",
        "latency_p95_ms",
        80.0,
        50.0,
        50,
    )
    assert alert.channel == "#m" and alert.window_start == T0
    assert alert.alert_id == f"m|v1|{T0.isoformat()}|latency_p95_ms"


def test_an_unconfigured_model_is_judged_on_the_default_limits():
    defaults = MetricSettings()
    assert defaults.latency_p95_ms is None and defaults.error_rate == 0.05
    assert window_alerts(metrics(error_rate=0.05), None) == []
    [alert] = window_alerts(metrics(error_rate=0.06), None)
    assert alert.metric == "error_rate" and alert.channel is None
