"""The window merger: one per worker group, combining every source partition's partial windows. Pure.

It reads :class:`PartitionReport` records from the window-reports topic (one
partition, so one worker of the group runs it and sees every report in order)
and publishes a window of a model version once the watermark of *every* source
partition has passed the window's end. A window's figures are the merge of the
partitions' partial windows (counts add, the latency sketches merge exactly),
so N workers give the same windows as one, and a hot model spread over many
partitions is judged, and alerted on, once, on the whole window.

A report can arrive twice: a worker killed after sending it and before saving
its checkpoint sends it again after the restart, with the same content (see
partition_state.py). A partial window that is already pending is replaced by
its copy; one for a window already published is ignored (``ignored`` counts
them), so nothing is counted twice. The merger's own state is saved after each
publish (:meth:`checkpoint`); a restarted merger skips the report offsets it
already holds, and re-publishes at most the windows of its last unsaved batch,
with the same figures and the same alert ids (delivery deduplicates by id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from driftline.schemas.records import WindowMetrics, WindowPerformance
from driftline.schemas.worker_state import MergerCheckpoint, PartitionReport
from driftline.streams.label_join import merge_performance
from driftline.streams.prediction_drift import PredictionMonitors
from driftline.streams.rollouts.control import RolloutController
from driftline.streams.thresholds import StreamAlerts
from driftline.streams.windows import merge_snapshots

WindowKey = tuple[str, str, datetime]


@dataclass
class WindowMerger:
    topic: str  # the window-reports topic
    source_partitions: int  # partitions of the predictions topic; grows if a report names a higher one
    last_offset: int = -1
    watermarks: dict[int, datetime] = field(default_factory=dict)
    pending: dict[WindowKey, dict[int, WindowMetrics]] = field(default_factory=dict)
    closed_through: datetime | None = None
    ignored: int = 0
    alerts: StreamAlerts = field(default_factory=StreamAlerts)  # incidents of the published windows
    # The late-label join's performance windows, merged the same way (streams/label_join.py).
    pending_performance: dict[WindowKey, dict[int, WindowPerformance]] = field(default_factory=dict)
    performance_watermarks: dict[int, datetime] = field(default_factory=dict)
    performance_closed_through: datetime | None = None
    predictions: PredictionMonitors = field(default_factory=PredictionMonitors)  # online drift per version
    rollouts: RolloutController = field(default_factory=RolloutController)  # rollouts' stage evidence

    def already_taken(self, offset: int) -> bool:
        return offset <= self.last_offset

    def take(self, report: PartitionReport, offset: int) -> None:
        self.last_offset = max(self.last_offset, offset)
        self.source_partitions = max(self.source_partitions, report.partition + 1)
        for partial in report.closed:
            if self.closed_through is not None and partial.window_end <= self.closed_through:
                self.ignored += 1  # a copy of a partial already published (a replay after a crash)
                continue
            key = (partial.model, partial.model_version, partial.window_start)
            self.pending.setdefault(key, {})[report.partition] = partial
        if report.watermark is not None:
            known = self.watermarks.get(report.partition)
            self.watermarks[report.partition] = report.watermark if known is None else max(known, report.watermark)
        for performance in report.performance:
            end = performance.window_end + timedelta(seconds=performance.label_deadline_seconds)
            if self.performance_closed_through is not None and end <= self.performance_closed_through:
                self.ignored += 1
                continue
            key = (performance.model, performance.model_version, performance.window_start)
            self.pending_performance.setdefault(key, {})[report.partition] = performance
        if report.performance_through is not None:
            known = self.performance_watermarks.get(report.partition)
            through = report.performance_through
            self.performance_watermarks[report.partition] = through if known is None else max(known, through)

    def close_ready_performance(self) -> list[WindowPerformance]:
        """The merged performance windows every partition has closed (end + deadline passed), oldest first."""
        if any(p not in self.performance_watermarks for p in range(self.source_partitions)):
            return []
        through = min(self.performance_watermarks[p] for p in range(self.source_partitions))
        ready = []
        for key, parts in self.pending_performance.items():
            first = next(iter(parts.values()))
            if first.window_end + timedelta(seconds=first.label_deadline_seconds) <= through:
                ready.append(key)
        ready.sort(key=lambda key: (key[2], key[0], key[1]))
        merged = [
            merge_performance([parts[p] for p in sorted(parts)]) for parts in map(self.pending_performance.pop, ready)
        ]
        closed = self.performance_closed_through
        self.performance_closed_through = through if closed is None else max(closed, through)
        return merged

    def watermark(self) -> datetime | None:
        """Windows ending at or before this are complete on every source partition; ``None`` until each
        partition has reported a watermark."""
        if any(p not in self.watermarks for p in range(self.source_partitions)):
            return None
        return min(self.watermarks[p] for p in range(self.source_partitions))

    def waiting_on(self) -> list[int]:
        """Source partitions that hold the oldest pending window back (for logs and the health page)."""
        if not self.pending:
            return []
        oldest_end = min(next(iter(parts.values())).window_end for parts in self.pending.values())
        return [p for p in range(self.source_partitions) if p not in self.watermarks or self.watermarks[p] < oldest_end]

    def close_ready(self) -> list[WindowMetrics]:
        """The merged windows every partition has passed, oldest first; they leave the state."""
        watermark = self.watermark()
        if watermark is None:
            return []
        ready = sorted(
            (key for key, parts in self.pending.items() if next(iter(parts.values())).window_end <= watermark),
            key=lambda key: (key[2], key[0], key[1]),
        )
        merged = [merge_snapshots(self.pending.pop(key).values())[0] for key in ready]
        self.closed_through = watermark if self.closed_through is None else max(self.closed_through, watermark)
        return merged

    def checkpoint(self) -> MergerCheckpoint:
        return MergerCheckpoint(
            topic=self.topic,
            last_offset=self.last_offset,
            source_partitions=self.source_partitions,
            watermarks={str(p): t for p, t in sorted(self.watermarks.items())},
            pending=[partial for key in sorted(self.pending) for _, partial in sorted(self.pending[key].items())],
            closed_through=self.closed_through,
            incidents=self.alerts.state()[0],
            recovered=self.alerts.state()[1],
            prediction_monitors=self.predictions.state(),
            rollouts=self.rollouts.state(),
            pending_performance=[
                partial
                for key in sorted(self.pending_performance)
                for _, partial in sorted(self.pending_performance[key].items())
            ],
            performance_watermarks={str(p): t for p, t in sorted(self.performance_watermarks.items())},
            performance_closed_through=self.performance_closed_through,
        )

    def restore(self, checkpoint: MergerCheckpoint) -> None:
        self.last_offset = checkpoint.last_offset
        self.source_partitions = max(self.source_partitions, checkpoint.source_partitions)
        self.watermarks = {int(p): t for p, t in checkpoint.watermarks.items()}
        self.closed_through = checkpoint.closed_through
        self.alerts = StreamAlerts()
        self.alerts.restore(checkpoint.incidents, checkpoint.recovered)
        self.predictions = PredictionMonitors()
        self.predictions.restore(checkpoint.prediction_monitors)
        self.rollouts = RolloutController()
        self.rollouts.restore(checkpoint.rollouts)
        self.performance_watermarks = {int(p): t for p, t in checkpoint.performance_watermarks.items()}
        self.performance_closed_through = checkpoint.performance_closed_through
        self.pending_performance = {}
        for performance in checkpoint.pending_performance:
            [partition] = performance.partitions
            key = (performance.model, performance.model_version, performance.window_start)
            self.pending_performance.setdefault(key, {})[partition] = performance
        self.pending = {}
        for partial in checkpoint.pending:
            [partition] = partial.partitions  # a partial window holds one partition's events
            self.pending.setdefault((partial.model, partial.model_version, partial.window_start), {})[partition] = (
                partial
            )
