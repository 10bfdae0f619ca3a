"""The drift check of one model: each window of a data interval on storage vs the training reference.

A run of the drift DAG names a data interval; :func:`windows_ending_in` says which of the model's windows
that interval checks, and each is read exactly (``start <= event_time < end``), so a scheduled run, a
backfill and a rerun of the same interval check the same rows. :func:`run_drift_check` is the IO of one window:
it reads the reference, the window (:mod:`.window_scan`), the previous windows and the labels, has the pure part
(:mod:`.drift_report`) build the report and decide, then writes the report, requests the retrain and queues the
alerts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from driftline.dags.tasks.drift_report import (
    DriftDecision,
    alert_kinds,
    drift_summary,
    production_section,
    segment_drift,
    window_alerts,
    window_report,
)
from driftline.dags.tasks.performance import check_model_age, window_performance
from driftline.dags.tasks.window_scan import scan_window, segment_references
from driftline.detectors import Profile, build_reference_profile
from driftline.detectors.html import INDEX_LIMIT, render_html, render_models_index, render_report_index
from driftline.detectors.sources import read_table
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import DriftSummary, QuarantinedFile, RetrainRequest
from driftline.schemas.reports import DriftReport, Performance, ProductionDrift
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, layout, state
from driftline.schemas.storage import models as model_store
from driftline.streams.alerts import outbox
from driftline.streams.alerts.formatting import format_quarantine_alert
from driftline.streams.alerts.ids import WindowKind, window_alert_id

log = logging.getLogger(__name__)


def reference_profile(settings: Settings, storage: Storage, config: MonitorConfig) -> tuple[Profile, str]:
    """The stored profile of the training data and its key (see :func:`.models.reference_key`); built (once)
    when missing or when the reference moved."""
    # What shaped the profile besides the data: a config naming other features or exclusions gets a new profile.
    shape = json.dumps([config.features, sorted(config.exclude), config.label_column], sort_keys=True)
    source = f"{config.reference} {shape}"
    stored = model_store.read_reference_profile(storage, config.model, source)
    if stored is None:
        table = read_table(config.reference, settings.storage_options)
        stored = build_reference_profile(
            table, config.features, exclude=config.exclude, label=config.label_column
        ).to_bytes()
        model_store.write_reference_profile(storage, config.model, source, stored)
    return Profile.from_bytes(stored), model_store.reference_key(stored)


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


class EmptyWindowError(LookupError):
    """The window holds no stored predictions of the model (after quarantining unreadable files)."""


def production_reference(
    storage: Storage, config: MonitorConfig, reference: Profile, key: str, window_start: datetime
) -> tuple[Profile | None, list[str]]:
    """The rolling production reference of the window starting at ``window_start``: the previous
    ``drift.production_windows`` windows merged (those with data), and their ends. Each window's profile is
    stored when it is checked; a previous window not checked yet is profiled now (and stored)."""
    length, merged, ends = config.drift.window, None, []
    for back in range(config.drift.production_windows):
        end = window_start - back * length
        stored = model_store.read_window_profile(storage, config.model, key, end)
        if stored is None:
            scan = scan_window(storage, config, reference, end - length, end, performance=False)
            announce_quarantined(storage, config, scan.quarantined)
            if scan.rows == 0:
                continue
            stored = scan.profile.to_bytes()
            model_store.write_window_profile(storage, config.model, key, end, stored)
        profile = Profile.from_bytes(stored)
        merged = profile if merged is None else merged.merge(profile, seed=back)
        ends.append(end.isoformat())
    return merged, ends


def production_drift(
    storage: Storage, config: MonitorConfig, reference: Profile, key: str, *, current: Profile, window_start: datetime
) -> ProductionDrift:
    """The report's ``production_drift`` section: the window against the rolling production reference (see
    :func:`production_reference`); none is read when the section is off."""
    if config.drift.production_windows == 0:
        return production_section(config, None, [], current)
    previous, ends = production_reference(storage, config, reference, key, window_start)
    return production_section(config, previous, ends, current)


def announce_quarantined(storage: Storage, config: MonitorConfig, files: list[QuarantinedFile]) -> list[str]:
    """Queue one alert per file moved to quarantine (named by its path and when it was moved, so each move is
    announced once)."""
    return [
        outbox.queue_occurrence_alert(
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
    reference, key = reference_profile(settings, storage, config)
    segment_refs = segment_references(settings, storage, config, reference, key)
    scan = scan_window(storage, config, reference, window_start, window_end, segments=segment_refs)
    announce_quarantined(storage, config, scan.quarantined)
    if scan.rows == 0:
        skipped = f" ({len(scan.quarantined)} unreadable file(s) were moved to quarantine)" if scan.quarantined else ""
        raise EmptyWindowError(
            f"no stored predictions of model {config.model!r} in [{window_start.isoformat()}, "
            f"{window_end.isoformat()}) under {events.location(storage, 'predictions', config.model)}{skipped}"
        )
    model_store.write_window_profile(storage, config.model, key, window_end, scan.profile.to_bytes())
    production = production_drift(storage, config, reference, key, current=scan.profile, window_start=window_start)
    now = datetime.now(UTC)
    performance, label_files = window_performance(
        storage, config, scan.predictions, scan.confidence, (window_start, window_end), now=now
    )
    announce_quarantined(storage, config, label_files)
    report, decision = window_report(
        config,
        (window_start, window_end),
        reference,
        scan,
        production=production,
        segments=segment_drift(config, segment_refs, scan.segments),
        performance=Performance.model_validate(performance),
        model_age=check_model_age(storage, config, window_end),
        generated_at=now,
    )
    report = report.model_copy(update={"alerts_held_back": held_back_alerts(storage, config, report, decision)})
    report_url = state.drift_report_url(storage, config.model, window_end)
    if decision.retrain:
        outcome = request_retrain(storage, config, decision, report_url, (window_start, window_end))
        requested = outcome == "requested"
        report = report.model_copy(
            update={"retrain_requested": requested, "retrain_not_requested": None if requested else outcome}
        )
    state.write_drift_report(storage, report, render_html(report.to_jsonable()))
    html_path = layout.drift_report(config.model, window_end).removesuffix(".json") + ".html"
    html_url = storage.link(html_path, settings.reports_base_url)  # what a person opens from the alert
    for kind, why in report.alerts_held_back.items():
        log.info("%s alert for %s held back: %s", kind, config.model, why)
    for alert in window_alerts(config, report, decision, html_url, links):
        outbox.queue_alert(storage, alert)
    try:
        delivered = outbox.deliver_pending_alerts(settings, storage)
    finally:  # after delivery, failed or not: the index says which alerts were sent
        write_report_indexes(storage, config.model)
    return drift_summary(report, decision, report_url, delivered)


def write_report_indexes(storage: Storage, model: str) -> str:
    """Regenerate ``model``'s report index (its newest ``INDEX_LIMIT`` windows, each with the alerts the outbox
    delivered for it) and the index of all models; returns the model index's URL.

    Rebuilt from the reports themselves, so a rerun or a backfill never leaves it stale for long: two checks of
    one model finishing at the same moment can each write an index without the other's newest report, until the
    next check of that model writes it again."""
    paths = state.drift_reports(storage, model)
    stored = [state.read_drift_report(storage, path) for path in reversed(paths[-INDEX_LIMIT:])]
    newest = [report.to_jsonable() for report in stored]
    sent_ids = set(state.sent_alert_ids(storage))
    sent = {
        report.window_end.isoformat(): [
            kind for kind in get_args(WindowKind) if window_alert_id(kind, model, report.window_end) in sent_ids
        ]
        for report in stored
    }
    page = render_report_index(model, newest, older=len(paths) - len(newest), sent=sent)
    url = state.write_report_index(storage, model, page)
    latest: dict[str, dict[str, Any] | None] = {}
    for name in {*state.reported_models(storage), model}:
        reports = state.drift_reports(storage, name)
        latest[name] = (
            newest[0]
            if name == model
            else (state.read_drift_report(storage, reports[-1]).to_jsonable() if reports else None)
        )
    state.write_report_index(storage, None, render_models_index(latest))
    return url


def held_back_alerts(
    storage: Storage, config: MonitorConfig, report: DriftReport, decision: DriftDecision
) -> dict[str, str]:
    """The kinds of alert the window asks for that the cooldown holds back (kind → why)."""
    held_back: dict[str, str] = {}
    for kind in alert_kinds(report, decision):
        earlier = outbox.alert_within(storage, kind, config.model, report.window_end, config.alerts.cooldown)
        if earlier is not None:
            held_back[kind] = f"alert {earlier} is within alerts.cooldown ({config.alerts.cooldown}) of this window"
    return held_back


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
