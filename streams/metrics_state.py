"""The metrics agent's state, free of Faust so it can be unit-tested.

Windows are tumbling and keyed by model, version and window start. A window
closes when the watermark passes its end: the watermark is the largest event
time seen minus the allowed lateness, and, when no event has arrived for
``idle_close_after``, at least the wall clock minus the allowed lateness (so
the last windows of a quiet stream close too). An event for a window that has
already closed is *late*: it is handed back to the caller (who dead-letters it)
rather than silently changing a published figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from driftline.schemas.events import PredictionEvent
from driftline.schemas.records import WindowMetrics
from driftline.streams.windows import WindowAggregate, window_start

WindowKey = tuple[str, str, datetime]


@dataclass
class MetricsState:
    window_for_model: Callable[[str], timedelta]
    allowed_lateness: timedelta  # Settings.allowed_lateness_seconds
    idle_close_after: float  # Settings.idle_close_seconds
    clock: Callable[[], float] = time.time
    open_windows: dict[WindowKey, WindowAggregate] = field(default_factory=dict)
    closed_until: dict[tuple[str, str], datetime] = field(default_factory=dict)
    max_event_time: datetime | None = None
    last_event_wall_time: float | None = None

    def add(self, event: PredictionEvent, partition: int) -> str | None:
        """Count one event; returns a reason when it is late and was *not* counted."""
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
        if self.max_event_time is None or event.event_time > self.max_event_time:
            self.max_event_time = event.event_time
        self.last_event_wall_time = self.clock()
        return None

    def watermark(self) -> datetime | None:
        candidates = []
        if self.max_event_time is not None:
            candidates.append(self.max_event_time - self.allowed_lateness)
        if self.last_event_wall_time is not None and self.clock() - self.last_event_wall_time >= self.idle_close_after:
            candidates.append(datetime.fromtimestamp(self.clock(), tz=UTC) - self.allowed_lateness)
            # A quiet stream whose events are all in the past: everything seen is complete.
            if self.max_event_time is not None:
                candidates.append(
                    max(a.window_end for a in self.open_windows.values()) if self.open_windows else self.max_event_time
                )
        return max(candidates) if candidates else None

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
