"""The pure part of a drift check: from what was read of a window to its report, its decision, its alerts and
its summary. No storage, no broker, no clock: :func:`.drift.run_drift_check` reads, calls these, and writes.

- :func:`window_report` turns the comparison with the training reference, the production and segment sections,
  the performance section and what the scan found into a :class:`.DriftReport`, with :func:`decide`'s verdict;
- :func:`decide`: what the report asks for (an alert of each kind, a retrain request);
- :func:`window_alerts`: the alerts of the kinds the window asks for and the cooldown let through;
- :func:`drift_summary`: the task's return value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from driftline.dags.tasks.window_scan import Segment, WindowScan
from driftline.detectors import Profile, compare_profiles
from driftline.detectors.quality import at_least
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import Alert, AlertSeverity, DriftSummary, Verdict
from driftline.schemas.reports import (
    DriftReport,
    FeatureLine,
    Performance,
    ProductionDrift,
    QualityFinding,
    SegmentDrift,
)
from driftline.streams.alerts.formatting import (
    format_drift_alert,
    format_insufficient_alert,
    format_performance_alert,
    format_production_drift_alert,
    format_quality_alert,
)
from driftline.streams.alerts.ids import window_alert_id

AlertKind = Literal["drift", "production_drift", "quality", "performance", "insufficient_data"]

FEATURE_LINE = tuple(FeatureLine.model_fields)


def drift_options(config: MonitorConfig, reference: Profile, *, multivariate: bool | None = None) -> dict[str, Any]:
    """``compare_profiles``'s settings from ``drift`` (per-feature ones only for features ``reference`` has: a
    segment's profile can lack one)."""
    features = reference.feature_types
    return {
        "correction": config.drift.correction,
        "min_rows": config.drift.min_rows,
        "tests": {name: test for name, test in config.drift.tests.items() if name in features},
        "thresholds": {name: t for name, t in config.drift.thresholds.items() if name in features},
        "effect_floors": {name: f for name, f in config.drift.effect_floors.items() if name in features},
        "min_effect": dict(config.drift.min_effect),
        "multivariate": config.drift.multivariate if multivariate is None else multivariate,
    }


def feature_lines(features: list[dict[str, Any]]) -> list[FeatureLine]:
    """The features of a comparison as the production and segment sections keep them."""
    return [FeatureLine.model_validate({name: feature.get(name) for name in FEATURE_LINE}) for feature in features]


def segment_drift(
    config: MonitorConfig, references: dict[Segment, Profile], currents: dict[Segment, Profile]
) -> list[SegmentDrift]:
    """Each segment's window against the segment's own training rows. The segments share ``drift.alpha``
    (Bonferroni across segments, the configured correction across each segment's features), so that many
    segments do not multiply false alarms."""
    alpha = config.drift.alpha / max(len(references), 1)
    results = []
    for (column, value), reference in references.items():
        current = currents[(column, value)]
        compared = compare_profiles(
            reference, current, alpha=alpha, **drift_options(config, reference, multivariate=False)
        ).to_dict()
        results.append(
            SegmentDrift(
                feature=column,
                value=value,
                reference_rows=reference.rows,
                current_rows=current.rows,
                alpha=alpha,
                drifted_features=compared["drifted_features"],
                share_drifted=compared["share_drifted"],
                insufficient_data=current.rows < config.drift.min_rows,
                verdict=compared["verdict"],
                features=feature_lines(compared["features"]),
            )
        )
    return results


def production_section(
    config: MonitorConfig, previous: Profile | None, ends: list[str], current: Profile
) -> ProductionDrift:
    """The report's ``production_drift`` section: the window against the previous windows of production merged
    (``previous``, ending at ``ends``), with the same tests, alpha and correction as the skew against training."""
    if config.drift.production_windows == 0:
        return ProductionDrift(status="off")
    if previous is None:
        return ProductionDrift(
            status="no_previous_windows",
            message=f"none of the previous {config.drift.production_windows} windows holds stored predictions",
        )
    compared = compare_profiles(previous, current, alpha=config.drift.alpha, **drift_options(config, previous))
    report = compared.to_dict()
    return ProductionDrift.model_validate(
        {
            "status": "ok",
            "reference_windows": ends,
            "reference_rows": previous.rows,
            "verdict": report["verdict"],
            "drifted_features": report["drifted_features"],
            "share_drifted": report["share_drifted"],
            "minor_features": report["minor_features"],
            "insufficient_data": report["insufficient_data"],
            "multivariate": report["multivariate"],
            "features": feature_lines(report["features"]),
        }
    )


