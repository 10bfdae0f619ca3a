"""Threshold rules on closed windows, and the alerts that follow from them over time. Pure.

:func:`threshold_breaches` says which limits one window crosses, and how badly. :class:`StreamAlerts` turns the
windows of each model version, in order, into what a person is told:

- a metric crossing its threshold opens an **incident** and one alert (severity ``warning``, or ``critical`` at or
  above ``threshold × metrics.critical_factor``); while it stays over, later windows say nothing more (**dedup**),
  except once when a warning becomes critical (**escalation**);
- the first window with enough events (``metrics.min_count``) back within the threshold **resolves** it, with a
  message that says so and for how long it lasted;
- a new breach that starts within ``metrics.cooldown`` after a recovery is tracked but not announced (a flapping
  metric says nothing until it turns critical, or is still over once the cooldown has passed, when it is
  announced), and the recovery of an incident never announced is silent too;
- a window with fewer than ``min_count`` events neither opens nor resolves anything: too little evidence.

Its state (open incidents, last recoveries) is part of the window merger's checkpoint, and every alert id is a
function of the windows alone, so a merger restarted from its checkpoint decides the same alerts with the same
ids (delivery sends each id once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from driftline.schemas.config import MetricSettings, MonitorConfig
from driftline.schemas.records import Alert, AlertIncident, AlertSeverity, WindowMetrics


@dataclass(frozen=True)
class ThresholdBreach:
    metric: str
    value: float
    threshold: float
    severity: AlertSeverity = "warning"


def window_values(metrics: WindowMetrics) -> dict[str, float | None]:
    return {
        "latency_p95_ms": metrics.latency_p95_ms,
        "error_rate": metrics.error_rate,
        "fallback_rate": metrics.fallback_rate,
    }


def limits_of(limits: MetricSettings) -> dict[str, float | None]:
    return {
        "latency_p95_ms": limits.latency_p95_ms,
        "error_rate": limits.error_rate,
        "fallback_rate": limits.fallback_rate,
    }


def threshold_breaches(metrics: WindowMetrics, limits: MetricSettings) -> list[ThresholdBreach]:
    """Which configured thresholds a closed window crosses (strictly above); none below ``min_count`` events."""
    if metrics.count < limits.min_count:
        return []
    values = window_values(metrics)
    breaches = []
    for metric, threshold in limits_of(limits).items():
        value = values[metric]
        if threshold is None or value is None or value <= threshold:
            continue
        critical = value >= threshold * limits.critical_factor if threshold > 0 else False
        breaches.append(ThresholdBreach(metric, value, threshold, "critical" if critical else "warning"))
    return breaches


def incident_key(model: str, version: str, metric: str) -> str:
    return f"{model}|{version}|{metric}"


@dataclass
class StreamAlerts:
    """Incidents per model version and metric (module docstring)."""

    incidents: dict[str, AlertIncident] = field(default_factory=dict)
    recovered: dict[str, datetime] = field(default_factory=dict)

    def judge(self, metrics: WindowMetrics, config: MonitorConfig | None) -> list[Alert]:
        """The alerts for one closed window, given the windows before it; updates the state."""
        limits = config.metrics if config else MetricSettings()
        if metrics.count < limits.min_count:
            return []
        channel = config.alerts.slack_channel if config else None
        breaches = {b.metric: b for b in threshold_breaches(metrics, limits)}
        alerts = []
        for metric, threshold in limits_of(limits).items():
            key = incident_key(metrics.model, metrics.model_version, metric)
            open_incident = self.incidents.get(key)
            breach = breaches.get(metric)
            if breach is not None and open_incident is None:
                last = self.recovered.get(key)
                flapping = bool(limits.cooldown) and last is not None and metrics.window_start < last + limits.cooldown
                announce = not flapping or breach.severity == "critical"
                alert = self._alert(metrics, breach, channel)
                self.incidents[key] = AlertIncident(
                    model=metrics.model,
                    model_version=metrics.model_version,
                    metric=metric,
                    alert_id=alert.alert_id,
                    since=metrics.window_start,
                    severity=breach.severity,
                    announced=announce,
                    value=breach.value,
                    threshold=breach.threshold,
                )
                if announce:
                    alerts.append(alert)
            elif breach is not None and open_incident is not None:
                last = self.recovered.get(key)
                if not open_incident.announced and (last is None or metrics.window_start >= last + limits.cooldown):
                    # Opened silently within the cooldown, and still over once it has passed: it is no flap.
                    alerts.append(self._alert(metrics, breach, channel))
                    self.incidents[key] = open_incident.model_copy(
                        update={"announced": True, "severity": breach.severity, "value": breach.value}
                    )
                elif breach.severity == "critical" and open_incident.severity != "critical":
                    alert = self._alert(metrics, breach, channel, escalated=True)
                    alerts.append(alert)
                    self.incidents[key] = open_incident.model_copy(
                        update={"severity": "critical", "announced": True, "value": breach.value}
                    )
            elif open_incident is not None and threshold is not None:  # back within its threshold
                del self.incidents[key]
                self.recovered[key] = metrics.window_end
                if open_incident.announced:
                    alerts.append(self._resolved(metrics, open_incident, window_values(metrics)[metric], channel))
            elif open_incident is not None:  # its threshold was removed from the config
                del self.incidents[key]
            last = self.recovered.get(key)
            if last is not None and key not in self.incidents and last + limits.cooldown <= metrics.window_start:
                del self.recovered[key]  # past its cooldown: nothing to remember
        return alerts

    def judge_all(self, windows: Iterable[WindowMetrics], configs: dict[str, MonitorConfig]) -> list[Alert]:
        """:meth:`judge` over ``windows`` in the order the merger publishes them (oldest first)."""
        ordered = sorted(windows, key=lambda w: (w.window_start, w.model, w.model_version))
        return [alert for window in ordered for alert in self.judge(window, configs.get(window.model))]

    @staticmethod
    def _alert(metrics: WindowMetrics, breach: ThresholdBreach, channel: str | None, escalated: bool = False) -> Alert:
        base = f"{metrics.key}|{metrics.window_start.isoformat()}|{breach.metric}"
        return Alert(
            alert_id=f"{base}|critical" if escalated else base,
            kind="threshold",
            model=metrics.model,
            model_version=metrics.model_version,
            metric=breach.metric,
            value=breach.value,
            threshold=breach.threshold,
            window_start=metrics.window_start,
            window_end=metrics.window_end,
            count=metrics.count,
            channel=channel,
            severity=breach.severity,
        )

    @staticmethod
    def _resolved(metrics: WindowMetrics, incident: AlertIncident, value: float | None, channel: str | None) -> Alert:
        lasted = metrics.window_start - incident.since
        now = "no value" if value is None else f"{value:.4g}"
        return Alert(
            alert_id=f"{incident.alert_id}|resolved",
            kind="resolved",
            model=metrics.model,
            model_version=metrics.model_version,
            metric=incident.metric,
            value=value,
            threshold=incident.threshold,
            window_start=metrics.window_start,
            window_end=metrics.window_end,
            count=metrics.count,
            channel=channel,
            severity="info",
            text=(
                f":white_check_mark: driftline: resolved — model *{metrics.model}* version *{metrics.model_version}*: "
                f"{incident.metric} = {now} is within {incident.threshold:.4g} again in window "
                f"{metrics.window_start.isoformat()} → {metrics.window_end.isoformat()} ({metrics.count} events); "
                f"it was over from {incident.since.isoformat()} ({lasted} in all, last seen {incident.value:.4g})"
            ),
        )

    # -- the merger's checkpoint ----------------------------------------------------------------------------------
    def state(self) -> tuple[list[AlertIncident], dict[str, datetime]]:
        return [self.incidents[k] for k in sorted(self.incidents)], dict(sorted(self.recovered.items()))

    def restore(self, incidents: list[AlertIncident], recovered: dict[str, datetime]) -> None:
        self.incidents = {incident_key(i.model, i.model_version, i.metric): i for i in incidents}
        self.recovered = dict(recovered)
