"""The drift check of one model: each window of a data interval on storage vs the training reference.

A run of the drift DAG names a data interval; :func:`windows_ending_in` says which of the model's windows
that interval checks, and each is read exactly (``start <= event_time < end``), so a scheduled run, a
backfill and a rerun of the same interval check the same rows. :func:`decide` is the pure part (a report
and the config in, what to store, announce and request out); :func:`run_drift_check` reads one window and
the reference, writes the report and acts on the decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from driftline.dags.tasks.performance import check_model_age, window_performance
from driftline.detectors import Profile, build_reference_profile, compare_profiles, window_profile
from driftline.detectors.html import INDEX_LIMIT, render_html, render_models_index, render_report_index
from driftline.detectors.quality import QualityIssue, at_least
from driftline.detectors.sources import read_table
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import Alert, DriftSummary, QuarantinedFile, RetrainRequest, Verdict
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage import models as model_store
from driftline.streams.alerts import (
    alert_blocks,
    deliver_with_retry,
    format_drift_alert,
    format_performance_alert,
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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def plain_utc(moment: datetime) -> datetime:
    """``moment`` as a standard-library datetime in UTC (Airflow hands tasks pendulum datetimes, whose arithmetic
    with ``timedelta`` differs)."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC)


def windows_ending_in(
    interval_start: datetime, interval_end: datetime, length: timedelta
) -> list[tuple[datetime, datetime]]:
    """The drift windows of ``length`` whose end falls in ``(interval_start, interval_end]``, oldest first. Pure.

    Windows are aligned to the Unix epoch in UTC (a 1 h window ends on the hour, a 1 d window at midnight
    UTC), so they do not depend on when a run happens: a run of an hourly DAG checks one 1 h window, four
    15 min windows, or (for a 1 d window) one window in the run whose interval ends at midnight and none in
    the others. A backfill over any range checks each window once.
    """
    if length <= timedelta(0):
        raise ValueError(f"a drift window must be positive, got {length}")
    interval_start, interval_end = plain_utc(interval_start), plain_utc(interval_end)
    if interval_end <= interval_start:
        raise ValueError(f"an interval must end after it starts: [{interval_start}, {interval_end})")
    steps = (interval_start - EPOCH) // length + 1  # the first window end strictly after interval_start
    windows = []
    end = EPOCH + steps * length
    while end <= interval_end:
        windows.append((end - length, end))
        end += length
    return windows


@dataclass(frozen=True)
class Window:
    rows: pd.DataFrame
    start: datetime
    end: datetime
    quarantined: list[QuarantinedFile]


class EmptyWindowError(LookupError):
    """The window holds no stored predictions of the model (after quarantining unreadable files)."""


def read_window(storage: Storage, config: MonitorConfig, start: datetime, end: datetime) -> Window:
    """The model's stored predictions with ``start <= event_time < end``: exactly that window, whenever it is read.

    Unreadable files are moved to quarantine (listed in ``quarantined``, and announced when the window is
    empty, since no check follows); the rest of the window is read. An event stamped in the future of the run
    that reads it cannot enter: ingest refuses it, and a window ends in the past of the run that checks it.
    """
    rows, quarantined = events.read_window_events(storage, "predictions", config.model, start, end)
    if rows.empty:
        announce_quarantined(storage, config, quarantined)  # the check stops here; the files must still be named
        skipped = f" ({len(quarantined)} unreadable file(s) were moved to quarantine)" if quarantined else ""
        raise EmptyWindowError(
            f"no stored predictions of model {config.model!r} in [{start.isoformat()}, {end.isoformat()}) under "
            f"{events.location(storage, 'predictions', config.model)}{skipped}"
        )
    return Window(rows, start, end, quarantined)


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
            links={"Quarantined file": storage.url(file.moved_to)},
            at=file.quarantined_at,
            channel=config.alerts.slack_channel,
            count=file.events_at_most,
        )
        for file in files
    ]


