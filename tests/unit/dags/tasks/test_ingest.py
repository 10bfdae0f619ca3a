from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from driftline.dags.tasks import ingest
from driftline.dags.tasks.ingest import plan_partition
from driftline.schemas.events import EventLimits
from driftline.schemas.records import IngestLedger
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state
from driftline.schemas.storage.events import read_events
from driftline.streams import topics

RECEIVED = datetime(2026, 5, 1, 12, tzinfo=UTC)  # the broker's timestamp for the records below
LIMITS = EventLimits(max_bytes=2000, max_age=timedelta(days=1), max_future=timedelta(minutes=5))


def prediction(request_id: str, minute: int, model: str = "m", version: str = "v1", hour: int = 10) -> bytes:
    return json.dumps(
        {
            "event_type": "prediction",
            "model": model,
            "model_version": version,
            "request_id": request_id,
            "event_time": f"2026-05-01T{hour:02d}:{minute:02d}:00Z",
            "features": {"x": 1.5},
            "prediction": 0.5,
            "latency_ms": 3.0,
        }
    ).encode()


def test_records_are_grouped_by_model_version_and_hour_and_invalid_ones_set_aside():
    records = [
        (100, prediction("a", 1), RECEIVED),
        (101, b"{not json", RECEIVED),
        (102, prediction("b", 59), RECEIVED),
        (103, prediction("c", 0, hour=11), RECEIVED),
        (104, prediction("d", 5, version="v2"), RECEIVED),
    ]
    plan = plan_partition("predictions", "t", 3, records, LIMITS)
    assert (plan.first_offset, plan.last_offset) == (100, 104)
    assert [(f.model_version, f.hour.hour, [r["request_id"] for r in f.rows]) for f in plan.files] == [
        ("v1", 10, ["a", "b"]),
        ("v1", 11, ["c"]),
        ("v2", 10, ["d"]),
    ]
    assert plan.files[0].hour == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert [r["kafka_offset"] for r in plan.files[0].rows] == [100, 102]
    [dead] = plan.dead_letters
    assert (dead.source, dead.topic, dead.partition, dead.offset, dead.original) == ("ingest", "t", 3, 101, "{not json")
    assert dead.reason.startswith("not valid JSON")


def test_a_label_on_the_predictions_topic_is_set_aside_with_the_reason():
    label = json.dumps(
        {
            "event_type": "label",
            "model": "m",
            "model_version": "v1",
            "request_id": "a",
            "event_time": "2026-05-01T10:00:00Z",
            "label": 1,
        }
    ).encode()
    plan = plan_partition("predictions", "t", 0, [(7, label, RECEIVED)], LIMITS)
    assert plan.files == []
    assert plan.dead_letters[0].reason == "field 'event_type': expected 'prediction' on this topic, got 'label'"


def test_a_tombstone_is_set_aside_and_the_records_after_it_are_kept():
    plan = plan_partition("predictions", "t", 0, [(1, None, RECEIVED), (2, prediction("a", 1), RECEIVED)], LIMITS)
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["a"]
    [dead] = plan.dead_letters
    assert (dead.offset, dead.original) == (1, None) and dead.reason.startswith("tombstone: the message has no value")


def test_ingest_refuses_what_the_worker_refuses_so_no_event_can_move_the_window():
    future = prediction("future", 0).replace(b"2026-05-01T10:00:00Z", b"2099-01-01T00:00:00Z")
    huge = json.dumps({**json.loads(prediction("huge", 1)), "features": {"blob": "x" * 3000}}).encode()
    plan = plan_partition(
        "predictions", "t", 0, [(1, future, RECEIVED), (2, huge, RECEIVED), (3, prediction("ok", 2), RECEIVED)], LIMITS
    )
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["ok"]
    reasons = [d.reason for d in plan.dead_letters]
    assert "DRIFTLINE_MAX_EVENT_FUTURE_SECONDS" in reasons[0] and "DRIFTLINE_MAX_EVENT_BYTES" in reasons[1]


def test_an_event_whose_message_is_also_stamped_2099_is_refused():
    far = datetime(2099, 1, 1, tzinfo=UTC)
    future = prediction("future", 0).replace(b"2026-05-01T10:00:00Z", b"2099-01-01T00:00:00Z")
    plan = plan_partition("predictions", "t", 0, [(1, future, far), (2, prediction("ok", 2), None)], LIMITS)
    assert [r["request_id"] for f in plan.files for r in f.rows] == ["ok"]
    assert "after it was read" in plan.dead_letters[0].reason


class _Message:
    def __init__(self, partition: int, offset: int, value: bytes, at: datetime) -> None:
        self._partition, self._offset, self._value, self._at = partition, offset, value, at

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return 1, int(self._at.timestamp() * 1000)


