"""The drift check of one model: each window of a data interval on storage vs the training reference.

A run of the drift DAG names a data interval; :func:`windows_ending_in` says which of the model's windows
that interval checks, and each is read exactly (``start <= event_time < end``), so a scheduled run, a
backfill and a rerun of the same interval check the same rows. :func:`decide` is the pure part (a report
and the config in, what to store, announce and request out); :func:`run_drift_check` reads one window and
the reference, writes the report and acts on the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from driftline.dags.tasks.performance import ConfidenceSums, PredictionSample, check_model_age, window_performance
from driftline.detectors import Profile, build_reference_profile, compare_profiles
from driftline.detectors.html import INDEX_LIMIT, render_html, render_models_index, render_report_index
from driftline.detectors.profile import OTHER, CategoricalSummary, ProfileBuilder
from driftline.detectors.quality import QualityIssue, at_least
from driftline.detectors.sources import read_table
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import Alert, DriftSummary, QuarantinedFile, RetrainRequest, Verdict
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage import models as model_store
from driftline.streams.alerts import outbox
from driftline.streams.alerts.formatting import (
    format_drift_alert,
    format_insufficient_alert,
    format_performance_alert,
    format_production_drift_alert,
    format_quality_alert,
    format_quarantine_alert,
)
from driftline.streams.alerts.ids import window_alert_id

log = logging.getLogger(__name__)


def reference_profile(settings: Settings, storage: Storage, config: MonitorConfig) -> tuple[Profile, str]:
    """The stored profile of the training data and its key (see :func:`.models.reference_key`); built (once)
    when missing or when the reference moved."""
    stored = model_store.read_reference_profile(storage, config.model, config.reference)
    if stored is None:
        table = read_table(config.reference, settings.storage_options)
        stored = build_reference_profile(table, config.features, exclude=(config.label_column,)).to_bytes()
        model_store.write_reference_profile(storage, config.model, config.reference, stored)
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


# The columns of a prediction file a drift check reads besides the features.
PREDICTION_COLUMNS = frozenset({"model_version", "request_id", "prediction"})


def _check_columns(name: str) -> bool:
    return name.startswith(events.FEATURE_PREFIX) or name in PREDICTION_COLUMNS


@dataclass
class TypeTally:
    """Per numeric feature: values present in the window, and those that were not numbers (with examples)."""

    present: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    examples: dict[str, set[str]] = field(default_factory=dict)

    def to_numbers(self, name: str, column: pa.Array) -> pa.Array:
        values = pd.Series([_number_or_none(v) for v in column.to_pylist()], dtype=object)
        converted = pd.to_numeric(values, errors="coerce")
        bad = values[values.notna() & converted.isna()]
        if len(bad):
            self.unreadable[name] = self.unreadable.get(name, 0) + len(bad)
            seen = self.examples.setdefault(name, set())
            if len(seen) < 50:
                seen.update(repr(v) for v in bad.head(50 - len(seen)))
        return pa.array(converted.to_numpy(dtype=np.float64), from_pandas=True)

    def findings(self) -> list[dict[str, Any]]:
        findings = []
        for name, unreadable in sorted(self.unreadable.items()):
            total = self.present[name]
            examples = ", ".join(sorted(self.examples[name])[:3])
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
        return findings


def window_features(batch: pa.RecordBatch, reference: Profile, tally: TypeTally, seen: set[str]) -> pa.RecordBatch:
    """The batch's features named as the serving node named them, each read as the reference's type says.

    Files of one window may disagree on a column's type (a producer sent floats, then strings). A feature the
    reference profiles as numeric that arrives as anything but numbers is converted value by value; values
    that are not numbers count as missing and are tallied for a ``type_change`` finding. A reference feature a
    file lacks is all missing in its rows. ``seen`` collects the feature names the window's files hold.
    """
    rows = batch.num_rows
    arrays: dict[str, pa.Array] = {}
    for position, column_field in enumerate(batch.schema):
        if not column_field.name.startswith(events.FEATURE_PREFIX):
            continue
        name = column_field.name.removeprefix(events.FEATURE_PREFIX)
        seen.add(name)
        column = batch.column(position)
        if reference.feature_types.get(name) == "numeric":
            tally.present[name] = tally.present.get(name, 0) + rows - column.null_count
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
                column = (
                    column.cast(pa.float64()) if pa.types.is_boolean(column.type) else tally.to_numbers(name, column)
                )
        arrays[name] = column
    for name, kind in reference.feature_types.items():
        if name not in arrays:
            arrays[name] = pa.nulls(rows, pa.float64() if kind == "numeric" else pa.string())
    return pa.RecordBatch.from_arrays(list(arrays.values()), names=list(arrays))


def as_text(array: pa.Array) -> pa.Array:
    """Values as the text a categorical profile counts them by (``str`` of each value)."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    return pa.array([None if v is None else str(v) for v in array.to_pylist()], type=pa.string())


