"""The drift check of one model: latest window on storage vs the training reference.

:func:`decide` is the pure part (a report and the config in, what to store,
announce and request out); :func:`run_drift_check` reads the window and the
reference, writes the report and acts on the decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from driftline.detectors import Profile, build_reference_profile, compare_profiles, window_profile
from driftline.detectors.html import render_html
from driftline.detectors.quality import QualityIssue, at_least
from driftline.detectors.sources import read_table
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import Alert, DriftSummary, QuarantinedFile, RetrainRequest, Verdict
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage import models as model_store
from driftline.streams.alerts import (
    deliver_with_retry,
    format_drift_alert,
    format_quality_alert,
    format_quarantine_alert,
    notifier_from_settings,
)

log = logging.getLogger(__name__)


def reference_profile(settings: Settings, storage: Storage, config: MonitorConfig) -> Profile:
    """The stored profile of the training data; built (once) when missing or when the reference moved."""
    stored = model_store.read_reference_profile(storage, config.model, config.reference)
    if stored is not None:
        return Profile.from_bytes(stored)
    table = read_table(config.reference, settings.storage_options)
    profile = build_reference_profile(table, config.features, exclude=(config.label_column,))
    model_store.write_reference_profile(storage, config.model, config.reference, profile.to_bytes())
    return profile


@dataclass(frozen=True)
class Window:
    rows: pd.DataFrame
    start: datetime
    end: datetime
    quarantined: list[QuarantinedFile]


def current_window(storage: Storage, config: MonitorConfig, now: datetime | None = None) -> Window:
    """The rows of the latest ``drift.window``, ending at the newest stored event that is not after ``now``.

    Ingest refuses events stamped in the future, and this bound holds also for files stored before it did:
    one event stamped 2099 cannot move the window the check reads. Unreadable files are moved to quarantine
    (and listed in ``quarantined``); the rest of the window is read.
    """
    now = now or datetime.now(UTC)
    recent, quarantined = events.read_recent_events(
        storage, "predictions", config.model, config.drift.window, until=now
    )
    if recent.empty:
        announce_quarantined(storage, config, quarantined)  # the check stops here; the files must still be named
        skipped = f" ({len(quarantined)} unreadable file(s) were moved to quarantine)" if quarantined else ""
        raise LookupError(
            f"no stored predictions for model {config.model!r} under "
            f"{events.location(storage, 'predictions', config.model)}{skipped}; has the ingest DAG run?"
        )
    window_end = recent["event_time"].max()
    window_start = window_end - config.drift.window
    window = recent[recent["event_time"] > window_start].reset_index(drop=True)
    return Window(window, window_start.to_pydatetime(), window_end.to_pydatetime(), quarantined)


def window_table(features: pd.DataFrame, reference: Profile) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The window's features as an Arrow table, each column read as the reference's type says.

    Files of one window may disagree on a column's type (a producer sent floats, then strings): pandas joins
    them into a mixed column that Arrow cannot read. A column the reference profiles as numeric is converted
    value by value; values that are not numbers count as missing and are reported as a ``type_change``
    quality finding with their count. Any other mixed column is read as text. Never a crash.
    """
    findings: list[dict[str, Any]] = []
    columns: dict[str, pd.Series] = {}
    for name in features.columns:
        values = features[name]
        if values.dtype == object:
            present = values.notna()
            if reference.feature_types.get(name) == "numeric":
                converted = pd.to_numeric(values.map(_number_or_none), errors="coerce")
                unreadable_values = values[present & converted.isna()]
                if len(unreadable_values):
                    unreadable, total = len(unreadable_values), int(present.sum())
                    examples = ", ".join(sorted({repr(v) for v in unreadable_values.head(50)})[:3])
                    issue = QualityIssue(
                        severity="critical" if unreadable == total else "warning",
                        check="type_change",
                        feature=name,
                        value=unreadable / total,
                        threshold=None,
                        message=(
                            f"{unreadable} of {total} values of feature {name!r} in this window are not numbers, as "
                            f"the reference is (e.g. {examples}); they count as missing. A producer changed the "
                            "column's type: send numbers, or profile the reference with the new type."
                        ),
                    )
                    findings.append(issue.to_dict())
                values = converted
            else:
                values = values.where(~present, values.astype(str))
        columns[name] = values
    return pa.Table.from_pandas(pd.DataFrame(columns, index=features.index), preserve_index=False), findings


def _number_or_none(value: Any) -> Any:
    # Booleans are not numbers here; numbers and numeric text are.
    return None if isinstance(value, bool) else value


@dataclass(frozen=True)
class DriftDecision:
    """What a report asks for: a drift alert, a quality alert, a retrain request, or none of them."""

    alert: bool
    retrain: bool
    drifted_features: list[str]
    verdict: Verdict = "no_drift"
    quality_alert: bool = False
    announced_findings: list[dict[str, Any]] = field(default_factory=list)  # quality findings the alert lists


