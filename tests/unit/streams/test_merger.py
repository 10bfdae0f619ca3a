"""The merger with the accumulators: exact windows whatever the workers, the reading order or the crash point."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from driftline.schemas.records import WindowMetrics
from driftline.schemas.worker_state import MergerCheckpoint, PartitionCheckpoint, PartitionReport
from driftline.streams.merger import WindowMerger
from driftline.streams.windows import WindowAggregate
from tests.unit.streams.test_partition_state import T0, accumulator, event

PARTITIONS = 4


def stream(seed: int = 7, seconds: int = 300) -> list[list[tuple[float, float, str | None]]]:
    """Per partition, events in event-time order: (second, latency, error) with some jitter."""
    rng = random.Random(seed)
    per_partition: list[list[tuple[float, float, str | None]]] = [[] for _ in range(PARTITIONS)]
    for i in range(seconds * 4):
        second = i / 4 + rng.uniform(-3, 3)  # out of order within the allowed lateness (10 s)
        error = "TimeoutError" if rng.random() < 0.05 else None
        per_partition[rng.randrange(PARTITIONS)].append((max(second, 0.0), rng.lognormvariate(3, 0.5), error))
    return per_partition


def exact_windows(per_partition) -> dict[tuple[str, str, object], tuple[int, int, float | None]]:
    """The figures computed directly from every event: count, errors, p95 of one sketch over the window."""
    windows: dict = {}
    for events in per_partition:
        for second, latency, error in events:
            start = T0 + timedelta(minutes=int(second // 60))
            aggregate = windows.setdefault(start, WindowAggregate("m", "v1", start, start + timedelta(minutes=1)))
            aggregate.add(latency, error)
    return {("m", "v1", start): (a.count, a.errors, a.latency.quantile(0.95)) for start, a in windows.items()}


def figures(published: list[WindowMetrics]) -> dict:
    return {(w.model, w.model_version, w.window_start): (w.count, w.errors, w.latency_p95_ms) for w in published}


def run(per_partition, order: list[int], merger: WindowMerger | None = None) -> list[WindowMetrics]:
    """Read the partitions in ``order`` (a partition per step, a batch of 7 each), reports through the merger."""
    merger = merger or WindowMerger("reports", PARTITIONS)
    accumulators = [accumulator(p) for p in range(PARTITIONS)]
    positions = [0] * PARTITIONS
    published: list[WindowMetrics] = []
    report_offset = 0
    for p in order:
        acc = accumulators[p]
        for second, latency, error in per_partition[p][positions[p] : positions[p] + 7]:
            assert acc.add(event(second, latency, error, request_id=f"{p}-{positions[p]}"), positions[p]) is None
            positions[p] += 1
        merger.take(acc.report(acc.close_ready()), report_offset)
        report_offset += 1
        published += merger.close_ready()
    for acc in accumulators:  # every partition goes quiet
        acc.mark_idle(T0 + timedelta(hours=1))
        merger.take(acc.report(acc.close_ready()), report_offset)
        report_offset += 1
    return published + merger.close_ready()


def test_a_backlog_read_in_any_order_gives_exactly_the_windows_of_the_events():
    per_partition = stream()
    expected = exact_windows(per_partition)
    steps = [p for p in range(PARTITIONS) for _ in range(len(per_partition[p]) // 7 + 1)]
    live = run(per_partition, [p for _ in range(max(len(e) for e in per_partition) // 7 + 1) for p in range(4)])
    one_partition_at_a_time = run(per_partition, steps)  # partition 0 read to its end before 1 starts, ...
    shuffled = run(per_partition, random.Random(3).sample(steps, len(steps)))
    for published in (live, one_partition_at_a_time, shuffled):
        assert figures(published) == expected
        assert len(published) == len(expected) == 6  # each window published once (jitter reaches 300 s)
        assert [w.window_start for w in published] == sorted(w.window_start for w in published)
        assert all(w.partitions == [0, 1, 2, 3] for w in published[:5])  # the sixth holds a few jittered events


def test_a_window_waits_for_every_partition_even_one_that_said_nothing():
    merger = WindowMerger("reports", 2)
    acc = accumulator(0)
    acc.add(event(5), 0)
    acc.add(event(90), 1)
    merger.take(acc.report(acc.close_ready()), 0)
    assert merger.close_ready() == [] and merger.waiting_on() == [1]
    quiet = accumulator(1)
    quiet.mark_idle(T0 + timedelta(seconds=75))  # idle with no events at all: its watermark is the wall clock's
    merger.take(quiet.report(quiet.close_ready()), 1)
    [window] = merger.close_ready()
    assert (window.count, window.partitions) == (1, [0])


def test_a_copy_of_a_report_counts_once_before_and_after_its_window_is_published():
    merger = WindowMerger("reports", 1)
    acc = accumulator(0)
    for offset, second in enumerate([5, 6, 7, 80]):
        acc.add(event(second), offset)
    report = acc.report(acc.close_ready())
    merger.take(report, 0)
    merger.take(report, 1)  # sent again by a worker restarted before its checkpoint
    [window] = merger.close_ready()
    assert window.count == 3
    merger.take(report, 2)
    assert merger.close_ready() == [] and merger.ignored == 1


def test_a_report_from_a_partition_added_to_the_topic_holds_windows_for_it():
    merger = WindowMerger("reports", 1)
    acc = accumulator(1)
    acc.add(event(100), 0)
    merger.take(acc.report([]), 0)
    assert merger.source_partitions == 2 and merger.watermark() is None


@pytest.mark.parametrize("seed", range(6))
def test_a_crash_at_any_point_then_a_restart_from_the_checkpoints_gives_the_same_windows(seed):
    """The worker's protocol: per batch, fold events in, send the report, save the checkpoint, and only then let
    the offsets be committed. A crash loses what was in memory; the restart loads the checkpoints and re-reads
    from the committed offsets (which may be far behind), skipping what the checkpoint holds."""
    per_partition = stream(seed, seconds=200)
    expected = exact_windows(per_partition)
    rng = random.Random(seed)
    steps = [p for p in range(PARTITIONS) for _ in range(len(per_partition[p]) // 7 + 1)]
    rng.shuffle(steps)
    crash_at = rng.randrange(len(steps))
    stage = rng.choice(["after_fold", "after_report", "after_checkpoint"])

    saved: dict[int, PartitionCheckpoint] = {}
    committed = [0] * PARTITIONS  # lags the checkpoint: committed every few batches only
    reports: list[PartitionReport] = []  # the reports topic, including copies
    accumulators = [accumulator(p) for p in range(PARTITIONS)]
    positions = [0] * PARTITIONS

    def step(p: int, crash_stage: str | None = None) -> bool:
        acc = accumulators[p]
        batch = per_partition[p][positions[p] : positions[p] + 7]
        for second, latency, error in batch:
            if not acc.already_counted(positions[p]):
                acc.add(event(second, latency, error, request_id=f"{p}-{positions[p]}"), positions[p])
            positions[p] += 1
        if crash_stage == "after_fold":
            return True
        reports.append(acc.report(acc.close_ready()))
        if crash_stage == "after_report":
            return True
        saved[p] = PartitionCheckpoint.parse(acc.checkpoint().to_json())
        if rng.random() < 0.3:
            committed[p] = positions[p]
        return crash_stage == "after_checkpoint"

    for index, p in enumerate(steps):
        if step(p, stage if index == crash_at else None):
            break
    # The restart: memory is gone; state comes from the checkpoints, reading from the committed offsets.
    accumulators = [accumulator(p) for p in range(PARTITIONS)]
    for p, checkpoint in saved.items():
        accumulators[p].restore(checkpoint)
    positions = list(committed)
    while any(positions[p] < len(per_partition[p]) for p in range(PARTITIONS)):
        step(rng.choice([p for p in range(PARTITIONS) if positions[p] < len(per_partition[p])]))
    for acc in accumulators:
        acc.mark_idle(T0 + timedelta(hours=1))
        reports.append(acc.report(acc.close_ready()))

    # The merger is killed too, half-way through the reports, and restarted from its checkpoint.
    merger = WindowMerger("reports", PARTITIONS)
    published: list[WindowMetrics] = []
    half = len(reports) // 2
    for offset, report in enumerate(reports[:half]):
        merger.take(report, offset)
        published += merger.close_ready()
    merger_saved = MergerCheckpoint.parse(merger.checkpoint().to_json())
    published_before_restart = len(published)
    for offset, report in enumerate(reports[half : half + 3], start=half):  # taken and published, then lost
        merger.take(report, offset)
        published += merger.close_ready()
    merger = WindowMerger("reports", PARTITIONS)
    merger.restore(merger_saved)
    for offset, report in enumerate(reports):
        if not merger.already_taken(offset):
            merger.take(report, offset)
            published += merger.close_ready()

    # A window published again after the merger's restart carries the same figures; none is published short.
    by_key: dict = {}
    for window in published:
        key = (window.model, window.model_version, window.window_start)
        assert by_key.setdefault(key, window.to_json()) == window.to_json()
    assert figures(published) == expected
    assert len(published) - published_before_restart <= len(expected) + 3