class FakeConsumer:
    """A consumer of one topic whose fetches bring one partition at a time, lowest partition first: a replay of
    partition 0 then skips all of its records past the ledger and the chunk ends on partition 1's count."""

    def __init__(self, topic: str, logs: dict[int, list[bytes]], committed: dict[int, int], at: datetime) -> None:
        self.topic, self.logs, self.at = topic, logs, at
        self.committed_offsets = dict(committed)
        self.positions: dict[int, int] = {}

    def list_topics(self, topic: str, timeout: float) -> Any:
        partitions = {p: SimpleNamespace() for p in self.logs}
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions=partitions, error=None)})

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(self.topic, tp.partition, self.committed_offsets.get(tp.partition, -1001))
            for tp in partitions
        ]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp.partition: max(tp.offset, 0) for tp in partitions}

    def seek(self, partition: TopicPartition) -> None:
        self.positions[partition.partition] = partition.offset

    def consume(self, count: int, timeout: float) -> list[_Message]:
        for partition in sorted(self.logs):
            position = self.positions[partition]
            values = self.logs[partition][position : position + count]
            if values:
                self.positions[partition] = position + len(values)
                return [_Message(partition, position + i, value, self.at) for i, value in enumerate(values)]
        return []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        for tp in offsets:
            self.committed_offsets[tp.partition] = tp.offset

    def close(self) -> None:
        pass


def numbered_event(event_time: datetime, partition: int, offset: int) -> bytes:
    """A valid prediction of model m v1 whose request id names its partition and offset."""
    return json.dumps(
        {
            "event_type": "prediction",
            "model": "m",
            "model_version": "v1",
            "request_id": f"p{partition}-{offset}",
            "event_time": event_time.isoformat(),
            "features": {"x": 1.0},
            "prediction": 0.5,
            "latency_ms": 3.0,
        }
    ).encode()


def test_a_replayed_chunk_then_the_rest_stores_every_record_once_and_claims_no_catch_up_it_did_not_make(
    tmp_path, monkeypatch
):
    """A crashed run wrote partition 0's offsets 0-9 and died before committing. The next run, in chunks of 20,
    replays exactly that range, then goes on from offset 10 (the replay skipped 10-19 on its way)."""
    now = datetime.now(UTC).replace(microsecond=0)
    settings = Settings(home=str(tmp_path))
    storage = Storage.from_settings(settings)
    topic = settings.topics.predictions

    event = partial(numbered_event, now - timedelta(minutes=1))

    logs = {p: [event(p, o) for o in range(100)] for p in (0, 1)}
    state.write_ingest_ledger(storage, IngestLedger(topic=topic, partition=0, first_offset=0, last_offset=9), 0)
    fake = FakeConsumer(topic, logs, {}, now)
    monkeypatch.setattr(ingest, "_consumer", lambda settings, group_id: fake)

    result = ingest.ingest_topic(settings, storage, topic, kind="predictions", chunk_records=20, idle_timeout=0.2)

    assert result.replayed_partitions == [0] and result.rows_written == 200
    assert fake.committed_offsets == {0: 100, 1: 100}
    stored = read_events(storage, "predictions", "m")
    assert len(stored) == 200 and stored["request_id"].is_unique
    assert any(path.endswith(f"+0+{0:020d}+{9:020d}.parquet") for path in result.files)  # the ledger's range
    assert state.read_ingest_progress(storage, topic) is not None  # the last chunk ended idle

    # Large events make small chunks: a chunk also ends at chunk_bytes of values, and that is no catch-up.
    storage3 = Storage.from_url(str(tmp_path / "bytes"))
    by_size = FakeConsumer(topic, logs, {}, now)
    monkeypatch.setattr(ingest, "_consumer", lambda settings, group_id: by_size)
    monkeypatch.setattr(ingest, "CONSUME_BATCH", 4)  # a chunk overshoots its bytes by less than one call
    size = len(logs[0][0])
    small = ingest.ingest_topic(settings, storage3, topic, kind="predictions", chunk_bytes=10 * size, idle_timeout=0.2)
    assert small.rows_written == 200 and by_size.committed_offsets == {0: 100, 1: 100}
    ranges = [tuple(int(n) for n in p.removesuffix(".parquet").rsplit("+", 2)[1:]) for p in small.files]
    assert max(last - first + 1 for first, last in ranges) == 12  # three calls of 4: the third passes 10 values
    assert state.read_ingest_progress(storage3, topic) is not None

    # A run that only replays (and then finds nothing) must not claim more than it read.
    storage2 = Storage.from_url(str(tmp_path / "second"))
    state.write_ingest_ledger(storage2, IngestLedger(topic=topic, partition=0, first_offset=0, last_offset=9), 0)
    replay_only = FakeConsumer(topic, logs, {}, now)
    monkeypatch.setattr(ingest, "_consumer", lambda settings, group_id: replay_only)
    capped = ingest.ingest_topic(settings, storage2, topic, kind="predictions", max_records=10, idle_timeout=0.2)
    assert capped.rows_written >= 10 and replay_only.committed_offsets[0] == 10
    assert state.read_ingest_progress(storage2, topic) is None


