"""Typed records for everything that crosses a boundary: a topic, a file in storage, another folder's module.

One definition each; producers build them and readers parse them with
:meth:`Record.parse`, never with dicts assembled by hand. Every record carries
``schema_version``, its own kind's: a kind changes its version without the others (version 1 unless it
declares another). A reader given a record of another version, or one with a
field it does not know (written by a newer driftline) or without one it needs
(written by an older one), gets a :class:`RecordError` naming the record type
and the field. ``make schemas`` writes their JSON Schemas to
``schemas/jsonschema/`` for non-Python producers and consumers. The drift report
is a record too, in its own module (schemas/reports.py), and so are the stream worker's own state
(schemas/worker_state.py).

| record | where it travels |
|---|---|
| :class:`DeadLetter` | the dead-letter topic |
| :class:`WindowMetrics` | the metrics topic (one per model, version and closed window) |
| :class:`WindowPerformance` | the performance topic (realized performance from the labels the stream joined) |
| :class:`Alert` | the alerts topic; the alert outbox in storage |
| :class:`DriftSummary` | the drift task's return value (XCom) |
| :class:`RetrainRequest` | ``retrain/requests/<model>.json`` |
| :class:`ModelVersion` | ``models/<model>/versions/<version>/metadata.json`` |
| :class:`DeploymentState`, :class:`DeploymentEvent` | ``models/<model>/routing.json``; the deployments topic |
| :class:`IngestLedger` | ``_ingest/...`` (an ingest run's offset range before its commit) |
| :class:`ReferenceSource` | beside the stored reference profile: what it was built from |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, ValidationError


class RecordError(ValueError):
    """A record that does not match its definition; the message names the record type and the field."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256 digest.")]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """Base of every record: frozen, unknown fields rejected, versioned by kind.

    A kind at another version than 1 declares it: ``schema_version: Literal[2] = 2`` (the reader of that kind
    then reads only version 2; :meth:`kind_version` says which)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
    record_type: ClassVar[str]

    schema_version: Literal[1] = 1

    @classmethod
    def kind_version(cls) -> int:
        """The schema version this driftline writes and reads for this kind of record."""
        default = cls.model_fields["schema_version"].default
        assert isinstance(default, int)
        return default

    @classmethod
    def decode(cls, raw: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
        """The JSON object of ``raw``; :class:`RecordError` when it is not valid JSON or not an object."""
        if isinstance(raw, bytes | str):
            try:
                data = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RecordError(f"{cls.record_type} record: not valid JSON ({exc})") from None
        else:
            data = raw
        if not isinstance(data, Mapping):
            raise RecordError(f"{cls.record_type} record: expected a JSON object, got {type(data).__name__}")
        return data

    @classmethod
    def parse(cls, raw: bytes | str | Mapping[str, Any]) -> Self:
        """Decode and validate; raises :class:`RecordError` naming the field, what was wrong and what is expected."""
        data = cls.decode(raw)
        version = data.get("schema_version", cls.kind_version())
        if version != cls.kind_version():
            raise RecordError(
                f"{cls.record_type} record: field 'schema_version': this driftline reads version "
                f"{cls.kind_version()}, got {version!r}; read it with the driftline release that wrote it"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RecordError(f"{cls.record_type} record: {describe_record_error(exc)}") from None

    def to_json(self) -> bytes:
        """The wire and file form: compact UTF-8 JSON."""
        return self.model_dump_json().encode()

    def to_jsonable(self) -> dict[str, Any]:
        """Plain JSON types (datetimes as ISO text), e.g. for an Airflow task's return value."""
        return self.model_dump(mode="json")


def describe_record_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "record"
        if item["type"] == "extra_forbidden":
            parts.append(f"field '{where}' is unknown to this driftline (written by a newer release?)")
        elif item["type"] == "missing":
            parts.append(f"field '{where}' is missing (written by an older release?)")
        else:
            got = item.get("input")
            got_text = "" if isinstance(got, dict | list) else f" (got {got!r:.80})"
            parts.append(f"field '{where}': {item['msg']}{got_text}")
    return "; ".join(parts)