def decide(report: dict[str, Any], config: MonitorConfig) -> DriftDecision:
    """Alert when the share of drifted features exceeds ``drift.alert_share``; request a retrain when it reaches
    ``drift.retrain_share`` and the model has a retrain entry point. Pure.

    Quality findings of ``alerts.quality_severity`` or worse (and any unreadable file moved aside) are announced
    in a quality alert. A critical finding (a feature gone for the whole window) makes the verdict
    ``quality_incident`` whatever the drift tests say; it requests no retrain, since retraining on a window
    without the feature would learn the outage.
    """
    drifted = list(report["drifted_features"])
    share = float(report["share_drifted"])
    quality = list(report.get("quality", []))
    alert = bool(drifted) and share > config.drift.alert_share
    incident = any(q.get("severity") == "critical" for q in quality)
    retrain = (
        bool(drifted)
        and not incident
        and share >= config.drift.retrain_share
        and config.retrain.entry_point is not None
    )
    floor = config.alerts.quality_severity
    announced = [q for q in quality if at_least(q.get("severity", "warning"), floor)]
    quality_alert = bool(announced) or (bool(report.get("skipped_files")) and floor != "off")
    verdict: Verdict = "quality_incident" if incident else ("drift" if drifted else "no_drift")
    return DriftDecision(alert, retrain, drifted, verdict, quality_alert, announced)


def drift_alert_id(model: str, window_end: datetime, kind: str = "drift") -> str:
    return f"{kind}-{model}-{window_end.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def announce_quarantined(storage: Storage, config: MonitorConfig, files: list[QuarantinedFile]) -> list[str]:
    """Queue one alert per file moved to quarantine (named by its path and when it was moved, so each move is
    announced once)."""
    return [
        state.queue_occurrence_alert(
            storage,
            kind="quarantine",
            model=config.model,
            key=f"{file.path}@{file.quarantined_at.isoformat()}",
            text=format_quarantine_alert(config.model, file, storage.url(file.moved_to)),
            at=file.quarantined_at,
            channel=config.alerts.slack_channel,
            count=file.events_at_most,
        )
        for file in files
    ]


def run_drift_check(settings: Settings, storage: Storage, config: MonitorConfig) -> DriftSummary:
    """Build, store and (when drifted) announce the report; request a retrain past the threshold.

    Idempotent for its window: the report, the alert and the retrain request are
    named by model and window end, and an alert already delivered is not sent again.
    Unreadable files of the window are moved to quarantine, announced, and listed in the report.
    """
    reference = reference_profile(settings, storage, config)
    current = current_window(storage, config)
    announce_quarantined(storage, config, current.quarantined)
    window, window_start, window_end = current.rows, current.start, current.end
    current_table, type_findings = window_table(events.feature_columns(window), reference)
    report = compare_profiles(
        reference,
        window_profile(reference, iter(current_table.to_batches())),
        alpha=config.drift.alpha,
        correction=config.drift.correction,
        min_rows=config.drift.min_rows,
        tests=config.drift.tests,
        thresholds=config.drift.thresholds,
        current_columns=current_table.column_names,
        metadata={
            "model": config.model,
            "model_versions": sorted(window["model_version"].unique().tolist()),
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "current_rows": len(window),
            "reference_rows": reference.rows,
            "generated_at": datetime.now(UTC).isoformat(),
        },
    ).to_dict()
    report["quality"] = [*report.get("quality", []), *type_findings]
    report["skipped_files"] = [file.to_jsonable() for file in current.quarantined]
    report["skipped_events_at_most"] = sum(file.events_at_most or 0 for file in current.quarantined)
    decision = decide(report, config)
    report["alert"], report["retrain_requested"] = decision.alert, decision.retrain
    report["verdict"], report["quality_alert"] = decision.verdict, decision.quality_alert
    report_url = state.write_drift_report(storage, config.model, window_end, report, render_html(report))
    if decision.retrain:
        state.write_retrain_request(
            storage,
            RetrainRequest(
                model=config.model,
                reason=f"{len(decision.drifted_features)} drifted features: {', '.join(decision.drifted_features)}",
                report=report_url,
            ),
        )
    messages: list[tuple[Literal["drift", "quality"], str]] = []
    if decision.alert:
        messages.append(("drift", format_drift_alert(report, report_url)))
    if decision.quality_alert:
        messages.append(("quality", format_quality_alert(report, report_url, decision.announced_findings)))
    for kind, text in messages:
        state.queue_alert(
            storage,
            Alert(
                alert_id=drift_alert_id(config.model, window_end, kind),
                kind=kind,
                model=config.model,
                window_start=window_start,
                window_end=window_end,
                count=len(window),
                channel=config.alerts.slack_channel,
                text=text,
            ),
        )
    severities = [q.get("severity", "warning") for q in report["quality"]]
    return DriftSummary(
        model=config.model,
        window_start=window_start,
        window_end=window_end,
        current_rows=len(window),
        drifted_features=decision.drifted_features,
        share_drifted=float(report["share_drifted"]),
        alert=decision.alert,
        retrain_requested=decision.retrain,
        report_url=report_url,
        alerts_delivered=deliver_pending_alerts(settings, storage),
        verdict=decision.verdict,
        quality_findings={severity: severities.count(severity) for severity in sorted(set(severities))},
        quarantined_files=[file.path for file in current.quarantined],
    )


def deliver_pending_alerts(settings: Settings, storage: Storage, max_attempts: int = 3) -> list[str]:
    """Send every alert in the outbox; one still failing stays pending and the error propagates
    (the Airflow task retries, and the next run sends it too)."""
    notifier = notifier_from_settings(settings)
    delivered = []
    for alert in state.pending_alerts(storage):
        deliver_with_retry(notifier, alert.text or alert.alert_id, alert.channel, max_attempts=max_attempts)
        state.mark_alert_sent(storage, alert)
        delivered.append(alert.alert_id)
    return delivered
