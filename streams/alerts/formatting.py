"""How an alert reads: its Block Kit message for Slack, and the text (the console's line and Slack's
notification) of each kind. Pure: records in, text and blocks out.
"""

from __future__ import annotations

from typing import Any

from driftline.schemas.records import Alert, AlertSeverity, QuarantinedFile
from driftline.schemas.reports import DriftReport, FeatureLine, QualityFinding

Blocks = list[dict[str, Any]]

KIND_SEVERITY: dict[str, AlertSeverity] = {
    "threshold": "warning",
    "drift": "warning",
    "production_drift": "warning",
    "quality": "warning",
    "performance": "warning",
    "model_age": "warning",
    "quarantine": "warning",
    "unconfigured_model": "info",
    "artifact": "critical",
    "pipeline": "critical",
    "resolved": "info",
    "prediction_drift": "warning",
    "deployment": "info",
    "insufficient_data": "info",
}
KIND_TITLE = {
    "threshold": "metric over its threshold",
    "drift": "data drift",
    "production_drift": "data changed since the last windows",
    "quality": "data quality",
    "performance": "model performance degraded",
    "model_age": "model not retrained for long",
    "quarantine": "unreadable file set aside",
    "unconfigured_model": "model without a config",
    "artifact": "model artifact refused",
    "pipeline": "pipeline task failed",
    "resolved": "metric back within its threshold",
    "prediction_drift": "predictions changed (online detector)",
    "deployment": "rollout changed what serves",
    "insufficient_data": "too few rows for a drift verdict",
}
_SEVERITY_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":white_circle:"}
_SECTION_LIMIT = 3000  # Slack's limit for a section's text
_HEADER_LIMIT = 150


def alert_blocks(alert: Alert) -> Blocks:
    """The alert as Block Kit: a header with severity, kind and model; the message; the window and its size;
    a button per web link (the HTML report, the Airflow run) and a line for links that are not web addresses
    (a report on local storage). Pure."""
    severity = alert.severity or KIND_SEVERITY[alert.kind]
    header = f"{severity.upper()} · {KIND_TITLE[alert.kind]} · {alert.model}"
    body = alert.text or alert.alert_id
    if len(body) > _SECTION_LIMIT:
        body = body[: _SECTION_LIMIT - 40] + "\n… (cut; the full text is in the report)"
    window = f"window {alert.window_start.isoformat()} → {alert.window_end.isoformat()}"
    if alert.window_start == alert.window_end:
        window = f"at {alert.window_start.isoformat()}"
    context = [f"{_SEVERITY_EMOJI[severity]} {severity}", window]
    if alert.count is not None:
        context.append(f"{alert.count:,} events")
    context.append(f"id `{alert.alert_id}`")
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:_HEADER_LIMIT], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    web = {label: url for label, url in alert.links.items() if url.startswith(("https://", "http://"))}
    other = {label: url for label, url in alert.links.items() if label not in web}
    if web:
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": label[:75]}, "url": url}
            for label, url in list(web.items())[:5]
        ]
        blocks.append({"type": "actions", "elements": buttons})
    if other:
        lines = " · ".join(f"{label}: `{url}`" for label, url in other.items())
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": lines[:_SECTION_LIMIT]}]})
    return blocks


def format_threshold_alert(alert: Alert) -> str:
    critical = "CRITICAL " if alert.severity == "critical" else ""
    return (
        f":rotating_light: driftline: {critical}model *{alert.model}* version *{alert.model_version}* — "
        f"{alert.metric} = {alert.value:.4g} exceeds {alert.threshold:.4g} "
        f"in window {alert.window_start.isoformat()} → {alert.window_end.isoformat()} ({alert.count} events)"
    )


def _window(report: DriftReport) -> str:
    return f"window {report.window_start.isoformat()} → {report.window_end.isoformat()}"


def format_quality_alert(report: DriftReport, report_url: str, findings: list[QualityFinding]) -> str:
    """One message for the window's quality findings that need a person, worst first."""
    worst = "critical" if any(f.severity == "critical" for f in findings) else "warning"
    headline = "a feature is gone for the whole window" if worst == "critical" else "data-quality problems"
    skipped = report.skipped_files
    counts = f"{len(findings)} finding(s)" + (f", {len(skipped)} unreadable file(s) set aside" if skipped else "")
    lines = [
        f"{_SEVERITY_EMOJI[worst]} driftline: {headline} on model *{report.model}* — {counts} "
        f"({_window(report)}, {report.current_rows} rows)"
    ]
    order = {"critical": 0, "warning": 1, "info": 2}
    for finding in sorted(findings, key=lambda f: order.get(f.severity, 3)):
        lines.append(f"• [{finding.severity}] {finding.check}: {finding.message}")
    for file in skipped:
        lines.append(f"• [warning] unreadable file moved to quarantine: {file.path} ({file.reason})")
    lines.append(f"Report: {report_url}")
    return "\n".join(lines)