Segment = tuple[str, str]  # (segment feature, value)


@dataclass
class WindowScan:
    """What one pass over a window's stored predictions gives: its profile on the reference's bins, a profile
    per segment, the sampled predictions and score sums for the performance section, and counts."""

    profile: Profile
    rows: int
    versions: list[str]
    columns: list[str]
    type_findings: list[dict[str, Any]]
    predictions: PredictionSample
    confidence: ConfidenceSums
    segments: dict[Segment, Profile]
    quarantined: list[QuarantinedFile]


def scan_window(
    storage: Storage,
    config: MonitorConfig,
    reference: Profile,
    start: datetime,
    end: datetime,
    *,
    segments: dict[Segment, Profile] | None = None,
    performance: bool = True,
) -> WindowScan:
    """One streaming pass over the window ``start <= event_time < end``: record batches of the needed columns
    (:func:`.events.window_batches`), each folded into the window profile, the profile of each segment
    (``segments`` maps a segment to its reference profile) and, unless ``performance`` is off, the performance
    sample. Memory is one batch and the summaries, whatever the window's size. Unreadable files are quarantined
    (listed in ``quarantined``)."""
    segments = segments or {}
    quarantined: list[QuarantinedFile] = []

    def consume(batches: Iterator[pa.RecordBatch]) -> WindowScan:
        tally, versions, columns = TypeTally(), set[str](), set[str]()
        predictions, confidence = PredictionSample(), ConfidenceSums(threshold=config.performance.threshold)
        with ExitStack() as stack:
            window = stack.enter_context(ProfileBuilder.for_window(reference))
            by_segment = {key: stack.enter_context(ProfileBuilder.for_window(p)) for key, p in segments.items()}
            for batch in batches:
                names = batch.schema.names
                versions.update(v for v in pc.unique(batch.column(names.index("model_version"))).to_pylist() if v)
                features = window_features(batch, reference, tally, columns)
                window.add(features)
                texts: dict[str, pa.Array] = {}
                for (column, value), builder in by_segment.items():
                    if column not in texts:
                        texts[column] = as_text(features.column(features.schema.get_field_index(column)))
                    builder.add(features.filter(pc.equal(texts[column], value)))
                if performance and "request_id" in names and "prediction" in names:
                    scores = batch.column(names.index("prediction")).cast(pa.float64()).to_numpy(zero_copy_only=False)
                    ids = batch.column(names.index("request_id")).to_numpy(zero_copy_only=False)
                    predictions.add(ids, scores)
                    confidence.add(scores)
            return WindowScan(
                profile=window.finish(),
                rows=window.rows,
                versions=sorted(versions),
                columns=sorted(columns),
                type_findings=tally.findings(),
                predictions=predictions,
                confidence=confidence,
                segments={key: builder.finish() for key, builder in by_segment.items()},
                quarantined=quarantined,
            )

    return events.scan_window(
        consume, storage, "predictions", config.model, (start, end), columns=_check_columns, quarantined=quarantined
    )


def segment_references(
    settings: Settings, storage: Storage, config: MonitorConfig, reference: Profile, key: str
) -> dict[Segment, Profile]:
    """The reference profile of each segment: per ``drift.segments`` feature, its ``drift.segment_limit``
    commonest values in the training data that have at least ``drift.min_rows`` rows there. Built once from the
    training data (the rows of that value, the segment feature left out) and stored under the reference's key."""
    chosen: list[Segment] = []
    for column in config.drift.segments:
        kind = reference.feature_types.get(column)
        if kind is None:
            raise ValueError(
                f"drift.segments names {column!r}, which the reference {config.reference} does not have as a feature; "
                f"its features: {', '.join(sorted(reference.feature_types))}"
            )
        summary = reference.summaries[column]
        if not isinstance(summary, CategoricalSummary):
            raise ValueError(
                f"drift.segments names {column!r}, a numeric feature: segments are the values of a categorical "
                "feature (a country, a plan, a device); bucket the number into categories first"
            )
        ranked = sorted(summary.counts.items(), key=lambda item: (-item[1], item[0]))
        values = [value for value, count in ranked if value != OTHER and count >= config.drift.min_rows]
        chosen += [(column, value) for value in values[: config.drift.segment_limit]]
    profiles: dict[Segment, Profile] = {}
    table: pa.Table | None = None
    for column, value in chosen:
        stored = model_store.read_segment_profile(storage, config.model, key, (column, value))
        if stored is None:
            if table is None:
                table = read_table(config.reference, settings.storage_options)
            rows = table.filter(pc.equal(as_text(table.column(column).combine_chunks()), value))
            types = {
                name: kind
                for name, kind in reference.feature_types.items()
                if name != column and (kind == "categorical" or _has_numbers(rows.column(name)))
            }
            stored = build_reference_profile(rows, types).to_bytes()
            model_store.write_segment_profile(storage, config.model, key, (column, value), stored)
        profiles[(column, value)] = Profile.from_bytes(stored)
    return profiles


