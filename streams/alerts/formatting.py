"""How an alert reads: its Block Kit message for Slack, and the text (the console's line and Slack's
notification) of each kind. Pure: records in, text and blocks out.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    # The header says the severity and the text says the window: the context line adds what they do not.
    context = []
    if alert.kind == "deployment" or alert.window_start == alert.window_end:
        moment = f"at {alert.window_end.isoformat()}"  # a change happens at a time; it has no window
        if moment.removeprefix("at ") not in body:
            context.append(moment)
    elif alert.window_start.isoformat() not in body and _span(alert.window_start, alert.window_end) not in body:
        context.append(f"window {alert.window_start.isoformat()} → {alert.window_end.isoformat()}")
    if alert.count is not None and f"{alert.count:,}" not in body and str(alert.count) not in body:
        context.append(f"{alert.count:,} events")
    context.append(f"id `{alert.alert_id}`")
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:_HEADER_LIMIT], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    web = {label: url for label, url in alert.links.items() if url.startswith(("https://", "http://"))}
    other = {label: url for label, url in alert.links.items() if label not in web and url not in body}
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


METRIC_WORDS = {"latency_p95_ms": "p95 latency", "error_rate": "error rate", "fallback_rate": "fallback rate"}


def metric_value(metric: str | None, value: float | None) -> str:
    """A metric's value as a person reads it: ``45.1 ms``, ``7.2 %``, ``0.8123``."""
    if value is None:
        return "no value"
    if metric == "latency_p95_ms":
        return f"{value:.4g} ms"
    if metric in {"error_rate", "fallback_rate"}:
        return f"{value:.1%}"
    return f"{value:.4g}"


def _span(start: datetime, end: datetime) -> str:
    """A window as a person reads it: ``2026-05-01 10:00 → 10:05 UTC`` (the date once when it is one day)."""
    first = start.astimezone(UTC)
    last = end.astimezone(UTC)
    shown = "%H:%M:%S" if first.second or last.second else "%H:%M"
    tail = last.strftime(shown) if first.date() == last.date() else last.strftime(f"%Y-%m-%d {shown}")
    return f"{first.strftime(f'%Y-%m-%d {shown}')} → {tail} UTC"


def format_threshold_alert(alert: Alert) -> str:
    """A stream metric over its limit, in words, with what to do next."""
    metric = METRIC_WORDS.get(alert.metric or "", alert.metric or "a metric")
    value, limit = metric_value(alert.metric, alert.value), metric_value(alert.metric, alert.threshold)
    return (
        f":rotating_light: driftline: model *{alert.model}* version *{alert.model_version}*: {metric} was {value}, "
        f"over its limit of {limit}, in the window {_span(alert.window_start, alert.window_end)} "
        f"({alert.count:,} requests).\n"
        f"Next: if *{alert.model_version}* is new, `driftline rollout status {alert.model}` shows whether it is "
        f"rolling out and `driftline rollback {alert.model}` routes traffic back; otherwise look at what changed "
        f"around the service. A window back within the limit resolves this here."
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
    """What moved, in words; the test, its statistic and p-value are in the report, one click away."""
    measure = feature.effect_measure or ""
    if feature.effect is None:
        moved = f"changed ({feature.test} over its threshold {feature.threshold:.3g})"
    elif measure.startswith("wasserstein"):
        moved = f"its values moved by {feature.effect:.2g} standard deviations of the training data"
        if feature.effect_floor is not None:
            moved += f" (alerts from {feature.effect_floor:.2g})"
    elif measure.startswith("total_variation"):
        moved = f"{feature.effect:.0%} of its values moved to other categories or ranges"
        if feature.effect_floor is not None:
            moved += f" (alerts from {feature.effect_floor:.0%})"
    else:
        moved = f"changed by {feature.effect:.3g} ({measure or feature.test})"
    return f"• {feature.feature}: {moved}"


def _versions(report: DriftReport) -> str:
    versions = report.model_versions
    if not versions:
        return ""
    return f" version *{versions[0]}*" if len(versions) == 1 else f" versions *{', '.join(versions)}*"


def format_drift_alert(report: DriftReport, report_url: str) -> str:
    drifted = report.drifted
    joint = report.multivariate
    lines = [
        f":warning: driftline: model *{report.model}*{_versions(report)}: {len(drifted)} of {len(report.features)} "
        f"features no longer look like the training data, in the window {_span(report.window_start, report.window_end)}"
        f" ({report.current_rows:,} rows)"
    ]
    lines.extend(_feature_line(feature) for feature in drifted)
    if joint.drifted:
        lines.append(f"• the features together: their combinations changed ({joint.message})")
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
        lines.append(
            f"Next: retraining was requested; the retrain DAG trains a new version on this window and rolls it out "
            f"under guard, and says so here. To keep the current model, pause `driftline_retrain`; to go back after "
            f"a rollout: `driftline rollback {report.model}`."
        )
    else:
        why = f" ({report.retrain_not_requested})" if report.retrain_not_requested else ""
        lines.append(
            f"Next: no retrain was requested{why}. Open the report: if the change is expected, raise these "
            "features' floors (`drift.effect_floors`) or `drift.alert_share`; if not, find what changed upstream."
        )
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