@dataclass(frozen=True)
class DriftDecision:
    """What a report asks for: a drift alert, a quality alert, a retrain request, or none of them."""

    alert: bool
    retrain: bool
    drifted_features: list[str]
    verdict: Verdict = "no_drift"
    quality_alert: bool = False
    announced_findings: list[QualityFinding] = field(default_factory=list)  # quality findings the alert lists
    production_alert: bool = False
    insufficient_alert: bool = False


def decide(report: DriftReport, config: MonitorConfig) -> DriftDecision:
    """A drift alert when the share of drifted features exceeds ``drift.alert_share`` against the training
    reference, in the whole window (skew) or in a segment; a ``production_drift`` alert when it does against the
    rolling production reference and ``drift.production_alerts`` is on (its own kind, so its cooldown never holds
    back a skew alert). Request a retrain when the skew's share reaches ``drift.retrain_share`` and the model has
    a retrain entry point: retraining answers a difference from the training data.

    Quality findings of ``alerts.quality_severity`` or worse (and any unreadable file moved aside) are announced
    in a quality alert. A critical finding (a feature gone for the whole window) makes the verdict
    ``quality_incident`` whatever the drift tests say; it requests no retrain, since retraining on a window
    without the feature would learn the outage.
    """
    drifted, share, limit = list(report.drifted_features), report.share_drifted, config.drift.alert_share
    segment_drift = any(s.drifted_features for s in report.segments)
    segment_alert = any(s.drifted_features and s.share_drifted > limit for s in report.segments)
    joint_drift = bool(report.multivariate.drifted)
    alert = (bool(drifted) and share > limit) or segment_alert or joint_drift
    production = report.production_drift
    production_drift = config.drift.production_alerts and bool(production.drifted_features)
    production_alert = production_drift and (production.share_drifted or 0.0) > limit
    incident = any(q.severity == "critical" for q in report.quality)
    retrain = (
        bool(drifted)
        and not incident
        and share >= config.drift.retrain_share
        and config.retrain.entry_point is not None
    )
    floor = config.alerts.quality_severity
    announced = [q for q in report.quality if at_least(q.severity, floor)]
    quality_alert = bool(announced) or (bool(report.skipped_files) and floor != "off")
    any_drift = bool(drifted) or joint_drift or segment_drift or production_drift
    insufficient = not any_drift and bool(report.insufficient_data)
    verdict: Verdict = (
        "quality_incident"
        if incident
        else ("drift" if any_drift else ("insufficient_data" if insufficient else "no_drift"))
    )
    insufficient_alert = insufficient and not incident and config.alerts.insufficient_data
    return DriftDecision(
        alert, retrain, drifted, verdict, quality_alert, announced, production_alert, insufficient_alert
    )


def window_report(
    config: MonitorConfig,
    window: tuple[datetime, datetime],
    reference: Profile,
    scan: WindowScan,
    *,
    production: ProductionDrift,
    segments: list[SegmentDrift],
    performance: Performance,
    model_age: str | None,
    generated_at: datetime,
) -> tuple[DriftReport, DriftDecision]:
    """The window's report and what it asks for: the window (``scan``) against the training ``reference``, and the
    window's other sections. The report's ``alert``, ``quality_alert``, ``retrain_requested`` and ``verdict`` are
    the decision's; what the cooldown holds back and whether the retrain request was written are the caller's to
    add (they depend on storage)."""
    compared = compare_profiles(
        reference,
        scan.profile,
        alpha=config.drift.alpha,
        **drift_options(config, reference),
        current_columns=scan.columns,
    ).to_dict()
    sections = {key: value for key, value in compared.items() if key != "report_version"}
    undecided = DriftReport.parse(
        {
            **sections,
            "model": config.model,
            "model_versions": scan.versions,
            "window_start": window[0],
            "window_end": window[1],
            "current_rows": scan.rows,
            "reference_rows": reference.rows,
            "generated_at": generated_at,
            "quality": [*sections["quality"], *scan.type_findings],
            "skipped_files": [file.to_jsonable() for file in scan.quarantined],
            "skipped_events_at_most": sum(file.events_at_most or 0 for file in scan.quarantined),
            "production_drift": production.model_dump(),
            "segments": [segment.model_dump() for segment in segments],
            "performance": performance.model_dump(),
            "model_age": model_age,
            "alert": False,
            "quality_alert": False,
            "retrain_requested": False,
            "alerts_held_back": {},
        }
    )
    decision = decide(undecided, config)
    decided = undecided.model_copy(
        update={
            "alert": decision.alert,
            "retrain_requested": decision.retrain,
            "verdict": decision.verdict,
            "quality_alert": decision.quality_alert,
        }
    )
    return decided, decision