DEAD_LETTER_ORIGINAL_LIMIT = 65_536  # bytes of the original kept in a dead letter


def original_text(raw: bytes, limit: int = DEAD_LETTER_ORIGINAL_LIMIT) -> str:
    """The original message as text (hex when not UTF-8), cut to ``limit`` bytes so an oversized event's
    dead letter is not oversized itself."""
    kept = raw[:limit]
    try:
        text = kept.decode()
    except UnicodeDecodeError:
        text = kept.decode(errors="replace") if len(raw) > limit else raw.hex()
    return text if len(raw) <= limit else f"{text}…[{len(raw) - limit:,} more bytes not kept]"


class DeadLetter(Record):
    """An event that could not be used, with the reason and where it came from."""

    record_type: ClassVar[str] = "dead_letter"

    reason: str = Field(description="What was wrong and what would be right, for people.")
    source: Literal["producer", "worker", "ingest"]
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    original: JsonValue = Field(description="The original payload, or its text when it was not JSON.")
    dead_lettered_at: UtcDatetime = Field(default_factory=utc_now)


class LatencySketchState(Record):
    """The mergeable latency sketch of a window (see streams/windows.py)."""

    record_type: ClassVar[str] = "latency_sketch"

    relative_accuracy: float = Field(gt=0, lt=1)
    zeros: int = Field(ge=0)
    count: int = Field(ge=0)
    buckets: dict[str, int] = Field(description="Bucket index (as text) -> count.")


class PredictionSketchState(Record):
    """The mergeable sketch of a window's predictions (see streams/windows.py): numbers in two log-bucket
    sketches (positive values and the magnitudes of negative ones) with their moments; classes (text and
    booleans) counted, the commonest kept."""

    record_type: ClassVar[str] = "prediction_sketch"

    numeric: int = Field(default=0, ge=0, description="Numeric predictions.")
    total: float = 0.0
    total_squares: float = Field(default=0.0, ge=0)
    minimum: float | None = None
    maximum: float | None = None
    positive: LatencySketchState | None = None
    negative: LatencySketchState | None = None
    classes: dict[str, int] = Field(default_factory=dict, description="Class (as text) -> count.")
    other_classes: int = Field(default=0, ge=0, description="Predictions of classes beyond those kept.")
    missing: int = Field(default=0, ge=0, description="Null predictions.")


class WindowMetrics(Record):
    """One model version's closed tumbling window, as published on the metrics topic.

    ``count``, ``errors`` and ``fallbacks`` are events received; with sampling at the producer each event
    stands for ``1/sample_rate`` requests, and ``requests``, ``estimated_errors`` and ``estimated_fallbacks``
    are those sums (equal to the counts without sampling). Rates and throughput are from the estimates."""

    record_type: ClassVar[str] = "window_metrics"

    model: str
    model_version: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    count: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float = Field(ge=0, le=1)
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_sketch: LatencySketchState
    partitions: list[int] = Field(description="Source partitions whose events the window holds.")
    requests: float | None = Field(default=None, ge=0, description="Requests the events stand for (sampling).")
    estimated_errors: float | None = Field(default=None, ge=0)
    errors_by_cause: dict[str, int] = Field(
        default_factory=dict,
        description="Error (the events' error text) -> events; the commonest 20, the rest under '(other)'.",
    )
    fallbacks: int = Field(default=0, ge=0, description="Events answered by a default, not by the model.")
    estimated_fallbacks: float | None = Field(default=None, ge=0)
    fallback_rate: float = Field(default=0.0, ge=0, le=1)
    throughput_per_s: float | None = Field(default=None, ge=0, description="Requests per second of the window.")
    prediction_mean: float | None = Field(default=None, description="Mean of the numeric predictions.")
    predictions: PredictionSketchState | None = None
    shadow_pairs: int = Field(
        default=0, ge=0, description="Shadow predictions of this version compared with the live answer to the request."
    )
    shadow_agreements: int = Field(default=0, ge=0, description="Of those, the ones that agreed (streams/windows.py).")

    @property
    def key(self) -> str:
        return f"{self.model}|{self.model_version}"


