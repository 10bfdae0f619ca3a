from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.schemas.config import MetricSettings, MonitorConfig
from driftline.schemas.records import LatencySketchState, WindowMetrics
from driftline.streams.thresholds import StreamAlerts, threshold_breaches

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def metrics(
    count: int = 50, p95: float | None = 80.0, error_rate: float = 0.05, minute: int = 0, fallback_rate: float = 0.0
) -> WindowMetrics:
    return WindowMetrics(
        model="m",
        model_version="v1",
        window_start=T0 + timedelta(minutes=minute),
        window_end=T0 + timedelta(minutes=minute + 5),
        fallback_rate=fallback_rate,
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
    [alert] = StreamAlerts().judge(metrics(), config)
    assert (alert.kind, alert.metric, alert.value, alert.threshold, alert.count) == (
        "threshold",
        "latency_p95_ms",
        80.0,
        50.0,
        50,
    )
    assert alert.channel == "#m" and alert.window_start == T0 and alert.severity == "warning"
    assert alert.alert_id == f"m|v1|{T0.isoformat()}|latency_p95_ms"


def test_an_unconfigured_model_is_judged_on_the_default_limits():
    defaults = MetricSettings()
    assert defaults.latency_p95_ms is None and defaults.error_rate == 0.05
    assert StreamAlerts().judge(metrics(error_rate=0.05), None) == []
    [alert] = StreamAlerts().judge(metrics(error_rate=0.06), None)
    assert alert.metric == "error_rate" and alert.channel is None


def config(**metrics_settings: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "model": "m",
            "reference": "r.parquet",
            "metrics": {"latency_p95_ms": 50, "error_rate": 0.5, **metrics_settings},
        }
    )


def test_an_incident_alerts_once_escalates_once_and_resolves_with_a_message():
    alerts, limits = StreamAlerts(), config(cooldown="0")
    [opened] = alerts.judge(metrics(p95=80, minute=0), limits)
    assert alerts.judge(metrics(p95=90, minute=5), limits) == []  # still over: said already
    [escalated] = alerts.judge(metrics(p95=100, minute=10), limits)  # 2 × 50: critical
    assert (opened.severity, escalated.severity) == ("warning", "critical")
    assert escalated.alert_id == f"m|v1|{(T0 + timedelta(minutes=10)).isoformat()}|latency_p95_ms|critical"
    assert alerts.judge(metrics(p95=120, minute=15), limits) == []
    assert alerts.judge(metrics(count=5, p95=10, minute=20), limits) == []  # too few events to say it is over
    [resolved] = alerts.judge(metrics(p95=40, minute=25), limits)
    assert (resolved.kind, resolved.severity, resolved.metric, resolved.value) == (
        "resolved",
        "info",
        "latency_p95_ms",
        40,
    )
    assert resolved.alert_id == f"{opened.alert_id}|resolved"
    assert "within 50 again" in (resolved.text or "") and "0:25:00 in all" in (resolved.text or "")
    assert alerts.incidents == {}
    [again] = alerts.judge(metrics(p95=80, minute=30), limits)  # no cooldown: a new incident
    assert again.alert_id != opened.alert_id


def test_a_breach_within_the_cooldown_after_a_recovery_is_tracked_silently_unless_critical():
    alerts, limits = StreamAlerts(), config(cooldown="15m")
    assert len(alerts.judge(metrics(p95=80, minute=0), limits)) == 1
    assert [a.kind for a in alerts.judge(metrics(p95=40, minute=5), limits)] == ["resolved"]  # recovered at 10:10
    assert alerts.judge(metrics(p95=80, minute=10), limits) == []  # flapping: not announced
    assert alerts.judge(metrics(p95=40, minute=15), limits) == []  # and neither is its recovery
    assert alerts.judge(metrics(p95=80, minute=20), limits) == []  # 10:20 < 10:20 + 15 min: still flapping
    [critical] = alerts.judge(metrics(p95=150, minute=25), limits)  # a critical one always is
    assert critical.severity == "critical"
    assert [a.kind for a in alerts.judge(metrics(p95=40, minute=30), limits)] == ["resolved"]
    assert alerts.judge(metrics(p95=40, minute=35), limits) == []
    assert len(alerts.judge(metrics(p95=80, minute=60), limits)) == 1  # long after the cooldown: announced


def test_fallback_rate_has_its_own_threshold_and_the_state_survives_the_checkpoint():
    alerts, limits = StreamAlerts(), config(fallback_rate=0.1)
    [alert] = alerts.judge(metrics(p95=10, fallback_rate=0.3, minute=0), limits)
    assert (alert.metric, alert.severity) == ("fallback_rate", "critical")  # 0.3 ≥ 2 × 0.1
    restored = StreamAlerts()
    restored.restore(*alerts.state())
    assert restored.judge(metrics(p95=10, fallback_rate=0.3, minute=5), limits) == []
    [resolved] = restored.judge(metrics(p95=10, fallback_rate=0.0, minute=10), limits)
    assert resolved.kind == "resolved" and resolved.metric == "fallback_rate"


def test_judge_all_takes_windows_in_time_order():
    limits = {"m": config(cooldown="0")}
    windows = [metrics(p95=40, minute=5), metrics(p95=80, minute=0)]
    assert [a.kind for a in StreamAlerts().judge_all(windows, limits)] == ["threshold", "resolved"]


def test_a_breach_opened_within_the_cooldown_is_announced_once_it_outlasts_the_cooldown():
    alerts, limits = StreamAlerts(), config(cooldown="15m")
    alerts.judge(metrics(p95=80, minute=0), limits)
    alerts.judge(metrics(p95=40, minute=5), limits)  # recovered at 10:10
    assert alerts.judge(metrics(p95=80, minute=10), limits) == []  # within the cooldown: a flap, so far
    assert alerts.judge(metrics(p95=80, minute=20), limits) == []  # 10:20 < 10:25
    [sustained] = alerts.judge(metrics(p95=80, minute=25), limits)  # still over when the cooldown has passed
    assert sustained.kind == "threshold" and sustained.window_start == T0 + timedelta(minutes=25)
    assert alerts.judge(metrics(p95=80, minute=30), limits) == []
    assert [a.kind for a in alerts.judge(metrics(p95=40, minute=35), limits)] == ["resolved"]
