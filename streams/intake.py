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
from driftline.streams.partition_state import PartitionAccumulator


@dataclass(frozen=True)
class Intake:
    """The outcome for one message: ``refused`` is the dead-letter reason; ``alert`` is to be sent."""

    refused: str | None = None
    alert: Alert | None = None


def unconfigured_model_alert(model: str, first_seen: datetime) -> Alert:
    """Said once per model and worker: its events are judged on the default limits."""
    defaults = MetricSettings()
    return Alert(
        alert_id=f"unconfigured|{model}",
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
            return Intake(refused=TOMBSTONE_REASON)
        try:
            prediction = read_prediction(raw, max_bytes=self.max_bytes)
        except EventError as exc:
            accumulator.refuse(offset)
            return Intake(refused=exc.reason)
        refused = accumulator.add(prediction, offset, broker_time, now)
        if refused:
            return Intake(refused=refused)
        if prediction.model in self.configs:
            return COUNTED
        seen = self.unconfigured[prediction.model] = self.unconfigured.get(prediction.model, 0) + 1
        return Intake(alert=unconfigured_model_alert(prediction.model, prediction.event_time) if seen == 1 else None)