AlertSeverity = Literal["critical", "warning", "info"]


class Alert(Record):
    """Something a person must look at; delivered to Slack (or the console) at least once, announced once."""

    record_type: ClassVar[str] = "alert"

    alert_id: str = Field(description="Stable for the same model, window and kind, so re-runs do not re-announce.")
    kind: Literal[
        "threshold",
        "drift",
        "production_drift",
        "quality",
        "performance",
        "quarantine",
        "unconfigured_model",
        "artifact",
        "pipeline",
        "model_age",
        "resolved",
        "prediction_drift",
        "deployment",
        "insufficient_data",
    ]
    model: str = Field(description="The model; for a pipeline alert, the DAG whose task failed.")
    model_version: str | None = None
    metric: str | None = Field(default=None, description="The metric that crossed its threshold (threshold alerts).")
    value: float | None = None
    threshold: float | None = None
    window_start: UtcDatetime
    window_end: UtcDatetime
    count: int | None = Field(default=None, description="Events (or rows) in the window.")
    channel: str | None = Field(default=None, description="Slack channel; the settings' default when null.")
    text: str | None = Field(default=None, description="The message, when rendered by the sender.")
    severity: AlertSeverity | None = Field(default=None, description="Null: the kind's usual severity.")
    links: dict[str, str] = Field(
        default_factory=dict, description="Where to look, by label: the HTML report, the Airflow run or task log."
    )


Verdict = Literal["drift", "no_drift", "insufficient_data", "quality_incident"]


class DriftSummary(Record):
    """What a drift check found for one model and window: the drift task's return value."""

    record_type: ClassVar[str] = "drift_summary"

    model: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    current_rows: int = Field(ge=0)
    drifted_features: list[str]
    share_drifted: float = Field(ge=0, le=1)
    alert: bool
    retrain_requested: bool
    report_url: str
    alerts_delivered: list[str] = Field(default_factory=list)
    verdict: Verdict = Field(
        default="no_drift",
        description="quality_incident when a feature is gone for the whole window (a critical quality finding), "
        "whatever the drift tests say; insufficient_data when nothing drifted but some features had too few values "
        "to be judged (never reported as no_drift).",
    )
    quality_findings: dict[str, int] = Field(
        default_factory=dict, description="Quality findings of the window by severity (info, warning, critical)."
    )
    quarantined_files: list[str] = Field(
        default_factory=list, description="Unreadable event files moved aside by this check (their original paths)."
    )
    alerts_held_back: list[str] = Field(
        default_factory=list, description="Kinds of alert not sent for this window because of alerts.cooldown."
    )


class RetrainRequest(Record):
    """Written by the drift check, consumed (and removed) by the retrain DAG."""

    record_type: ClassVar[str] = "retrain_request"

    model: str
    reason: str
    report: str = Field(description="URL or path of the drift report behind the request.")
    requested_at: UtcDatetime = Field(default_factory=utc_now)
    window_start: UtcDatetime | None = Field(
        default=None, description="Start of the drift window behind the request; retrain trains on data ending with it."
    )
    window_end: UtcDatetime | None = Field(
        default=None, description="End (exclusive) of that window; none for a request made by hand."
    )