def _has_numbers(column: pa.ChunkedArray) -> bool:
    """Whether a training column holds at least one finite number (a segment may have none: a feature never set
    for one plan); a segment's profile leaves such a feature out."""
    values = pd.to_numeric(pd.Series(column.drop_null().to_pylist(), dtype=object), errors="coerce")
    return bool(np.isfinite(values.to_numpy(dtype=np.float64)).any())


def _feature_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    keep = (
        "feature",
        "test",
        "statistic",
        "p_value",
        "threshold",
        "drifted",
        "status",
        "verdict",
        "effect",
        "effect_measure",
        "effect_floor",
        "current_size",
    )
    return [{name: feature.get(name) for name in keep} for feature in report["features"]]


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


def segment_drift(
    config: MonitorConfig, references: dict[Segment, Profile], currents: dict[Segment, Profile]
) -> list[dict[str, Any]]:
    """Each segment's window against the segment's own training rows. The segments share ``drift.alpha``
    (Bonferroni across segments, the configured correction across each segment's features), so that many
    segments do not multiply false alarms."""
    alpha = config.drift.alpha / max(len(references), 1)
    results = []
    for (column, value), reference in references.items():
        current = currents[(column, value)]
        report = compare_profiles(
            reference, current, alpha=alpha, **drift_options(config, reference, multivariate=False)
        ).to_dict()
        results.append(
            {
                "feature": column,
                "value": value,
                "reference_rows": reference.rows,
                "current_rows": current.rows,
                "alpha": alpha,
                "drifted_features": report["drifted_features"],
                "share_drifted": report["share_drifted"],
                "insufficient_data": current.rows < config.drift.min_rows,
                "verdict": report["verdict"],
                "features": _feature_lines(report),
            }
        )
    return results


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
) -> dict[str, Any]:
    """The report's ``production_drift`` section: the window against the rolling production reference (see
    :func:`production_reference`), with the same tests, alpha and correction as the skew against training."""
    if config.drift.production_windows == 0:
        return {"status": "off"}
    previous, ends = production_reference(storage, config, reference, key, window_start)
    if previous is None:
        return {
            "status": "no_previous_windows",
            "message": f"none of the previous {config.drift.production_windows} windows holds stored predictions",
            "reference_windows": [],
        }
    report = compare_profiles(previous, current, alpha=config.drift.alpha, **drift_options(config, previous)).to_dict()
    return {
        "status": "ok",
        "reference_windows": ends,
        "reference_rows": previous.rows,
        "verdict": report["verdict"],
        "drifted_features": report["drifted_features"],
        "share_drifted": report["share_drifted"],
        "minor_features": report["minor_features"],
        "insufficient_data": report["insufficient_data"],
        "multivariate": report["multivariate"],
        "features": _feature_lines(report),
    }


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
    production_alert: bool = False
    insufficient_alert: bool = False


