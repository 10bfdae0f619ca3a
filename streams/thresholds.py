"""Threshold rules on closed windows, and the alerts that follow from them (and from realized performance)
over time. Pure.

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

Realized performance (a window's labels joined in the stream) follows the same rules through
:meth:`StreamAlerts.judge_performance`: a metric is over its limit when its whole 95 % interval is worse than
its reference by more than the tolerance, and ``performance.min_labels`` plays ``min_count``'s part.

Its state (open incidents, last recoveries) is part of the window merger's checkpoint, and every alert id is a
function of the windows alone, so a merger restarted from its checkpoint decides the same alerts with the same
ids (delivery sends each id once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from driftline.schemas.config import MetricSettings, MonitorConfig, PerformanceSettings
from driftline.schemas.records import Alert, AlertSeverity, WindowMetrics, WindowPerformance
from driftline.schemas.worker_state import AlertIncident
from driftline.streams.alerts.ids import breach_alert_id, resolved_alert_id
from driftline.streams.label_join import HIGHER_IS_BETTER, STREAM_METRICS, Realized, realized


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


@dataclass(frozen=True)
class Judged:
    """What one window is, for the alerts of one model version: the window a metric was judged in."""

    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    count: int  # the evidence: events (thresholds) or labelled predictions (realized performance)
    unit: str  # what count counts


@dataclass(frozen=True)
class Verdict:
    """One metric in one window: ``breach`` when it is over its limit, else ``None`` (within it)."""

    value: float | None
    breach: ThresholdBreach | None
    within: str  # how a recovery says it is back, e.g. "within 50 again"


THRESHOLD_METRICS = frozenset(("latency_p95_ms", "error_rate", "fallback_rate"))
PERFORMANCE_METRICS = frozenset(STREAM_METRICS)


@dataclass
class StreamAlerts:
    """Incidents per model version and metric (module docstring): thresholds on each window, and realized
    performance on each window's labels."""

    incidents: dict[str, AlertIncident] = field(default_factory=dict)
    recovered: dict[str, datetime] = field(default_factory=dict)

    def judge(self, metrics: WindowMetrics, config: MonitorConfig | None) -> list[Alert]:
        """The alerts for one closed window, given the windows before it; updates the state."""
        limits = config.metrics if config else MetricSettings()
        if metrics.count < limits.min_count:
            return []
        channel = config.alerts.slack_channel if config else None
        breaches = {b.metric: b for b in threshold_breaches(metrics, limits)}
        values = window_values(metrics)
        verdicts = {
            metric: Verdict(values[metric], breaches.get(metric), f"within {threshold:.4g} again")
            for metric, threshold in limits_of(limits).items()
            if threshold is not None
        }
        seen = Judged(
            metrics.model, metrics.model_version, metrics.window_start, metrics.window_end, metrics.count, "events"
        )
        return self._track(
            seen,
            verdicts,
            THRESHOLD_METRICS,
            limits.cooldown,
            channel,
            lambda breach, escalated: self._alert(metrics, breach, channel, escalated),
        )

    def judge_performance(self, performance: WindowPerformance, config: MonitorConfig | None) -> list[Alert]:
        """The alerts for one window's realized performance (``performance.reference`` metrics), as incidents
        like the thresholds': a metric is over its limit when its whole 95 % interval is worse than its reference
        by more than ``performance.tolerance`` (critical: by more than ``metrics.critical_factor`` × the
        tolerance), back within it when the interval reaches the limit again; fewer than
        ``performance.min_labels`` labelled predictions decide nothing."""
        if config is None:
            return []
        settings = config.performance
        if performance.labelled < settings.min_labels:
            return []
        figures = realized(performance)
        verdicts = {}
        for metric, reference in sorted(settings.reference.items()):
            got = figures.get(metric)
            if got is None or metric not in PERFORMANCE_METRICS:
                continue
            verdicts[metric] = performance_verdict(got, reference, settings.tolerance, config.metrics.critical_factor)
        channel = config.alerts.slack_channel
        seen = Judged(
            performance.model,
            performance.model_version,
            performance.window_start,
            performance.window_end,
            performance.labelled,
            "labelled predictions",
        )

        def alert(breach: ThresholdBreach, escalated: bool) -> Alert:
            return performance_alert(performance, figures[breach.metric], breach, settings, channel, escalated)

        return self._track(seen, verdicts, PERFORMANCE_METRICS, config.metrics.cooldown, channel, alert)

    def _track(  # noqa: PLR0917 - one window's verdicts and how to tell of them
        self,
        seen: Judged,
        verdicts: dict[str, Verdict],
        family: frozenset[str],
        cooldown: timedelta,
        channel: str | None,
        make_alert: Callable[[ThresholdBreach, bool], Alert],
    ) -> list[Alert]:
        """Open, escalate and resolve the incidents of ``family``'s metrics from one window's ``verdicts`` (a
        metric of the family without a verdict is no longer judged: its incident is dropped)."""
        alerts = []
        for metric in sorted(family):
            key = incident_key(seen.model, seen.model_version, metric)
            open_incident = self.incidents.get(key)
            verdict = verdicts.get(metric)
            breach = verdict.breach if verdict else None
            last = self.recovered.get(key)
            if breach is not None and open_incident is None:
                flapping = bool(cooldown) and last is not None and seen.window_start < last + cooldown
                announce = not flapping or breach.severity == "critical"
                alert = make_alert(breach, False)
                self.incidents[key] = AlertIncident(
                    model=seen.model,
                    model_version=seen.model_version,
                    metric=metric,
                    alert_id=alert.alert_id,
                    since=seen.window_start,
                    severity=breach.severity,
                    announced=announce,
                    value=breach.value,
                    threshold=breach.threshold,
                )
                if announce:
                    alerts.append(alert)
            elif breach is not None and open_incident is not None:
                if not open_incident.announced and (last is None or seen.window_start >= last + cooldown):
                    # Opened silently within the cooldown, and still over once it has passed: it is no flap.
                    alerts.append(make_alert(breach, False))
                    self.incidents[key] = open_incident.model_copy(
                        update={"announced": True, "severity": breach.severity, "value": breach.value}
                    )
                elif breach.severity == "critical" and open_incident.severity != "critical":
                    alerts.append(make_alert(breach, True))
                    self.incidents[key] = open_incident.model_copy(
                        update={"severity": "critical", "announced": True, "value": breach.value}
                    )
            elif open_incident is not None and verdict is not None:  # back within its limit
                del self.incidents[key]
                self.recovered[key] = seen.window_end
                if open_incident.announced:
                    alerts.append(self._resolved(seen, open_incident, verdict, channel))
            elif open_incident is not None:  # no longer judged: its limit was removed from the config
                del self.incidents[key]
            last = self.recovered.get(key)
            if last is not None and key not in self.incidents and last + cooldown <= seen.window_start:
                del self.recovered[key]  # past its cooldown: nothing to remember
        return alerts

    def judge_all(self, windows: Iterable[WindowMetrics], configs: dict[str, MonitorConfig]) -> list[Alert]:
        """:meth:`judge` over ``windows`` in the order the merger publishes them (oldest first)."""
        ordered = sorted(windows, key=lambda w: (w.window_start, w.model, w.model_version))
        return [alert for window in ordered for alert in self.judge(window, configs.get(window.model))]

    @staticmethod
    def _alert(metrics: WindowMetrics, breach: ThresholdBreach, channel: str | None, escalated: bool = False) -> Alert:
        seen = Judged(
            metrics.model, metrics.model_version, metrics.window_start, metrics.window_end, metrics.count, "events"
        )
        return breach_alert(seen, "threshold", breach.metric, breach, channel, escalated)

    @staticmethod
    def _resolved(seen: Judged, incident: AlertIncident, verdict: Verdict, channel: str | None) -> Alert:
        lasted = seen.window_start - incident.since
        value = verdict.value
        now = "no value" if value is None else f"{value:.4g}"
        return Alert(
            alert_id=resolved_alert_id(incident.alert_id),
            kind="resolved",
            model=seen.model,
            model_version=seen.model_version,
            metric=incident.metric,
            value=value,
            threshold=incident.threshold,
            window_start=seen.window_start,
            window_end=seen.window_end,
            count=seen.count,
            channel=channel,
            severity="info",
            text=(
                f":white_check_mark: driftline: resolved — model *{seen.model}* version *{seen.model_version}*: "
                f"{incident.metric} = {now} is {verdict.within} in window "
                f"{seen.window_start.isoformat()} → {seen.window_end.isoformat()} ({seen.count} {seen.unit}); "
                f"it was over from {incident.since.isoformat()} ({lasted} in all, last seen {incident.value:.4g})"
            ),
        )

    # -- the merger's checkpoint ----------------------------------------------------------------------------------
    def state(self) -> tuple[list[AlertIncident], dict[str, datetime]]:
        return [self.incidents[k] for k in sorted(self.incidents)], dict(sorted(self.recovered.items()))

    def restore(self, incidents: list[AlertIncident], recovered: dict[str, datetime]) -> None:
        self.incidents = {incident_key(i.model, i.model_version, i.metric): i for i in incidents}
        self.recovered = dict(recovered)


