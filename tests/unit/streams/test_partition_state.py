from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.schemas.events import EventLimits, PredictionEvent
from driftline.schemas.worker_state import PartitionCheckpoint
from driftline.streams.partition_state import PartitionAccumulator

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
LIMITS = EventLimits(max_bytes=2000, max_age=timedelta(days=1), max_future=timedelta(minutes=5))


def event(
    seconds: float, latency: float = 10.0, error: str | None = None, version: str = "v1", request_id: str = ""
) -> PredictionEvent:
    return PredictionEvent(
        model="m",
        model_version=version,
        request_id=request_id or f"r{seconds}-{version}",
        event_time=T0 + timedelta(seconds=seconds),
        features={},
        prediction=1,
        latency_ms=latency,
        error=error,
    )


def accumulator(partition: int = 0) -> PartitionAccumulator:
    return PartitionAccumulator(
        topic="predictions",
        partition=partition,
        window_for_model=lambda model: timedelta(minutes=1),
        allowed_lateness=timedelta(seconds=10),
        limits=LIMITS,
    )


def test_a_partial_window_closes_when_the_partitions_watermark_passes_its_end():
    acc = accumulator(3)
    for offset, second in enumerate(range(0, 60, 2)):
        assert acc.add(event(second, error="E" if second % 20 == 0 else None), offset) is None
    acc.add(event(69), 30)
    assert acc.close_ready() == []  # watermark 59 s: the first minute may still get events
    acc.add(event(70), 31)
    [partial] = acc.close_ready()  # watermark 60 s = its end
    assert (partial.count, partial.errors, partial.partitions) == (30, 3, [3])
    assert partial.window_start == T0
    report = acc.report([partial])
    assert (report.partition, report.last_offset, report.watermark) == (3, 31, T0 + timedelta(seconds=60))


def test_late_events_are_refused_with_a_reason_and_on_time_ones_still_count():
    acc = accumulator()
    acc.add(event(5), 0)
    acc.add(event(75), 1)
    assert len(acc.close_ready()) == 1
    reason = acc.add(event(30), 2)
    assert reason is not None and "already closed on partition 0" in reason
    assert "DRIFTLINE_ALLOWED_LATENESS_SECONDS" in reason  # names a setting that exists
    assert acc.add(event(66), 3) is None  # the second minute is still open (watermark 65 s)
    assert acc.last_offset == 3  # refused offsets are held too: a replay skips them


def test_an_event_stamped_years_ahead_is_refused_and_moves_no_watermark():
    acc = accumulator()
    received = T0 + timedelta(seconds=30)
    acc.add(event(5), 0, broker_time=received)
    future = event(0).model_copy(update={"event_time": datetime(2099, 1, 1, tzinfo=UTC)})
    reason = acc.add(future, 1, broker_time=received)
    assert reason is not None and reason.startswith("event_time 2099-01-01T00:00:00+00:00 is ")
    assert "DRIFTLINE_MAX_EVENT_FUTURE_SECONDS" in reason
    assert "DRIFTLINE_MAX_EVENT_AGE_SECONDS" in (acc.add(event(-3 * 86400), 2, broker_time=received) or "")
    assert acc.watermark == T0 - timedelta(seconds=5)  # still 5 s - 10 s
    assert acc.add(event(20), 3, broker_time=received) is None  # on-time events keep counting
    assert sum(a.count for a in acc.open_windows.values()) == 2


def test_an_event_stamped_ahead_within_the_bound_moves_time_only_as_far_as_the_broker():
    acc = accumulator()
    received = T0 + timedelta(seconds=30)
    ahead = event(0).model_copy(update={"event_time": received + timedelta(minutes=4)})
    assert acc.add(ahead, 0, broker_time=received) is None  # within the 5 minutes allowed: counted
    assert acc.watermark == received - timedelta(seconds=10)  # the broker's time, not the event's, less lateness
    assert acc.add(event(25), 1, broker_time=received) is None  # an on-time event of the same minute still counts
    assert sum(a.count for a in acc.open_windows.values()) == 2


def test_an_idle_partition_closes_its_windows_by_the_wall_clock():
    acc = accumulator()
    assert acc.watermark is None and acc.close_ready() == []  # nothing said yet: it holds the merger back
    acc.add(event(5), 0)
    assert acc.mark_idle(T0 + timedelta(seconds=65)) is True  # now - 10 s = 55 s: the first minute is still open
    assert acc.close_ready() == []
    assert acc.mark_idle(T0 + timedelta(seconds=64)) is False  # the wall clock never moves it back
    acc.mark_idle(T0 + timedelta(seconds=70))
    [partial] = acc.close_ready()
    assert partial.count == 1