class GappyConsumer(FakeConsumer):
    """Partition 0 holds ``offsets`` (holes are compacted away for good); the first read that reaches ``late``
    does not see them (the embedded broker handing a tailing reader a later producer's batch first)."""

    def __init__(self, topic: str, offsets: list[int], late: set[int], at: datetime, event: Any) -> None:
        super().__init__(topic, {0: []}, {}, at)
        self.offsets, self.late, self.event = offsets, set(late), event
        self.seeks: list[int] = []

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(partition.offset)
        super().seek(partition)

    def consume(self, count: int, timeout: float) -> list[_Message]:
        visible = [o for o in self.offsets if o >= self.positions[0] and o not in self.late][:count]
        if not visible:
            return []
        if any(o in self.late for o in range(self.positions[0], visible[-1])):
            self.late.clear()  # shown now; the next read sees them
        self.positions[0] = visible[-1] + 1
        return [_Message(0, o, self.event(0, o), self.at) for o in visible]

    def first_from(self, offset: int) -> int | None:
        return next((o for o in self.offsets if o >= offset), None)


def _gap_run(tmp_path, monkeypatch, offsets: list[int], late: set[int], never_shown: bool = False, seen=None):
    now = datetime.now(UTC).replace(microsecond=0)
    settings = Settings(home=str(tmp_path))
    storage = Storage.from_settings(settings)
    topic = settings.topics.predictions

    event = partial(numbered_event, now - timedelta(minutes=1))

    fake = GappyConsumer(topic, offsets, late, now, event)
    if never_shown:
        monkeypatch.setattr(GappyConsumer, "consume", _always_hiding(fake.late))
    if seen is not None:
        seen.append(fake)
    monkeypatch.setattr(ingest, "_consumer", lambda settings, group_id: fake)
    monkeypatch.setattr(topics, "first_offset_from", lambda settings, topic, partition, offset: fake.first_from(offset))
    result = ingest.ingest_topic(settings, storage, topic, kind="predictions", idle_timeout=0.2)
    return fake, result, read_events(storage, "predictions", "m")


def _always_hiding(hidden: set[int]) -> Any:
    def consume(self: GappyConsumer, count: int, timeout: float) -> list[_Message]:
        visible = [o for o in self.offsets if o >= self.positions[0] and o not in hidden][:count]
        if visible:
            self.positions[0] = visible[-1] + 1
        return [_Message(0, o, self.event(0, o), self.at) for o in visible]

    return consume


def test_messages_handed_over_past_some_the_broker_holds_are_read_again_not_skipped(tmp_path, monkeypatch):
    fake, result, stored = _gap_run(tmp_path, monkeypatch, list(range(10)), late={5, 6, 7})
    assert fake.seeks == [5]  # back to the first offset not taken
    assert sorted(stored["request_id"]) == sorted(f"p0-{o}" for o in range(10)) and stored["request_id"].is_unique
    assert fake.committed_offsets == {0: 10} and result.rows_written == 10


def test_a_gap_the_broker_confirms_is_crossed_without_reading_again(tmp_path, monkeypatch):
    kept = [0, 1, 2, 3, 4, 8, 9]  # 5-7 compacted away
    fake, result, stored = _gap_run(tmp_path, monkeypatch, kept, late=set())
    assert fake.seeks == [] and sorted(stored["request_id"]) == sorted(f"p0-{o}" for o in kept)
    assert fake.committed_offsets == {0: 10} and result.rows_written == len(kept)


def test_a_gap_that_stays_after_five_rereads_fails_the_run_and_commits_nothing_past_it(tmp_path, monkeypatch):
    seen: list[GappyConsumer] = []
    with pytest.raises(RuntimeError) as failed:
        _gap_run(tmp_path, monkeypatch, list(range(10)), late={5, 6, 7}, never_shown=True, seen=seen)
    assert "offset 8 arrived where 5 was next" in str(failed.value) and "first message from 5 is 5" in str(failed.value)
    assert "nothing from offset 5 on was committed" in str(failed.value)
    assert seen[0].seeks == [5] * ingest.GAP_REREADS and seen[0].committed_offsets == {}
