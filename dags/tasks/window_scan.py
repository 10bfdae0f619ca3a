"""What a drift check reads of a window: one streaming pass over its stored predictions
(:func:`scan_window`) gives the window's profile on the reference's bins, a profile per segment, the sampled
predictions and score sums for the performance section, and the counts; :func:`segment_references` gives the
segments' reference profiles (built once from the training data, then stored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from driftline.dags.tasks.performance import ConfidenceSums, PredictionSample
from driftline.detectors import Profile, build_reference_profile
from driftline.detectors.profile import OTHER, CategoricalSummary
from driftline.detectors.profiling import ProfileBuilder
from driftline.detectors.quality import QualityIssue
from driftline.detectors.sources import read_table
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import QuarantinedFile
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events
from driftline.schemas.storage import models as model_store

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


def _number_or_none(value: Any) -> Any:
    # Booleans are not numbers here; numbers and numeric text are.
    return None if isinstance(value, bool) else value