def format_quarantine_alert(model: str, file: QuarantinedFile, moved_to_url: str) -> str:
    held = f"at most {file.events_at_most:,} events" if file.events_at_most is not None else "an unknown number of rows"
    source = (
        f", from offsets {file.first_offset}–{file.last_offset} of {file.topic} partition {file.partition}"
        if file.topic is not None
        else ""
    )
    return (
        f":large_orange_circle: driftline: model *{model}* — an unreadable event file was moved to quarantine and "
        f"left out of every check: {file.path} ({file.reason}). It held {held}{source}. "
        f"It is now at {moved_to_url}; restore a good copy to its path to count those events again."
    )


def _feature_line(feature: FeatureLine) -> str:
    score = f"p={feature.p_value:.3g}" if feature.p_value is not None else "distance"
    effect = ""
    if feature.effect is not None and feature.effect_floor is not None:
        effect = f", effect {feature.effect:.3g} {feature.effect_measure or ''} ≥ {feature.effect_floor:.3g}"
    statistic = "none" if feature.statistic is None else f"{feature.statistic:.4g}"
    return (
        f"• {feature.feature}: {feature.test} statistic={statistic} {score} (threshold {feature.threshold:.3g}{effect})"
    )


def format_drift_alert(report: DriftReport, report_url: str) -> str:
    drifted = report.drifted
    joint = report.multivariate
    lines = [
        f":warning: driftline: data drift on model *{report.model}* — "
        f"{len(drifted)} of {len(report.features)} features drifted against the training reference "
        f"({_window(report)}, {report.current_rows} rows)"
    ]
    lines.extend(_feature_line(feature) for feature in drifted)
    if joint.drifted:
        lines.append(
            f"• the features together ({joint.test}): {joint.message}; p={joint.p_value or 0.0:.3g} "
            f"(threshold {joint.threshold or 0.0:.3g})"
        )
    if report.minor_features:
        lines.append(f"Significant but below their effect floor (not alerted): {', '.join(report.minor_features)}.")
    if report.insufficient_data:
        lines.append(f"Too few values to judge: {', '.join(report.insufficient_data)}.")
    for segment in report.segments:
        if segment.drifted_features:
            lines.append(
                f"Segment {segment.feature} = {segment.value} ({segment.current_rows} rows): "
                f"{', '.join(segment.drifted_features)} drifted."
            )
    if report.retrain_requested:
        lines.append("Retraining has been requested.")
    lines.append(f"Report: {report_url}")
    return "\n".join(lines)


def format_insufficient_alert(report: DriftReport, report_url: str, min_rows: int) -> str:
    """A window whose check found no drift but could not judge some features: not the same as "no drift"."""
    names = list(report.insufficient_data)
    features = {f.feature: f for f in report.features}
    counts = sorted({features[name].current_size for name in names if name in features})
    sizes = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}" if counts else "too few"
    return "\n".join(
        [
            f":grey_question: driftline: no verdict for {len(names)} of {len(report.features)} features of model "
            f"*{report.model}* ({_window(report)}, "
            f"{report.current_rows} rows): {sizes} values each, fewer than drift.min_rows ({min_rows}).",
            f"Not judged: {', '.join(names)}. Gross change (values out of range, unseen categories, missing share) "
            "was tested and not found; smaller changes cannot be seen at this size. Lower drift.min_rows or lengthen "
            "drift.window if such windows are normal.",
            f"Report: {report_url}",
        ]
    )


def format_production_drift_alert(report: DriftReport, report_url: str) -> str:
    """What changed against the previous windows of production (the rolling reference)."""
    production = report.production_drift
    lines = [
        f":warning: driftline: model *{report.model}*'s data changed against the previous "
        f"{len(production.reference_windows)} window(s) of production — {len(production.drifted_features)} of "
        f"{len(production.features)} features ({_window(report)}, {report.current_rows} rows vs "
        f"{production.reference_rows} rows)"
    ]
    lines.extend(_feature_line(feature) for feature in production.features if feature.drifted)
    lines.append(f"Report: {report_url}")
    return "\n".join(lines)


def format_performance_alert(report: DriftReport, report_url: str) -> str:
    """Which metrics degraded in the window: the value, its interval, the reference and the tolerance."""
    realized = report.performance.realized
    lines = [
        f":chart_with_downwards_trend: driftline: model *{report.model}* performs worse than its reference "
        f"({_window(report)}, {realized.labelled_rows} labelled rows)"
    ]
    for verdict in realized.degraded:
        current = verdict.current
        lines.append(
            f"• {verdict.metric}: {current.value:.4f} (95 % CI {current.ci_low:.4f}–{current.ci_high:.4f})"
            f" vs reference {verdict.reference:.4f}, tolerance {verdict.tolerance:g}"
        )
    lines.append(f"Report: {report_url}")
    return "\n".join(lines)
