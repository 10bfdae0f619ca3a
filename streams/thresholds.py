"""Threshold rules on closed windows: which limits a window crosses, and the alerts that follow. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from driftline.schemas.config import MetricSettings, MonitorConfig
from driftline.schemas.records import Alert, WindowMetrics


@dataclass(frozen=True)
class ThresholdBreach:
    metric: str
    value: float
    threshold: float


def threshold_breaches(metrics: WindowMetrics, limits: MetricSettings) -> list[ThresholdBreach]:
    """Which configured thresholds a closed window crosses (strictly above); none below ``min_count`` events."""
    if metrics.count < limits.min_count:
        return []
    breaches = []
    p95 = metrics.latency_p95_ms
    if limits.latency_p95_ms is not None and p95 is not None and p95 > limits.latency_p95_ms:
        breaches.append(ThresholdBreach("latency_p95_ms", p95, limits.latency_p95_ms))
    if limits.error_rate is not None and metrics.error_rate > limits.error_rate:
        breaches.append(ThresholdBreach("error_rate", metrics.error_rate, limits.error_rate))
    return breaches


def window_alerts(metrics: WindowMetrics, config: MonitorConfig | None) -> list[Alert]:
    """The alerts for one closed window; a model without a monitor config is judged on the default limits."""
    limits = config.metrics if config else MetricSettings()
    return [
        Alert(
            alert_id=f"{metrics.key}|{metrics.window_start.isoformat()}|{breach.metric}",
            kind="threshold",
            model=metrics.model,
            model_version=metrics.model_version,
            metric=breach.metric,
            value=breach.value,
            threshold=breach.threshold,
            window_start=metrics.window_start,
            window_end=metrics.window_end,
            count=metrics.count,
            channel=config.alerts.slack_channel if config else None,
        )
        for breach in threshold_breaches(metrics, limits)
    ]