class ModelVersion(Record):
    """A stored model version: its artifact, the artifact's digest, and how it was trained and validated."""

    record_type: ClassVar[str] = "model_version"

    model: str
    version: str
    artifact: str = Field(description="File name of the artifact beside this record.")
    artifact_format: Literal["pickle", "skops"] = "pickle"
    sha256: Sha256 = Field(description="Digest of the artifact; loading refuses an artifact that does not match.")
    signature: Sha256 | None = Field(
        default=None,
        description="HMAC-SHA256 of model, version, format and digest with DRIFTLINE_MODEL_SIGNING_KEY, a key kept "
        "outside storage; when the key is set, loading refuses a version without a valid signature.",
    )
    trained_at: UtcDatetime = Field(default_factory=utc_now)
    reason: str = "manual"
    training_rows: int | None = None
    training_window_start: UtcDatetime | None = Field(
        default=None, description="The predictions trained on have event times in [start, end)."
    )
    training_window_end: UtcDatetime | None = None
    holdout_rows: int | None = None
    holdout_accuracy: float | None = None
    serving_version: str | None = None
    serving_holdout_accuracy: float | None = None
    task: Literal["classification", "regression"] | None = None
    reference: str | None = Field(default=None, description="The training data the monitor compares windows to.")
    holdout_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="This version on the holdout: every metric of its task (accuracy, f1, "
        "roc_auc, log_loss...; mae, rmse, mape).",
    )
    serving_holdout_metrics: dict[str, float] = Field(
        default_factory=dict, description="The version serving when this one was trained, on the same holdout."
    )
    production_window_start: UtcDatetime | None = Field(
        default=None, description="The most recent production window both versions were compared on."
    )
    production_window_end: UtcDatetime | None = None
    production_rows: int | None = Field(default=None, description="Its labelled rows not trained on.")
    production_metrics: dict[str, float] = Field(default_factory=dict)
    serving_production_metrics: dict[str, float] = Field(default_factory=dict)


Strategy = Literal["recreate", "blue_green", "canary", "ab", "shadow", "bandit"]
RolloutStatus = Literal["stable", "progressing", "paused", "promoted", "rolled_back", "aborted"]
Shares = Annotated[dict[str, Annotated[float, Field(ge=0, le=1)]], Field(description="Version -> share of traffic.")]


def _total_one(shares: dict[str, float]) -> dict[str, float]:
    if shares and abs(sum(shares.values()) - 1) > 1e-9:
        raise ValueError(f"traffic shares must add up to 1, these add up to {sum(shares.values()):.6g}: {shares}")
    return shares


class DeploymentEvent(Record):
    """One change of what serves a model: a rollout starting, a stage passing, a promotion, a rollback, a pause."""

    record_type: ClassVar[str] = "deployment_event"

    model: str
    serving: str = Field(description="The stable version after the change.")
    previous: str | None = None
    strategy: Strategy = "blue_green"
    reason: str
    at: UtcDatetime = Field(default_factory=utc_now)
    revision: int = Field(default=0, ge=0, description="The state's revision after the change.")
    version: str | None = Field(default=None, description="The version the change is about (the candidate).")
    from_status: RolloutStatus | None = None
    to_status: RolloutStatus = "stable"
    weights: Annotated[Shares, AfterValidator(_total_one)] = Field(default_factory=dict)
    shadow_share: float = Field(default=0.0, ge=0, le=1)
    evidence: list[str] = Field(default_factory=list, description="What the decision rests on, one line each.")


