"""The metrics agent's state, free of Faust so it can be unit-tested.

Windows are tumbling and keyed by model, version and window start.

**Watermarks are per source partition.** Each partition's watermark is the
largest event time read from it minus the allowed lateness; a window closes
when the watermark of *every* partition the worker reads has passed its end.
So a backlog read faster on one partition than on another cannot close a
window whose events are still waiting on the slow one. A partition that
has delivered nothing for ``idle_close_after`` seconds of wall time is caught
up and stops holding windows back; a partition assigned but not yet read
holds them back until it delivers or goes idle. When every partition is idle,
everything seen is complete and all open windows close (the last windows of
a quiet stream).

**Time is bounded.** An event stamped further than ``max_event_age`` before, or
``max_event_future`` after, the time the broker recorded for it is refused
with a reason and never moves a watermark (one event stamped 2099 cannot close
every window). An event for a window that has already closed is *late*: it is
refused too, rather than silently changing a published figure. The caller
dead-letters refused events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from driftline.schemas.events import EventLimits, PredictionEvent
from driftline.schemas.records import WindowMetrics
from driftline.streams.windows import WindowAggregate, window_start

WindowKey = tuple[str, str, datetime]


@dataclass
class PartitionProgress:
    """How far one source partition has been read, in event time and in wall time."""

    last_seen: float
    max_event_time: datetime | None = None


@dataclass
class MetricsState:
    window_for_model: Callable[[str], timedelta]
    allowed_lateness: timedelta  # Settings.allowed_lateness_seconds
    idle_close_after: float  # Settings.idle_close_seconds
    limits: EventLimits  # Settings.max_event_* (shared with ingest)
    clock: Callable[[], float] = time.time
    open_windows: dict[WindowKey, WindowAggregate] = field(default_factory=dict)
    closed_until: dict[tuple[str, str], datetime] = field(default_factory=dict)
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)

    def assign(self, partitions: Iterable[int]) -> None:
        """The partitions this worker now reads; new ones hold windows back until they deliver or go idle."""
        wanted = set(partitions)
        now = self.clock()
        for partition in wanted - set(self.partitions):
            self.partitions[partition] = PartitionProgress(last_seen=now)
        for partition in set(self.partitions) - wanted:
            del self.partitions[partition]

    def out_of_bounds(self, event: PredictionEvent, broker_time: datetime | None) -> str | None:
        """Why an event's time is not believable next to the broker's time for it; ``None`` when it is."""
        return self.limits.time_problem(event.event_time, broker_time)

    def add(self, event: PredictionEvent, partition: int, broker_time: datetime | None = None) -> str | None:
        """Count one event; returns a reason when it was *not* counted (out of time bounds, or late)."""
        now = self.clock()
        progress = self.partitions.setdefault(partition, PartitionProgress(last_seen=now))
        progress.last_seen = now
        reason = self.out_of_bounds(event, broker_time)
        if reason:
            return reason
        size = self.window_for_model(event.model)
        start = window_start(event.event_time, size)
        closed = self.closed_until.get((event.model, event.model_version))
        if closed is not None and start < closed:
            return (
                f"late event: event_time {event.event_time.isoformat()} falls in window starting "
                f"{start.isoformat()}, already closed and published (windows up to {closed.isoformat()} are final); "
                "send events within the allowed lateness or raise DRIFTLINE_ALLOWED_LATENESS_SECONDS"
            )
        key = (event.model, event.model_version, start)
        aggregate = self.open_windows.get(key)
        if aggregate is None:
            aggregate = self.open_windows[key] = WindowAggregate(event.model, event.model_version, start, start + size)
        aggregate.add(event.latency_ms, event.error is not None)
        aggregate.partitions.add(partition)
        if progress.max_event_time is None or event.event_time > progress.max_event_time:
            progress.max_event_time = event.event_time
        return None

    def watermark(self) -> datetime | None:
        """Windows ending at or before this are complete; ``None`` while nothing can be said."""
        if not self.partitions:
            return None
        now = self.clock()
        active = [p for p in self.partitions.values() if now - p.last_seen < self.idle_close_after]
        if active:
            times = [p.max_event_time for p in active]
            if any(t is None for t in times):
                return None  # an assigned partition has not delivered yet: it may hold the oldest events
            return min(t for t in times if t is not None) - self.allowed_lateness
        # Every partition is idle: everything seen is complete.
        seen = [p.max_event_time for p in self.partitions.values() if p.max_event_time is not None]
        candidates = [datetime.fromtimestamp(now, tz=UTC) - self.allowed_lateness, *seen]
        candidates += [a.window_end for a in self.open_windows.values()]
        return max(candidates)

    def close_ready(self) -> list[WindowMetrics]:
        """Snapshots of the windows the watermark has passed, oldest first; they leave the state."""
        watermark = self.watermark()
        if watermark is None:
            return []
        ready = sorted(
            (k for k, a in self.open_windows.items() if a.window_end <= watermark), key=lambda k: (k[2], k[0], k[1])
        )
        snapshots = []
        for key in ready:
            aggregate = self.open_windows.pop(key)
            model_key = (aggregate.model, aggregate.model_version)
            self.closed_until[model_key] = max(
                self.closed_until.get(model_key, aggregate.window_end), aggregate.window_end
            )
            snapshots.append(aggregate.snapshot())
        return snapshots
