"""The stream worker's own records: what a source partition reports to the window merger (the window-reports
topic), and the checkpoints of the partition readers and the merger (``worker/<group>/...``), from which a
restarted worker goes on where it was. Versioned and read back as every record is (schemas/records.py).

| record | where it travels |
|---|---|
| :class:`PartitionReport` | the window-reports topic: one source partition's closed partial windows and watermark |
| :class:`PartitionCheckpoint`, :class:`MergerCheckpoint` | ``worker/<group>/...``: worker state, for crash recovery |
| :class:`LabelJoinState`, :class:`AlertIncident` | inside those checkpoints |
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from driftline.schemas.records import (
    AlertSeverity,
    Record,
    UtcDatetime,
    WindowMetrics,
    WindowPerformance,
    utc_now,
)


class LabelJoinState(Record):
    """One source partition's late-label join, saved in its checkpoint (streams/label_join.py)."""

    record_type: ClassVar[str] = "label_join"

    topic: str = Field(description="The labels topic.")
    last_offset: int = Field(ge=-1)
    max_label_time: UtcDatetime | None
    idle_watermark: UtcDatetime | None
    pending_keys: list[list[str]] = Field(description="[model, version, window start] of the pending predictions.")
    pending_digests: str = Field(description="Base64 of the 8-byte request-id hashes of the pending predictions.")
    pending_windows: list[int] = Field(description="Each pending prediction's index into pending_keys.")
    pending_predictions: list[float | int | str | bool | None]
    early_digests: str = Field(description="Base64 of the 8-byte request-id hashes of labels ahead of predictions.")
    early_labels: list[float | int | str | bool | None]
    early_times: list[UtcDatetime]
    early_models: list[str] = Field(default_factory=list, description="The model of each early label.")
    open_windows: list[WindowPerformance]
    orphans: int = Field(default=0, ge=0)
    evicted: int = Field(default=0, ge=0)
    closed_through: UtcDatetime | None = None


class PartitionReport(Record):
    """What the accumulator of one source partition tells the window merger (streams/partition_state.py).

    ``closed`` holds the partial windows (this partition's events only) that the
    partition's watermark has passed; ``watermark`` says that no later event of
    this partition can fall in a window ending at or before it.
    """

    record_type: ClassVar[str] = "partition_report"

    topic: str
    partition: int = Field(ge=0)
    last_offset: int = Field(ge=-1, description="The last source offset folded in (-1: none yet).")
    watermark: UtcDatetime | None = Field(description="Null while the partition has said nothing yet.")
    closed: list[WindowMetrics]
    performance: list[WindowPerformance] = Field(default_factory=list, description="Closed performance windows.")
    performance_through: UtcDatetime | None = Field(
        default=None, description="Performance windows whose end + deadline is at or before this are closed here."
    )
    reported_at: UtcDatetime = Field(default_factory=utc_now)


class PartitionCheckpoint(Record):
    """One source partition's accumulator, saved after every batch; a restart resumes from it and skips
    the offsets it already holds."""

    record_type: ClassVar[str] = "partition_checkpoint"

    topic: str
    partition: int = Field(ge=0)
    last_offset: int = Field(ge=-1)
    max_event_time: UtcDatetime | None
    idle_watermark: UtcDatetime | None
    open_windows: list[WindowMetrics]
    label_join: LabelJoinState | None = Field(default=None, description="The late-label join, when it runs.")
    recent_request_ids: str = Field(
        default="", description="Base64 of the 8-byte BLAKE2b digests of the last request ids counted, oldest first."
    )
    saved_at: UtcDatetime = Field(default_factory=utc_now)


class AlertIncident(Record):
    """A metric of a model version over its threshold since ``since`` (the stream's alert state)."""

    record_type: ClassVar[str] = "alert_incident"

    model: str
    model_version: str
    metric: str
    alert_id: str = Field(description="The alert that opened it (or would have, when it was not announced).")
    since: UtcDatetime = Field(description="Start of the first window over the threshold.")
    severity: AlertSeverity
    announced: bool = Field(description="False when it began within the cooldown after the last recovery.")
    value: float
    threshold: float


class MergerCheckpoint(Record):
    """The window merger's state (one per worker group), saved after it publishes."""

    record_type: ClassVar[str] = "merger_checkpoint"

    topic: str = Field(description="The window-reports topic it reads.")
    last_offset: int = Field(ge=-1)
    source_partitions: int = Field(ge=1)
    watermarks: dict[str, UtcDatetime] = Field(description="Source partition (as text) -> its watermark.")
    pending: list[WindowMetrics] = Field(description="Partial windows waiting for every partition's watermark.")
    closed_through: UtcDatetime | None
    incidents: list[AlertIncident] = Field(default_factory=list, description="Metrics over their thresholds now.")
    recovered: dict[str, UtcDatetime] = Field(
        default_factory=dict, description="'model|version|metric' -> end of the window in which it last recovered."
    )
    pending_performance: list[WindowPerformance] = Field(default_factory=list)
    performance_watermarks: dict[str, UtcDatetime] = Field(default_factory=dict)
    performance_closed_through: UtcDatetime | None = None
    prediction_monitors: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict, description="'model|version' -> the online drift detector's state on its predictions."
    )
    rollouts: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict, description="Model -> the evidence of its rollout's stage in progress."
    )
    saved_at: UtcDatetime = Field(default_factory=utc_now)