def alert_kinds(report: DriftReport, decision: DriftDecision) -> list[AlertKind]:
    """The kinds of alert the window asks for."""
    kinds: list[AlertKind] = []
    if decision.alert:
        kinds.append("drift")
    if decision.production_alert:
        kinds.append("production_drift")
    if decision.quality_alert:
        kinds.append("quality")
    if report.performance.realized.status == "degraded":
        kinds.append("performance")
    if decision.insufficient_alert:
        kinds.append("insufficient_data")
    return kinds


def window_alerts(
    config: MonitorConfig,
    report: DriftReport,
    decision: DriftDecision,
    html_url: str,
    links: dict[str, str] | None = None,
) -> list[Alert]:
    """The alerts of the kinds the window asks for, but those the cooldown held back (``report.alerts_held_back``),
    each linking the report's page and ``links``."""
    alerts = []
    for kind in alert_kinds(report, decision):
        if kind in report.alerts_held_back:
            continue
        if kind == "drift":
            text = format_drift_alert(report, html_url)
        elif kind == "production_drift":
            text = format_production_drift_alert(report, html_url)
        elif kind == "quality":
            text = format_quality_alert(report, html_url, decision.announced_findings)
        elif kind == "insufficient_data":
            text = format_insufficient_alert(report, html_url, config.drift.min_rows)
        else:
            text = format_performance_alert(report, html_url)
        critical = kind == "quality" and decision.verdict == "quality_incident"
        severity: AlertSeverity = "critical" if critical else ("info" if kind == "insufficient_data" else "warning")
        alerts.append(
            Alert(
                alert_id=window_alert_id(kind, config.model, report.window_end),
                kind=kind,
                model=config.model,
                model_version=report.model_versions[0] if len(report.model_versions) == 1 else None,
                window_start=report.window_start,
                window_end=report.window_end,
                count=report.current_rows,
                channel=config.alerts.slack_channel,
                text=text,
                severity=severity,
                links={"Report": html_url, **(links or {})},
            )
        )
    return alerts


def drift_summary(
    report: DriftReport, decision: DriftDecision, report_url: str, alerts_delivered: list[str]
) -> DriftSummary:
    """The drift task's return value for one window."""
    severities = [finding.severity for finding in report.quality]
    return DriftSummary(
        model=report.model,
        window_start=report.window_start,
        window_end=report.window_end,
        current_rows=report.current_rows,
        drifted_features=decision.drifted_features,
        share_drifted=report.share_drifted,
        alert=decision.alert,
        retrain_requested=report.retrain_requested,
        report_url=report_url,
        alerts_delivered=alerts_delivered,
        verdict=decision.verdict,
        quality_findings={severity: severities.count(severity) for severity in sorted(set(severities))},
        quarantined_files=[file.path for file in report.skipped_files],
        alerts_held_back=sorted(report.alerts_held_back),
    )


def verdict_line(summary: DriftSummary) -> str:
    """One line a person reads in the task's log: the window, the verdict, what drifted, what was done."""
    start, end = summary.window_start, summary.window_end
    window = f"{start:%Y-%m-%d %H:%M} → {end:%H:%M} UTC" if start.date() == end.date() else f"{start} → {end}"
    verdict = summary.verdict.replace("_", " ").upper()
    drifted = f": {', '.join(summary.drifted_features)}" if summary.drifted_features else ""
    done = [f"alerts sent: {', '.join(summary.alerts_delivered)}" if summary.alerts_delivered else "no alert sent"]
    if summary.retrain_requested:
        done.append("retrain requested")
    return (
        f"{summary.model}, window {window} ({summary.current_rows:,} rows): {verdict}{drifted}; {'; '.join(done)}; "
        f"report {summary.report_url.removesuffix('.json')}.html"
    )