def performance_verdict(got: Realized, reference: float, tolerance: float, critical_factor: float) -> Verdict:
    """Over when the whole 95 % interval is worse than ``reference`` by more than ``tolerance``; critical when by
    more than ``critical_factor`` × the tolerance (never with a tolerance of 0)."""
    higher = got.metric in HIGHER_IS_BETTER
    far = got.ci_high if higher else got.ci_low  # the interval's end nearest the reference
    gap = reference - far if higher else far - reference
    within = f"no longer worse than its reference {reference:.4g} (tolerance {tolerance:g}, 95 % confidence)"
    if gap <= tolerance:
        return Verdict(got.value, None, within)
    critical = tolerance > 0 and gap > tolerance * critical_factor
    return Verdict(
        got.value, ThresholdBreach(got.metric, got.value, reference, "critical" if critical else "warning"), within
    )


def performance_alert(  # noqa: PLR0917 - the window, its figure and how to tell of it
    performance: WindowPerformance,
    got: Realized,
    breach: ThresholdBreach,
    settings: PerformanceSettings,
    channel: str | None,
    escalated: bool,
) -> Alert:
    p = performance
    text = (
        f":chart_with_downwards_trend: driftline: model *{p.model}* version *{p.model_version}* performs worse than "
        f"its reference on the labels joined in the stream (window {p.window_start.isoformat()} → "
        f"{p.window_end.isoformat()}, {p.labelled} labelled of {p.predictions} predictions, labels within "
        f"{timedelta(seconds=p.label_deadline_seconds)} of the window's end)\n"
        f"• {got.metric}: {got.value:.4f} (95 % CI {got.ci_low:.4f}–{got.ci_high:.4f}, n={got.n}) vs reference "
        f"{breach.threshold:.4f}, tolerance {settings.tolerance:g}"
    )
    seen = Judged(p.model, p.model_version, p.window_start, p.window_end, p.labelled, "labelled predictions")
    return breach_alert(seen, "performance", f"performance:{got.metric}", breach, channel, escalated, text)


def breach_alert(  # noqa: PLR0917 - the window, the breach and how to tell of it
    seen: Judged,
    kind: Literal["threshold", "performance"],
    name: str,
    breach: ThresholdBreach,
    channel: str | None,
    escalated: bool,
    text: str | None = None,
) -> Alert:
    """The alert that opens (or escalates) an incident; its id is the window's and the metric's (``name``)."""
    return Alert(
        alert_id=breach_alert_id(seen.model, seen.model_version, seen.window_start, name, escalated=escalated),
        kind=kind,
        model=seen.model,
        model_version=seen.model_version,
        metric=breach.metric,
        value=breach.value,
        threshold=breach.threshold,
        window_start=seen.window_start,
        window_end=seen.window_end,
        count=seen.count,
        channel=channel,
        severity=breach.severity,
        text=text,
    )