class DeploymentState(Record):
    """What serves a model: the stable version, a candidate being rolled out and its share of traffic, a shadow
    version and the share mirrored to it, the strategy and its stage, and the recent history of changes.

    Routers (streams/router.py) split traffic by ``weights`` (empty: everything to ``serving``), each key by its
    hash salted with ``rollout_id``, on intervals in the order of ``weights``; ``revision`` grows with every
    change, and a router keeps the highest it has seen (docs/rollouts.md)."""

    record_type: ClassVar[str] = "deployment_state"

    model: str
    serving: str = Field(description="The stable version: it answers whatever no other share takes.")
    previous: str | None = None
    strategy: Strategy = "blue_green"
    updated_at: UtcDatetime
    history: list[DeploymentEvent] = Field(default_factory=list)
    revision: int = Field(default=0, ge=0)
    rollout_id: str | None = Field(default=None, description="Salts the key hash: a new rollout, new buckets.")
    candidate: str | None = None
    status: RolloutStatus = "stable"
    weights: Annotated[Shares, AfterValidator(_total_one)] = Field(default_factory=dict)
    shadow: str | None = Field(default=None, description="A version mirrored to (its answers never returned).")
    shadow_share: float = Field(default=0.0, ge=0, le=1)
    stage: int = Field(default=0, ge=0, description="Index in ``stages`` (canary).")
    stages: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=list, description="The candidate's share at each stage (canary), ending at 1; 0: shadow."
    )
    stage_started_at: UtcDatetime | None = None

    def shares(self) -> dict[str, float]:
        """Each version's share of live traffic."""
        return dict(self.weights) if self.weights else {self.serving: 1.0}


class IngestLedger(Record):
    """The offset range an ingest run wrote files for, kept until its offsets are committed."""

    record_type: ClassVar[str] = "ingest_ledger"

    topic: str
    partition: int = Field(ge=0)
    first_offset: int = Field(ge=0)
    last_offset: int = Field(ge=0)


class IngestProgress(Record):
    """How far the ingest of one topic has come: every message the broker held when ``caught_up_at`` came is
    stored. A drift check of a window waits until this passes the window's end plus the allowed lateness."""

    record_type: ClassVar[str] = "ingest_progress"

    topic: str
    caught_up_at: UtcDatetime = Field(
        description="Start of the newest ingest run that read the topic until it was idle (not cut by max_records)."
    )
    rows_written: int = Field(ge=0, description="Rows that run stored.")


class QuarantinedFile(Record):
    """An event file that could not be read, moved from ``path`` to ``moved_to`` (both relative to the storage
    root); written beside the moved file as ``<moved_to>.json``."""

    record_type: ClassVar[str] = "quarantined_file"

    path: str
    moved_to: str
    reason: str
    size_bytes: int = Field(ge=0)
    topic: str | None = None
    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None
    events_at_most: int | None = Field(
        default=None, description="The file's source offset range bounds how many events it held."
    )
    quarantined_at: UtcDatetime = Field(default_factory=utc_now)


class WindowPerformance(Record):
    """One model version's realized performance in one window, from the labels the stream joined to its
    predictions by the deadline (streams/label_join.py); published on ``<prefix>.performance``."""

    record_type: ClassVar[str] = "window_performance"

    model: str
    model_version: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    label_deadline_seconds: float = Field(ge=0)
    task: Literal["classification", "regression"]
    threshold: float = Field(description="Classification: a numeric prediction at or above this is class 1.")
    predictions: int = Field(ge=0, description="Predictions of the window that waited for a label.")
    labelled: int = Field(ge=0, description="Pairs joined by the deadline and scored.")
    unlabelled: int = Field(ge=0, description="Predictions without a label by the deadline.")
    late_labels: int = Field(ge=0, description="Labels that came after the deadline (not scored).")
    unscored: int = Field(default=0, ge=0, description="Pairs that could not be compared (types that do not fit).")
    correct: int = Field(default=0, ge=0)
    true_positives: int = Field(default=0, ge=0)
    false_positives: int = Field(default=0, ge=0)
    false_negatives: int = Field(default=0, ge=0)
    true_negatives: int = Field(default=0, ge=0)
    absolute_error: float = Field(default=0.0, ge=0, description="Regression: the sum of |prediction - label|.")
    squared_error: float = Field(default=0.0, ge=0, description="Regression: the sum of (prediction - label)².")
    partitions: list[int]

    @property
    def key(self) -> str:
        return f"{self.model}|{self.model_version}"


class ReferenceSource(Record):
    """What a stored reference profile was built from; a different reference rebuilds it."""

    record_type: ClassVar[str] = "reference_source"

    reference: str
