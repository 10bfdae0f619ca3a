from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.schemas.events import EventLimits, PredictionEvent
from driftline.streams.metrics_state import MetricsState

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def event(seconds: float, latency: float = 10.0, error: str | None = None, version: str = "v1") -> PredictionEvent:
    return PredictionEvent(
        model="m",
        model_version=version,
        request_id=f"r{seconds}",
        event_time=T0 + timedelta(seconds=seconds),
        features={},
        prediction=1,
        latency_ms=latency,
        error=error,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_state(clock: Clock) -> MetricsState:
    return MetricsState(
        window_for_model=lambda model: timedelta(minutes=1),
        allowed_lateness=timedelta(seconds=10),
        idle_close_after=5.0,
        limits=EventLimits(max_bytes=2000, max_age=timedelta(days=1), max_future=timedelta(minutes=5)),
        clock=clock,
    )


def test_window_closes_when_every_partition_has_passed_its_end():
    clock = Clock()
    state = make_state(clock)
    for second in range(0, 60, 2):  # 30 events in the first minute, 3 errors, over partitions 0-3
        assert state.add(event(second, error="E" if second % 20 == 0 else None), partition=(second // 2) % 4) is None
    state.add(event(75), partition=0)
    state.add(event(75), partition=1)
    state.add(event(75), partition=2)
    assert state.close_ready() == []  # partition 3 is at 58 s: watermark 48 s, the first window is still open
    state.add(event(71), partition=3)
    [snapshot] = state.close_ready()  # watermark min(75, 75, 75, 71) - 10 = 61 s
    assert (snapshot.count, snapshot.errors) == (30, 3)
    assert snapshot.window_start == T0
    assert snapshot.partitions == [0, 1, 2, 3]


def test_a_backlog_read_unevenly_gives_the_same_windows_as_a_live_stream():
    clock = Clock()
    state = make_state(clock)
    state.assign([0, 1])  # the worker's assignment, from the rebalance
    # Partition 0 is read ten minutes ahead of partition 1 (a restart after downtime).
    for second in range(0, 600, 3):
        assert state.add(event(second), partition=0) is None
    assert state.close_ready() == []  # partition 1 has not delivered yet: it may hold the oldest events
    for second in range(1, 600, 3):
        assert state.add(event(second), partition=1) is None  # none of them is late
    closed = state.close_ready()
    assert [s.count for s in closed] == [40] * 9  # minutes 0-8 complete: 20 events from each partition
    assert all(s.partitions == [0, 1] for s in closed)


def test_an_event_stamped_years_ahead_is_refused_and_moves_no_watermark():
    clock = Clock()
    state = make_state(clock)
    received = T0 + timedelta(seconds=30)
    state.add(event(5), partition=0, broker_time=received)
    future = event(0)
    future = future.model_copy(update={"event_time": datetime(2099, 1, 1, tzinfo=UTC)})
    reason = state.add(future, partition=0, broker_time=received)
    assert reason is not None and reason.startswith("event_time 2099-01-01T00:00:00+00:00 is ")
    assert "DRIFTLINE_MAX_EVENT_FUTURE_SECONDS" in reason
    old = event(-3 * 86400)
    assert "DRIFTLINE_MAX_EVENT_AGE_SECONDS" in (state.add(old, partition=0, broker_time=received) or "")
    assert state.close_ready() == []  # the watermark is still 5 s - 10 s
    assert state.add(event(20), partition=0, broker_time=received) is None  # on-time events keep counting
    assert sum(a.count for a in state.open_windows.values()) == 2


def test_late_events_are_refused_with_a_reason():
    clock = Clock()
    state = make_state(clock)
    state.add(event(5), partition=0)
    state.add(event(75), partition=0)
    assert len(state.close_ready()) == 1
    reason = state.add(event(30), partition=0)
    assert reason is not None and "already closed" in reason
    assert "DRIFTLINE_ALLOWED_LATENESS_SECONDS" in reason  # names a setting that exists
    assert state.add(event(30, version="v2"), partition=0) is None  # other versions have their own windows


def test_an_assigned_partition_holds_windows_back_until_it_delivers_or_goes_idle():
    clock = Clock()
    state = make_state(clock)
    state.assign([0, 1])
    state.add(event(5), partition=0)
    state.add(event(90), partition=0)
    assert state.close_ready() == []  # partition 1 assigned, nothing read from it yet
    clock.now += 4
    state.add(event(95), partition=0)
    assert state.close_ready() == []
    clock.now += 2  # partition 1 silent for 6 s > 5 s: caught up, it no longer holds anything back
    assert [s.window_start for s in state.close_ready()] == [T0]
    state.assign([0])
    assert set(state.partitions) == {0}


def test_a_quiet_stream_closes_its_last_windows():
    clock = Clock()
    state = make_state(clock)
    state.add(event(5), partition=0)
    state.add(event(70), partition=0)
    assert [s.window_start for s in state.close_ready()] == [T0]  # watermark 60 s = its end
    clock.now += 4
    assert state.close_ready() == []  # not idle long enough yet
    clock.now += 2
    [snapshot] = state.close_ready()
    assert snapshot.count == 1 and snapshot.window_start == T0 + timedelta(minutes=1)
    assert state.open_windows == {}