def decide(report: dict[str, Any], config: MonitorConfig) -> DriftDecision:
    """A drift alert when the share of drifted features exceeds ``drift.alert_share`` against the training
    reference, in the whole window (skew) or in a segment; a ``production_drift`` alert when it does against the
    rolling production reference and ``drift.production_alerts`` is on (its own kind, so its cooldown never holds
    back a skew alert). Request a retrain when the skew's share reaches ``drift.retrain_share`` and the model has
    a retrain entry point: retraining answers a difference from the training data. Pure.

    Quality findings of ``alerts.quality_severity`` or worse (and any unreadable file moved aside) are announced
    in a quality alert. A critical finding (a feature gone for the whole window) makes the verdict
    ``quality_incident`` whatever the drift tests say; it requests no retrain, since retraining on a window
    without the feature would learn the outage.
    """
    drifted = list(report["drifted_features"])
    share = float(report["share_drifted"])
    quality = list(report.get("quality", []))
    limit = config.drift.alert_share
    segments = list(report.get("segments") or [])
    segment_drift = any(s["drifted_features"] for s in segments)
    segment_alert = any(s["drifted_features"] and float(s["share_drifted"]) > limit for s in segments)
    joint_drift = bool((report.get("multivariate") or {}).get("drifted"))
    alert = (bool(drifted) and share > limit) or segment_alert or joint_drift
    production = report.get("production_drift") or {}
    production_drift = config.drift.production_alerts and bool(production.get("drifted_features"))
    production_alert = production_drift and float(production["share_drifted"]) > limit
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
    any_drift = bool(drifted) or joint_drift or segment_drift or production_drift
    insufficient = not any_drift and bool(report.get("insufficient_data"))
    verdict: Verdict = (
        "quality_incident"
        if incident
        else ("drift" if any_drift else ("insufficient_data" if insufficient else "no_drift"))
    )
    insufficient_alert = insufficient and not incident and config.alerts.insufficient_data
    return DriftDecision(
        alert, retrain, drifted, verdict, quality_alert, announced, production_alert, insufficient_alert
    )


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
    report = compare_profiles(
        reference,
        scan.profile,
        alpha=config.drift.alpha,
        **drift_options(config, reference),
        current_columns=scan.columns,
        metadata={
            "model": config.model,
            "model_versions": scan.versions,
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "current_rows": scan.rows,
            "reference_rows": reference.rows,
            "generated_at": datetime.now(UTC).isoformat(),
        },
    ).to_dict()
    report["quality"] = [*report.get("quality", []), *scan.type_findings]
    report["skipped_files"] = [file.to_jsonable() for file in scan.quarantined]
    report["skipped_events_at_most"] = sum(file.events_at_most or 0 for file in scan.quarantined)
    report["production_drift"] = production_drift(
        storage, config, reference, key, current=scan.profile, window_start=window_start
    )
    report["segments"] = segment_drift(config, segment_refs, scan.segments)
    decision = decide(report, config)
    report["alert"], report["retrain_requested"] = decision.alert, decision.retrain
    report["verdict"], report["quality_alert"] = decision.verdict, decision.quality_alert
    now = datetime.now(UTC)
    performance, label_files = window_performance(
        storage, config, scan.predictions, scan.confidence, (window_start, window_end), now=now
    )
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
        elif kind == "production_drift":
            text = format_production_drift_alert(report, html_url)
        elif kind == "quality":
            text = format_quality_alert(report, html_url, decision.announced_findings)
        elif kind == "insufficient_data":
            text = format_insufficient_alert(report, html_url, config.drift.min_rows)
        else:
            text = format_performance_alert(report, html_url)
        critical = kind == "quality" and decision.verdict == "quality_incident"
        outbox.queue_alert(
            storage,
            Alert(
                alert_id=window_alert_id(kind, config.model, window_end),
                kind=kind,
                model=config.model,
                window_start=window_start,
                window_end=window_end,
                count=scan.rows,
                channel=config.alerts.slack_channel,
                text=text,
                severity="critical" if critical else ("info" if kind == "insufficient_data" else "warning"),
                links={"Report": html_url, **(links or {})},
            ),
        )
    severities = [q.get("severity", "warning") for q in report["quality"]]
    return DriftSummary(
        model=config.model,
        window_start=window_start,
        window_end=window_end,
        current_rows=scan.rows,
        drifted_features=decision.drifted_features,
        share_drifted=float(report["share_drifted"]),
        alert=decision.alert,
        retrain_requested=bool(report["retrain_requested"]),
        report_url=report_url,
        alerts_delivered=outbox.deliver_pending_alerts(settings, storage),
        verdict=decision.verdict,
        quality_findings={severity: severities.count(severity) for severity in sorted(set(severities))},
        quarantined_files=[file.path for file in scan.quarantined],
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


AlertKind = Literal["drift", "production_drift", "quality", "performance", "insufficient_data"]


def alert_kinds(
    storage: Storage, config: MonitorConfig, report: dict[str, Any], decision: DriftDecision, window_end: datetime
) -> tuple[list[AlertKind], dict[str, str]]:
    """The kinds of alert the window asks for, and those of them the cooldown holds back (kind → why)."""
    kinds: list[AlertKind] = []
    if decision.alert:
        kinds.append("drift")
    if decision.production_alert:
        kinds.append("production_drift")
    if decision.quality_alert:
        kinds.append("quality")
    if report["performance"]["realized"]["status"] == "degraded":
        kinds.append("performance")
    if decision.insufficient_alert:
        kinds.append("insufficient_data")
    held_back: dict[str, str] = {}
    for kind in kinds:
        earlier = outbox.alert_within(storage, kind, config.model, window_end, config.alerts.cooldown)
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