def test_a_checkpoint_restores_everything_and_tells_which_offsets_are_held():
    acc = accumulator(2)
    for offset, second in enumerate([1, 2, 61, 62, 3]):
        acc.add(event(second, latency=float(offset + 1)), offset)
    saved = PartitionCheckpoint.parse(acc.checkpoint().to_json())  # through its wire form
    again = accumulator(2)
    again.restore(saved)
    assert again.already_counted(4) and not again.already_counted(5)
    assert again.checkpoint().model_dump(exclude={"saved_at"}) == acc.checkpoint().model_dump(exclude={"saved_at"})
    assert again.add(event(64), 5) is None
    assert again.watermark == T0 + timedelta(seconds=54)


def test_a_copy_of_an_event_is_counted_once_also_after_a_restore():
    acc = accumulator()
    acc.dedupe_horizon = 3
    first = event(1)
    assert acc.add(first, 0) is None
    assert acc.add(first, 1) is None  # a producer's retry wrote it again
    assert acc.copies_skipped == 1 and sum(a.count for a in acc.open_windows.values()) == 1
    again = accumulator()
    again.dedupe_horizon = 3
    again.restore(PartitionCheckpoint.parse(acc.checkpoint().to_json()))
    assert again.add(first, 2) is None and again.copies_skipped == 1  # remembered through the checkpoint
    for offset, second in enumerate([2, 3, 4], start=3):
        again.add(event(second), offset)
    assert again.add(first, 6) is None  # beyond the horizon of 3: counted again
    assert sum(a.count for a in again.open_windows.values()) == 5


def test_offsets_are_counted_one_after_the_other_and_a_gap_is_seen():
    acc = accumulator()
    assert acc.next_offset == 0 and not acc.skips_ahead(0) and acc.skips_ahead(1)
    for offset in range(3):
        acc.add(event(offset), offset)
    assert acc.next_offset == 3
    assert acc.already_counted(2) and not acc.skips_ahead(3)
    assert acc.skips_ahead(4)  # offset 3 was never counted: the worker rewinds instead of counting 4
    acc.skip_to(10)  # the broker deleted offsets 3 to 9 (retention)
    assert acc.next_offset == 10 and acc.already_counted(9) and not acc.skips_ahead(10)
    acc.skip_to(5)  # never backwards
    assert acc.next_offset == 10


def test_a_shadow_copy_of_a_request_counts_for_its_own_version_and_a_copy_of_it_once():
    acc = accumulator()
    live = event(1, request_id="req-1")
    shadow = event(1, latency=30.0, version="v2", request_id="req-1").model_copy(update={"shadow": True})
    for offset, item in enumerate([live, shadow, shadow, live]):
        assert acc.add(item, offset) is None
    assert acc.copies_skipped == 2
    counts = {key[1]: window.count for key, window in acc.open_windows.items()}
    assert counts == {"v1": 1, "v2": 1}


def test_shadow_answers_are_compared_with_the_live_answer_to_the_same_request():
    acc = accumulator()
    answers = [(0.9, 0.8), (0.2, 0.7), (0.6, 0.55), (0.1, 0.3)]  # agree, disagree, agree, agree
    offset = 0
    for n, (live, shadow) in enumerate(answers):
        first = event(1, request_id=f"q{n}").model_copy(update={"prediction": live})
        copy = event(1, version="v2", request_id=f"q{n}").model_copy(update={"prediction": shadow, "shadow": True})
        for item in (first, copy) if n else (copy, first):  # the first shadow comes before its live answer
            assert acc.add(item, offset) is None
            offset += 1
    shadow_window = next(w for key, w in acc.open_windows.items() if key[1] == "v2")
    # The first request's shadow came first, before the model was known to have shadows: not compared.
    assert (shadow_window.shadow_pairs, shadow_window.shadow_agreements) == (3, 2)
    [snapshot] = [w.snapshot() for key, w in acc.open_windows.items() if key[1] == "v2"]
    assert (snapshot.shadow_pairs, snapshot.shadow_agreements) == (3, 2)


def test_answers_agree_by_kind():
    from driftline.streams.windows import answers_agree

    assert answers_agree(0.7, 0.51) and not answers_agree(0.7, 0.49)  # scores: the same side of 0.5
    assert answers_agree(100.0, 100.9) and not answers_agree(100.0, 102.0)  # numbers: within 1 %
    assert answers_agree("cat", "cat") and not answers_agree("cat", "dog")
    assert answers_agree(True, "true") and answers_agree(1, 1) and not answers_agree(0, 1)
