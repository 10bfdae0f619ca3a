"""One source partition's progress through its topic, as the predictions' accumulator
(:class:`.partition_state.PartitionAccumulator`) and the labels' join (:class:`.label_join.LabelJoin`) both keep it.
Pure.

**Offsets** are counted one after the other: the message at :attr:`next_offset` is the only one a partition may
count next; one before it is already counted (a replay after a restart), one after it comes past a gap the worker
asks the broker about (:meth:`skips_ahead`), and a gap the broker confirms (retention deleted those messages) is
skipped (:meth:`skip_to`).

**The watermark** is the latest event time seen minus the allowed lateness, or, once the partition has been idle,
the wall clock minus the lateness (:meth:`mark_idle`), whichever is later: no later message of the partition can
fall in a window ending at or before it.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class PartitionProgress:
    """Offsets and watermark of one partition; a dataclass that inherits it declares the fields below and says
    which of its times is the latest seen (:attr:`latest_time`)."""

    last_offset: int
    idle_watermark: datetime | None
    allowed_lateness: timedelta

    @property
    def latest_time(self) -> datetime | None:
        raise NotImplementedError

    def already_counted(self, offset: int) -> bool:
        """Whether the message at ``offset`` is already folded in (a replay after a restart)."""
        return offset <= self.last_offset

    @property
    def next_offset(self) -> int:
        """The only offset this partition may count next: offsets are folded in one after the other."""
        return self.last_offset + 1

    def skips_ahead(self, offset: int) -> bool:
        """Whether the message at ``offset`` comes after messages not yet counted (a gap).

        The worker asks the broker whether the offsets in between hold messages; if they do, the consumer was
        moved past messages never counted, and the worker restarts at the checkpoint (agents.py)."""
        return offset > self.next_offset

    def skip_to(self, offset: int) -> None:
        """The broker no longer has the messages before ``offset`` (retention deleted them): go on from it."""
        self.last_offset = max(self.last_offset, offset - 1)

    def refuse(self, offset: int) -> None:
        """Record that the message at ``offset`` was seen (counted, or refused with a reason)."""
        self.last_offset = max(self.last_offset, offset)

    @property
    def watermark(self) -> datetime | None:
        """No later message of this partition can fall in a window ending at or before this."""
        candidates = [self.idle_watermark] if self.idle_watermark is not None else []
        latest = self.latest_time
        if latest is not None:
            candidates.append(latest - self.allowed_lateness)
        return max(candidates) if candidates else None

    def mark_idle(self, now: datetime) -> bool:
        """The partition delivered nothing for the idle time: everything up to ``now`` minus the lateness is
        complete. Returns whether the watermark moved."""
        candidate = now - self.allowed_lateness
        if self.idle_watermark is not None and candidate <= self.idle_watermark:
            return False
        before = self.watermark
        self.idle_watermark = candidate
        return self.watermark != before