def run_drift_check(
    settings: Settings,
    storage: Storage,
    config: MonitorConfig,
    window_start: datetime,
    window_end: datetime,
    *,
    links: dict[str, str] | None = None,
) -> DriftSummary:
    """Check the window ``[window_start, window_end)``: build, store and (when drifted) announce the report;
    request a retrain past the threshold.

    Idempotent for its window: the report is named by model and window end and a rerun overwrites it; an alert
    already delivered for this model, window and kind is not sent again; a window requests a retrain once.
    An alert of a kind already sent for a window within ``alerts.cooldown`` is held back (the report says so).
    ``links`` (label → URL, e.g. the Airflow task's log) go into the alerts beside the report's.
    Unreadable files of the window are moved to quarantine, announced, and listed in the report.
    Raises :class:`EmptyWindowError` when the window holds no stored predictions.
    """
    reference = reference_profile(settings, storage, config)
    current = read_window(storage, config, window_start, window_end)
    announce_quarantined(storage, config, current.quarantined)
    window = current.rows
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
    now = datetime.now(UTC)
    performance, label_files = window_performance(storage, config, window, (window_start, window_end), now)
    report["performance"] = performance
    announce_quarantined(storage, config, label_files)
    report["model_age"] = check_model_age(storage, config, window_end)
    kinds, held_back = alert_kinds(storage, config, report, decision, window_end)
    report["alerts_held_back"] = held_back
    report_url = state.drift_report_url(storage, config.model, window_end)
    if decision.retrain:
        outcome = request_retrain(storage, config, decision, report_url, (window_start, window_end))
        report["retrain_requested"] = outcome == "requested"
        if outcome != "requested":
            report["retrain_not_requested"] = outcome
    state.write_drift_report(storage, config.model, window_end, report, render_html(report))
    html_url = report_url.removesuffix(".json") + ".html"
    write_report_indexes(storage, config.model)
    for kind in kinds:
        if kind in held_back:
            log.info("%s alert for %s held back: %s", kind, config.model, held_back[kind])
            continue
        if kind == "drift":
            text = format_drift_alert(report, html_url)
        elif kind == "quality":
            text = format_quality_alert(report, html_url, decision.announced_findings)
        else:
            text = format_performance_alert(report, html_url)
        critical = kind == "quality" and decision.verdict == "quality_incident"
        state.queue_alert(
            storage,
            Alert(
                alert_id=state.window_alert_id(kind, config.model, window_end),
                kind=kind,
                model=config.model,
                window_start=window_start,
                window_end=window_end,
                count=len(window),
                channel=config.alerts.slack_channel,
                text=text,
                severity="critical" if critical else "warning",
                links={"Report": html_url, **(links or {})},
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
        retrain_requested=bool(report["retrain_requested"]),
        report_url=report_url,
        alerts_delivered=deliver_pending_alerts(settings, storage),
        verdict=decision.verdict,
        quality_findings={severity: severities.count(severity) for severity in sorted(set(severities))},
        quarantined_files=[file.path for file in current.quarantined],
        alerts_held_back=sorted(held_back),
    )


def write_report_indexes(storage: Storage, model: str) -> str:
    """Regenerate ``model``'s report index (its newest ``INDEX_LIMIT`` windows) and the index of all models;
    returns the model index's URL.

    Rebuilt from the reports themselves, so a rerun or a backfill never leaves it stale for long: two checks of
    one model finishing at the same moment can each write an index without the other's newest report, until the
    next check of that model writes it again."""
    paths = state.drift_reports(storage, model)
    newest = [state.read_drift_report(storage, path) for path in reversed(paths[-INDEX_LIMIT:])]
    url = state.write_report_index(storage, model, render_report_index(model, newest, older=len(paths) - len(newest)))
    latest: dict[str, dict[str, Any] | None] = {}
    for name in {*state.reported_models(storage), model}:
        reports = state.drift_reports(storage, name)
        latest[name] = (
            newest[0] if name == model else (state.read_drift_report(storage, reports[-1]) if reports else None)
        )
    state.write_report_index(storage, None, render_models_index(latest))
    return url


AlertKind = Literal["drift", "quality", "performance"]


def alert_kinds(
    storage: Storage, config: MonitorConfig, report: dict[str, Any], decision: DriftDecision, window_end: datetime
) -> tuple[list[AlertKind], dict[str, str]]:
    """The kinds of alert the window asks for, and those of them the cooldown holds back (kind → why)."""
    kinds: list[AlertKind] = []
    if decision.alert:
        kinds.append("drift")
    if decision.quality_alert:
        kinds.append("quality")
    if report["performance"]["realized"]["status"] == "degraded":
        kinds.append("performance")
    held_back: dict[str, str] = {}
    for kind in kinds:
        earlier = state.alert_within(storage, kind, config.model, window_end, config.alerts.cooldown)
        if earlier is not None:
            held_back[kind] = f"alert {earlier} is within alerts.cooldown ({config.alerts.cooldown}) of this window"
    return kinds, held_back


def request_retrain(
    storage: Storage,
    config: MonitorConfig,
    decision: DriftDecision,
    report_url: str,
    window: tuple[datetime, datetime],
) -> str:
    """Request a retrain for this drifted window, once, and only if it can help: not when the serving version
    was trained on data ending after the window (a backfill over the past must not retrain on older data), and
    not over a waiting request for a later window. Returns ``requested`` or why not."""
    serving = model_store.serving_version(storage, config.model)
    trained_until = serving.training_window_end if serving is not None else None
    if serving is not None and trained_until is not None and window[1] <= trained_until:
        return f"serving_version_newer: {serving.version} was trained on data up to {trained_until.isoformat()}"
    return state.request_retrain_once(
        storage,
        RetrainRequest(
            model=config.model,
            reason=f"{len(decision.drifted_features)} drifted features: {', '.join(decision.drifted_features)}",
            report=report_url,
            window_start=window[0],
            window_end=window[1],
        ),
    )


@dataclass(frozen=True)
class IntervalCheck:
    """The drift checks of one model for one data interval: a summary per window with data, and a line per
    window without any."""

    model: str
    interval_start: datetime
    interval_end: datetime
    summaries: list[DriftSummary]
    empty_windows: list[str]

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data_interval_start": self.interval_start.isoformat(),
            "data_interval_end": self.interval_end.isoformat(),
            "windows": [summary.to_jsonable() for summary in self.summaries],
            "empty_windows": self.empty_windows,
        }


