"""The drift report of one window, as a typed, versioned record.

The drift DAG writes one per model and window (``reports/model=<model>/drift-<window end>.json``, the HTML page
beside it); Slack alerts, the report indexes and the demo read it. A reader given a report with a field it does
not know (a newer driftline) or without one it needs (an older one) gets a :class:`.RecordError` naming the field,
as for every record. ``make schemas`` writes its JSON Schema (``schemas/jsonschema/drift_report.v4.json``).

Version 4 adds ``excluded_columns``: the reference's columns that were not tested (the label, identifiers, those
excluded in the config) and why. Version 3, the first typed report, is read as version 4 with none listed;
version 2 (written before it, with ``report_version: 2`` and no ``schema_version``) holds version 3's fields.

Sections, each a model of its own: ``features`` (every feature's test, against the training reference),
``multivariate`` (the features together), ``quality`` (findings), ``skipped_files`` (files set aside),
``production_drift`` (against the previous windows of production), ``segments`` (each segment against its own
training rows), ``performance`` (realized from labels, estimated from scores).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainSerializer

from driftline.schemas.records import QuarantinedFile, Record, UtcDatetime

# Window bounds as Python's isoformat writes them (``+00:00``), as reports always had them.
IsoDatetime = Annotated[UtcDatetime, PlainSerializer(lambda moment: moment.isoformat(), when_used="json")]

WindowVerdict = Literal["drift", "no_drift", "insufficient_data", "quality_incident"]
FeatureVerdict = Literal["drift", "minor", "no_drift", "insufficient_data"]


class Section(BaseModel):
    """A part of the report: frozen, unknown fields rejected (named by the report's reader)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class FeatureLine(Section):
    """One feature's test, as the production and segment sections keep it."""

    feature: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool | None
    status: Literal["ok", "insufficient_data"]
    verdict: FeatureVerdict
    effect: float | None
    effect_measure: str | None
    effect_floor: float | None
    current_size: int


class FeatureDrift(FeatureLine):
    """One feature's test against the training reference, with what the report page draws."""

    feature_type: str
    direction: Literal["p_value", "distance"]
    reference_size: int
    approximation: str | None
    significant: bool | None
    severity: float
    plot: dict[str, JsonValue] | None


class MultivariateDrift(Section):
    """The features together (reconstruction error of the reference's principal components); only ``status``
    when the check is off."""

    status: Literal["ok", "insufficient_data", "unavailable", "off"]
    test: str | None = None
    message: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    effect: float | None = None
    effect_floor: float | None = None
    drifted: bool | None = None
    significant: bool | None = None
    components: int | None = None
    dimensions: int | None = None
    features: list[str] = []
    reference_rows: int = 0
    current_rows: int = 0
    verdict: str | None = None


class QualityFinding(Section):
    check: str
    feature: str
    value: float | None
    threshold: float | None
    message: str
    severity: Literal["critical", "warning", "info"]


class ProductionDrift(Section):
    """The window against the previous ``drift.production_windows`` windows of production merged."""

    status: Literal["ok", "off", "no_previous_windows"]
    message: str | None = None
    reference_windows: list[str] = []
    reference_rows: int | None = None
    verdict: str | None = None
    drifted_features: list[str] = []
    share_drifted: float | None = None
    minor_features: list[str] = []
    insufficient_data: list[str] = []
    multivariate: MultivariateDrift | None = None
    features: list[FeatureLine] = []


class SegmentDrift(Section):
    """One segment (a value of a segment feature) against the training rows of that segment."""

    feature: str
    value: JsonValue
    reference_rows: int
    current_rows: int
    alpha: float
    drifted_features: list[str]
    share_drifted: float
    insufficient_data: bool
    verdict: str
    features: list[FeatureLine]


class MetricEstimate(Section):
    metric: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int


class Degradation(Section):
    metric: str
    reference: float
    current: MetricEstimate
    tolerance: float
    degraded: bool
    reason: str


class PredictionSampling(Section):
    """The window had more predictions than the join keeps: which were kept, by a hash of the request id."""

    predictions: int
    kept: int
    by: str


class RealizedPerformance(Section):
    """The window's metrics from its predictions joined to the labels stored so far."""

    status: Literal["ok", "degraded", "insufficient_labels"]
    labelled_rows: int
    min_labels: int | None = None
    metrics: dict[str, MetricEstimate] = {}
    reference: dict[str, float] = {}
    degraded: list[Degradation] = []
    sampled: PredictionSampling | None = None


class EstimatedPerformance(Section):
    """Accuracy expected from the window's own scores, before labels arrive (confidence-based)."""

    method: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    rows: int


class Performance(Section):
    realized: RealizedPerformance
    estimated: EstimatedPerformance | None


class ExcludedColumn(Section):
    """A column of the reference that is not a feature, and why (detectors/identifiers.py)."""

    column: str
    reason: str


class DriftReport(Record):
    """One model's window against its training reference, and what driftline did about it."""

    record_type: ClassVar[str] = "drift_report"
    schema_version: Literal[4] = 4  # type: ignore[assignment]  # a kind declares its own version

    model: str
    model_versions: list[str]
    window_start: IsoDatetime
    window_end: IsoDatetime
    generated_at: IsoDatetime
    current_rows: int
    reference_rows: int
    alpha: float
    correction: str
    verdict: WindowVerdict
    drifted_features: list[str]
    share_drifted: float
    minor_features: list[str]
    insufficient_data: list[str]
    multivariate: MultivariateDrift
    features: list[FeatureDrift]
    quality: list[QualityFinding]
    excluded_columns: list[ExcludedColumn] = Field(default_factory=list)
    skipped_files: list[QuarantinedFile]
    skipped_events_at_most: int
    production_drift: ProductionDrift
    segments: list[SegmentDrift]
    performance: Performance
    model_age: str | None
    alert: bool
    quality_alert: bool
    retrain_requested: bool
    retrain_not_requested: str | None = None
    alerts_held_back: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes | str | Mapping[str, Any]) -> Self:
        """As :meth:`.Record.parse`; a version 3 report is read as version 4 with no excluded column listed, and a
        version 2 one (``report_version: 2``, no ``schema_version``) holds version 3's fields."""
        data = cls.decode(raw)
        if "schema_version" not in data and data.get("report_version") == 2:
            data = {key: value for key, value in data.items() if key != "report_version"} | {"schema_version": 3}
        if data.get("schema_version") == 3:
            data = {**data, "schema_version": 4}
        return super().parse(data)

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [feature for feature in self.features if feature.drifted]
