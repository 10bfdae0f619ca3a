from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.schemas.events import PredictionEvent
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
        clock=clock,
    )


def test_window_closes_when_the_watermark_passes_its_end():
    clock = Clock()
    state = make_state(clock)
    for second in range(0, 60, 2):  # 30 events in the first minute, 3 errors
        assert state.add(event(second, error="E" if second % 20 == 0 else None), partition=(second // 2) % 4) is None
    state.add(event(65), partition=0)
    assert state.close_ready() == []  # watermark 55 s: the first window is still open
    state.add(event(71), partition=1)
    [snapshot] = state.close_ready()  # watermark 61 s
    assert (snapshot.count, snapshot.errors) == (30, 3)
    assert snapshot.window_start == T0
    assert snapshot.partitions == [0, 1, 2, 3]


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