def check_interval(
    settings: Settings,
    storage: Storage,
    config: MonitorConfig,
    interval_start: datetime,
    interval_end: datetime,
    *,
    links: dict[str, str] | None = None,
) -> IntervalCheck:
    """Check each of the model's ``drift.window`` windows that ends in the data interval ``(start, end]``
    (see :func:`windows_ending_in`); a window without stored predictions is listed, not checked."""
    summaries, empty = [], []
    for window_start, window_end in windows_ending_in(interval_start, interval_end, config.drift.window):
        try:
            summaries.append(run_drift_check(settings, storage, config, window_start, window_end, links=links))
        except EmptyWindowError as exc:
            log.warning("%s", exc)
            empty.append(str(exc))
    return IntervalCheck(config.model, interval_start, interval_end, summaries, empty)


def ingest_caught_up(
    settings: Settings, storage: Storage, interval_end: datetime, now: datetime | None = None
) -> tuple[bool, str]:
    """Whether a drift check of an interval ending at ``interval_end`` can start, and why.

    It can once ingest of the predictions topic has read everything the broker held at ``interval_end`` plus
    the allowed lateness (events arrive late by up to that), or, whatever ingest did, once
    ``drift_ingest_wait_seconds`` have passed since then: a stopped ingest delays checks, it does not stop them
    (the check then reads what is stored, and a rerun of the interval later picks up the rest).
    """
    now = now or datetime.now(UTC)
    needed = interval_end + timedelta(seconds=settings.allowed_lateness_seconds)
    progress = state.read_ingest_progress(storage, settings.topics.predictions)
    reached = progress.caught_up_at if progress else None
    if reached is not None and reached >= needed:
        return True, f"ingest of {settings.topics.predictions} caught up at {reached.isoformat()}"
    seen = f"caught up at {reached.isoformat()}" if reached else "has not caught up yet"
    deadline = needed + timedelta(seconds=settings.drift_ingest_wait_seconds)
    if now >= deadline:
        return True, (
            f"ingest of {settings.topics.predictions} {seen}, short of {needed.isoformat()}; waited until "
            f"{deadline.isoformat()} (DRIFTLINE_DRIFT_INGEST_WAIT_SECONDS), checking what is stored. "
            "Rerun this interval after ingest has caught up to check the rest."
        )
    return False, f"waiting for ingest of {settings.topics.predictions} to pass {needed.isoformat()}: it {seen}"


def deliver_pending_alerts(settings: Settings, storage: Storage, max_attempts: int = 3) -> list[str]:
    """Send every alert in the outbox; one still failing stays pending and the error propagates
    (the Airflow task retries, and the next run sends it too).

    Tasks of concurrent runs (a backfill) deliver the same outbox: each alert is claimed before it is sent, so
    exactly one of them sends it, and one already sent by another is skipped."""
    notifier = notifier_from_settings(settings)
    delivered = []
    for alert in state.pending_alerts(storage):
        if not state.claim_alert(storage, alert.alert_id):
            continue  # another process is sending it
        try:
            if state.alert_sent(storage, alert.alert_id):  # sent by another process since our listing, or sent
                state.mark_alert_sent(storage, alert)  # before a crash left the pending copy: drop that copy
                continue
            text = alert.text or alert.alert_id
            deliver_with_retry(notifier, text, alert.channel, blocks=alert_blocks(alert), max_attempts=max_attempts)
            state.mark_alert_sent(storage, alert)
            delivered.append(alert.alert_id)
        finally:
            state.release_alert_claim(storage, alert.alert_id)
    return delivered
