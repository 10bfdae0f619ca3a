"""What the metrics agent does with one raw prediction message, without IO: count it, or refuse it with a reason.

The agent reads the message, calls :meth:`PredictionIntake.take`, and writes what
it returns: a dead letter for a refused message, an alert the first time a model
without a monitor config shows up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from driftline.schemas.config import MetricSettings, MonitorConfig
from driftline.schemas.events import TOMBSTONE_REASON, EventError, read_prediction
from driftline.schemas.records import Alert
from driftline.streams.alerts.ids import unconfigured_model_alert_id
from driftline.streams.partition_state import PartitionAccumulator


@dataclass(frozen=True)
class Intake:
    """The outcome for one message: ``refused`` is the dead-letter reason and ``cause`` its class (one of
    :data:`DEAD_LETTER_CAUSES`, a bounded metric label); ``alert`` is to be sent."""

    refused: str | None = None
    cause: str | None = None
    alert: Alert | None = None


DEAD_LETTER_CAUSES = ("tombstone", "too_large", "invalid", "late", "out_of_time_bounds")


def refused_by_schema(reason: str) -> Intake:
    too_large = reason.startswith("event of ") and "exceeds the limit" in reason
    return Intake(refused=reason, cause="too_large" if too_large else "invalid")


def refused_by_time(reason: str) -> Intake:
    return Intake(refused=reason, cause="late" if reason.startswith("late event") else "out_of_time_bounds")


def unconfigured_model_alert(model: str, first_seen: datetime) -> Alert:
    """Said once per model and worker: its events are judged on the default limits."""
    defaults = MetricSettings()
    return Alert(
        alert_id=unconfigured_model_alert_id(model),
        kind="unconfigured_model",
        model=model,
        window_start=first_seen,
        window_end=first_seen,
        text=(
            f":grey_question: driftline: events for model *{model}* arrive but it has no monitor config; its "
            f"windows use the defaults (window {defaults.window}, error rate > {defaults.error_rate}, no latency "
            "limit). Add a config file for it to set its own."
        ),
    )


COUNTED = Intake()


@dataclass
class PredictionIntake:
    configs: dict[str, MonitorConfig]
    max_bytes: int  # Settings.max_event_bytes
    unconfigured: dict[str, int] = field(default_factory=dict)  # model -> events counted; flagged once each
    counted: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, version) -> counted since drained
    duplicates: int = 0  # copies skipped since drained

    def drain(self) -> tuple[dict[tuple[str, str], int], int]:
        """Events counted per model and version, and copies skipped, since the last call (the worker's metrics)."""
        counted, duplicates = self.counted, self.duplicates
        self.counted, self.duplicates = {}, 0
        return counted, duplicates

    def take(
        self,
        accumulator: PartitionAccumulator,
        offset: int,
        raw: bytes | None,
        broker_time: datetime | None,
        now: datetime | None = None,
    ) -> Intake:
        """Fold the message at ``offset`` of the accumulator's partition in, or say why not (``now``: the reader's
        clock, see :meth:`PartitionAccumulator.add`)."""
        if raw is None:
            accumulator.refuse(offset)
            return Intake(refused=TOMBSTONE_REASON, cause="tombstone")
        try:
            prediction = read_prediction(raw, max_bytes=self.max_bytes)
        except EventError as exc:
            accumulator.refuse(offset)
            return refused_by_schema(exc.reason)
        copies_before = accumulator.copies_skipped
        refused = accumulator.add(prediction, offset, broker_time, now)
        if refused:
            return refused_by_time(refused)
        if accumulator.copies_skipped != copies_before:
            self.duplicates += 1
            return COUNTED  # a copy of an event already counted: nothing to say, nothing counted
        key = (prediction.model, prediction.model_version)
        self.counted[key] = self.counted.get(key, 0) + 1
        if prediction.model in self.configs:
            return COUNTED
        seen = self.unconfigured[prediction.model] = self.unconfigured.get(prediction.model, 0) + 1
        return Intake(alert=unconfigured_model_alert(prediction.model, prediction.event_time) if seen == 1 else None)
