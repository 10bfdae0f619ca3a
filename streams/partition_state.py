"""One source partition's share of the window metrics, free of Faust so it can be unit-tested.

The stream worker keeps one :class:`PartitionAccumulator` per partition of the
predictions topic it reads, and a :class:`~driftline.streams.merger.WindowMerger`
combines their partial windows into the published ones. Together they make the
metrics exact whatever the number of workers, the order in which a backlog is
read, or where a worker was killed:

**Event time per partition.** A partition's watermark is the largest event time
read from it minus the allowed lateness. An event whose window ends at or
before the watermark is *late*: it is refused (the caller dead-letters it with
the reason) instead of silently changing a figure. When the watermark passes a
window's end, the partition's part of that window is *closed* and goes to the
merger in a :class:`PartitionReport`, with the watermark. The merger publishes a
window once every partition's watermark has passed it, so a partition read
faster than another cannot close a window whose events still wait on the slow
one. Whether an event counts depends only on the events before it in its
partition, so a replay after a crash decides the same for every event.

**Idle partitions.** A partition that has delivered nothing for
``Settings.idle_close_seconds`` is caught up; :meth:`mark_idle` raises its
watermark to the wall clock minus the allowed lateness, so the last windows of
a quiet stream close, and a partition that has no events at all does not hold
the others back.

**Time is bounded.** An event stamped further than ``max_event_age`` before, or
``max_event_future`` after, the time the broker recorded for it is refused
with a reason and never moves a watermark (one event stamped 2099 cannot close
every window).

**Copies of an event.** A producer that retries after a lost acknowledgement
(any non-idempotent Kafka producer, the embedded one included) can write an
event twice; the copy lands on the same partition (same key) shortly after.
The accumulator remembers the request ids of the last ``dedupe_horizon`` events
it counted (``DRIFTLINE_DEDUPE_HORIZON``, in the checkpoint too) and does not
count a copy again; ``copies_skipped`` says how many it met.

**Crash safety.** :meth:`checkpoint` holds everything above plus the last
offset folded in. The worker saves it after every batch, once the batch's
reports and dead letters are delivered and before the batch's offsets can be
committed; a restarted worker resumes from it and skips every offset it
already holds (:meth:`already_counted`). The worker commits, on the source
topic, only the offset after a saved checkpoint, and counts offsets one after
the other: a message past :attr:`next_offset` (:meth:`skips_ahead`) is either a
gap the broker confirms or a consumer moved past messages never counted, which
the worker answers with a restart at the checkpoint. So no event is lost and
none is counted twice (the checkpoint says which offsets it holds).
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from driftline.schemas.events import EventLimits, PredictionEvent, PredictionRecord
from driftline.schemas.records import WindowMetrics, WindowPerformance
from driftline.schemas.worker_state import PartitionCheckpoint, PartitionReport
from driftline.streams.label_join import LabelJoin
from driftline.streams.progress import PartitionProgress
from driftline.streams.windows import WindowAggregate, answers_agree, window_start

WindowKey = tuple[str, str, datetime]


@dataclass
class PartitionAccumulator(PartitionProgress):
    topic: str
    partition: int
    window_for_model: Callable[[str], timedelta]
    allowed_lateness: timedelta  # Settings.allowed_lateness_seconds
    limits: EventLimits  # Settings.max_event_* (shared with ingest)
    last_offset: int = -1
    max_event_time: datetime | None = None
    idle_watermark: datetime | None = None
    open_windows: dict[WindowKey, WindowAggregate] = field(default_factory=dict)
    dedupe_horizon: int = 20_000  # Settings.dedupe_horizon
    copies_skipped: int = 0
    join: LabelJoin | None = None  # the late-label join of this partition number (streams/label_join.py)
    _recent: deque[bytes] = field(default_factory=deque, repr=False)
    _recent_set: set[bytes] = field(default_factory=set, repr=False)
    # Shadow agreement: the live answers of the last ``dedupe_horizon`` requests of models that have shadows (a
    # model joins the set with its first shadow prediction), by request id; in memory only (see _pair).
    _shadowed: set[str] = field(default_factory=set, repr=False)
    _live_answers: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _last_window: tuple[timedelta, datetime, datetime] | None = field(default=None, repr=False)

    @property
    def latest_time(self) -> datetime | None:
        return self.max_event_time

    def add(
        self,
        event: PredictionRecord | PredictionEvent,
        offset: int,
        broker_time: datetime | None = None,
        now: datetime | None = None,
    ) -> str | None:
        """Count one event; returns a reason when it was *not* counted (out of time bounds, or late). ``now`` is
        the reader's clock (default: read it), which bounds how far ahead an event may be stamped."""
        self.refuse(offset)
        reason = self.limits.time_problem(event.event_time, broker_time, now)
        if reason:
            return reason
        size = self.window_for_model(event.model)
        start = self._window_start(event.event_time, size)
        watermark = self.watermark
        if watermark is not None and start + size <= watermark:
            return (
                f"late event: event_time {event.event_time.isoformat()} falls in window starting "
                f"{start.isoformat()}, already closed on partition {self.partition} (its watermark is "
                f"{watermark.isoformat()}); send events within the allowed lateness or raise "
                "DRIFTLINE_ALLOWED_LATENESS_SECONDS"
            )
        # A shadow copy shares its request's id: it is told apart by its version, so neither hides the other.
        identity = f"{event.request_id}\x00shadow\x00{event.model_version}" if event.shadow else event.request_id
        digest = hashlib.blake2b(identity.encode(), digest_size=8).digest()
        if digest in self._recent_set:
            self.copies_skipped += 1
            return None  # a copy of an event already counted: not an error, not counted again
        self._remember(digest)
        key = (event.model, event.model_version, start)
        aggregate = self.open_windows.get(key)
        if aggregate is None:
            aggregate = self.open_windows[key] = WindowAggregate(event.model, event.model_version, start, start + size)
        aggregate.add(
            event.latency_ms,
            event.error,
            prediction=event.prediction,
            fallback=event.fallback,
            sample_rate=event.sample_rate,
        )
        if event.shadow or event.model in self._shadowed:
            self._pair(event, aggregate)
        aggregate.partitions.add(self.partition)
        if self.join is not None and not event.shadow:  # a label is joined to the answer the caller got
            self.join.expect(event.request_id, event.model, event.model_version, start, start + size, event.prediction)
        # Time moves on by the event's time, but never past the broker's time for it: an event stamped minutes
        # ahead (within the future bound) must not close windows that on-time events of this partition still fill.
        progress = event.event_time if broker_time is None else min(event.event_time, broker_time)
        if self.max_event_time is None or progress > self.max_event_time:
            self.max_event_time = progress
        return None

    def _window_start(self, event_time: datetime, size: timedelta) -> datetime:
        """:func:`window_start`, remembering the last window: most events of a partition fall in the same one."""
        last = self._last_window
        if last is not None and last[0] == size and last[1] <= event_time < last[2]:
            return last[1]
        start = window_start(event_time, size)
        self._last_window = (size, start, start + size)
        return start

    def _pair(self, event: PredictionRecord | PredictionEvent, aggregate: WindowAggregate) -> None:
        """Compare a shadow prediction with the live answer to its request (logged before it, as serving code
        does, on the same partition: both are keyed by request id). Live answers are kept in memory only: after a
        restart, the shadows of requests answered before it are not compared (counted neither way)."""
        key = (event.model, event.request_id)
        if not event.shadow:
            self._live_answers[key] = event.prediction
            if len(self._live_answers) > self.dedupe_horizon:
                self._live_answers.pop(next(iter(self._live_answers)))
            return
        self._shadowed.add(event.model)
        if key in self._live_answers:
            aggregate.shadow_pairs += 1
            aggregate.shadow_agreements += answers_agree(self._live_answers[key], event.prediction)

    def _remember(self, digest: bytes) -> None:
        self._recent.append(digest)
        self._recent_set.add(digest)
        while len(self._recent) > self.dedupe_horizon:
            self._recent_set.discard(self._recent.popleft())

    def close_ready(self) -> list[WindowMetrics]:
        """This partition's parts of the windows its watermark has passed, oldest first; they leave the state."""
        watermark = self.watermark
        if watermark is None:
            return []
        ready = sorted((k for k, a in self.open_windows.items() if a.window_end <= watermark), key=_window_order)
        return [self.open_windows.pop(key).snapshot() for key in ready]

    def close_performance(self) -> list[WindowPerformance]:
        """The late-label join's closed performance windows (none without a join)."""
        return self.join.close_ready(self.watermark) if self.join is not None else []

    def report(
        self, closed: list[WindowMetrics], performance: list[WindowPerformance] | None = None
    ) -> PartitionReport:
        return PartitionReport(
            topic=self.topic,
            partition=self.partition,
            last_offset=self.last_offset,
            watermark=self.watermark,
            closed=closed,
            performance=performance or [],
            performance_through=self.join.performance_through(self.watermark) if self.join is not None else None,
        )

    def checkpoint(self) -> PartitionCheckpoint:
        return PartitionCheckpoint(
            topic=self.topic,
            partition=self.partition,
            last_offset=self.last_offset,
            max_event_time=self.max_event_time,
            idle_watermark=self.idle_watermark,
            open_windows=[self.open_windows[key].snapshot() for key in sorted(self.open_windows, key=_window_order)],
            recent_request_ids=base64.b64encode(b"".join(self._recent)).decode(),
            label_join=self.join.state() if self.join is not None else None,
        )

    def restore(self, checkpoint: PartitionCheckpoint) -> None:
        """Continue from a saved state (the worker's own, or another worker's before a rebalance)."""
        if (checkpoint.topic, checkpoint.partition) != (self.topic, self.partition):
            raise ValueError(
                f"checkpoint of {checkpoint.topic}[{checkpoint.partition}] given to {self.topic}[{self.partition}]"
            )
        self.last_offset = checkpoint.last_offset
        self.max_event_time = checkpoint.max_event_time
        self.idle_watermark = checkpoint.idle_watermark
        self._recent, self._recent_set = deque(), set()
        packed = base64.b64decode(checkpoint.recent_request_ids)
        for start in range(0, len(packed), 8):
            self._remember(packed[start : start + 8])
        if self.join is not None and checkpoint.label_join is not None:
            self.join.restore(checkpoint.label_join)
        self.open_windows = {}
        for snapshot in checkpoint.open_windows:
            aggregate = WindowAggregate.from_snapshot(snapshot)
            self.open_windows[(aggregate.model, aggregate.model_version, aggregate.window_start)] = aggregate


def _window_order(key: WindowKey) -> tuple[datetime, str, str]:
    model, version, start = key
    return start, model, version
