"""The source reader's decisions with a stand-in consumer and producer (the real ones are in the integration tests
and `make chaos`): where a partition starts, what a batch sends and saves, gaps, idle partitions, failed writes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from driftline.schemas.settings import Settings
from driftline.schemas.storage.base import Storage
from driftline.schemas.storage.state import read_partition_checkpoint, write_partition_checkpoint
from driftline.schemas.worker_state import PartitionReport
from driftline.streams import sources, topics
from driftline.streams.health import WorkerHealth
from driftline.streams.sources import SourceReader

NOW = datetime.now(UTC).replace(microsecond=0)


class Message:
    def __init__(
        self,
        partition: int,
        offset: int,
        value: bytes | None = None,
        error: KafkaError | None = None,
        topic: str = "u.predictions",
    ):
        self._partition, self._offset, self._value, self._error = partition, offset, value, error
        self._topic = topic

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, int(NOW.timestamp() * 1000)


class Consumer:
    def __init__(self) -> None:
        self.assigned: list[tuple[int, int]] = []
        self.seeks: list[tuple[int, int]] = []
        self.commits: list[list[tuple[int, int]]] = []
        self.ends: dict[int, int] = {}

    def assign(self, partitions: list[KafkaPartition]) -> None:
        self.assigned = [(tp.partition, tp.offset) for tp in partitions]

    def seek(self, tp: KafkaPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))

    def commit(self, offsets: list[KafkaPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def get_watermark_offsets(self, tp: KafkaPartition, timeout: float = 0, cached: bool = False) -> tuple[int, int]:
        if tp.partition not in self.ends:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return 0, self.ends[tp.partition]


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = False

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery) -> None:
        self.sent.append((topic, key, value))
        self.pending = (on_delivery, topic)

    def flush(self, timeout: float) -> int:
        if self.fail:
            return len(self.sent)
        return 0

    def poll(self, timeout: float) -> int:
        return 0


class Exited(Exception):
    pass


@pytest.fixture
def reader(tmp_path, monkeypatch) -> SourceReader:
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_TOPIC_PREFIX": "u"})
    reader = SourceReader(settings, {}, Storage.from_settings(settings), "u-metrics", WorkerHealth(stall_after=60))
    reader.consumer, reader.producer = Consumer(), Producer()  # type: ignore[assignment]
    reader.end_offsets = reader.consumer  # type: ignore[assignment]

    def exit_for_restart(message: str, *args: object) -> None:
        raise Exited(message % args)

    monkeypatch.setattr(sources, "exit_for_restart", exit_for_restart)
    return reader


def event(request_id: str, seconds: float = 0.0) -> bytes:
    return json.dumps(
        {
            "model": "m",
            "model_version": "v1",
            "request_id": request_id,
            "event_time": (NOW - timedelta(seconds=seconds)).isoformat(),
            "features": {},
            "prediction": 1,
            "latency_ms": 5.0,
        }
    ).encode()


def assign(reader: SourceReader, *partitions: int) -> None:
    reader.on_assign(reader.consumer, [KafkaPartition(reader.topic, p) for p in partitions])  # type: ignore[arg-type]


def test_an_assigned_partition_starts_right_after_its_checkpoint_never_at_a_committed_offset(reader):
    assign(reader, 1)
    reader.take([Message(1, offset, event(f"r{offset}")) for offset in range(42)])
    reader.on_revoke(reader.consumer, [KafkaPartition(reader.topic, 1)])  # type: ignore[arg-type]
    assert reader.accumulators == {}
    assign(reader, 0, 1)
    assert reader.consumer.assigned == [(0, 0), (1, 42)]
    assert reader.accumulators[1].next_offset == 42


def test_a_batch_sends_a_report_per_partition_then_saves_and_commits_its_checkpoints(reader):
    assign(reader, 0, 1)
    reader.take(
        [Message(0, 0, event("a")), Message(1, 0, event("b")), Message(0, 1, b"{not json"), Message(0, 2, event("c"))]
    )
    topics = reader.settings.topics
    reports = [PartitionReport.parse(v) for t, _, v in reader.producer.sent if t == topics.window_reports]
    assert [(r.partition, r.last_offset) for r in reports] == [(0, 2), (1, 0)]
    [dead] = [(k, json.loads(v)) for t, k, v in reader.producer.sent if t == topics.dead_letter]
    assert dead[0] == b"0:1" and dead[1]["reason"].startswith("not valid JSON")
    saved = read_partition_checkpoint(reader.storage, "u-metrics", reader.topic, 0)
    assert saved is not None and saved.last_offset == 2
    assert reader.consumer.commits == [[(0, 3), (1, 1)]]
    assert sum(w.count for w in reader.accumulators[0].open_windows.values()) == 2


def test_messages_already_in_the_checkpoint_are_not_counted_again(reader):
    assign(reader, 0)
    reader.take([Message(0, offset, event(f"r{offset}")) for offset in range(3)])
    reader.take([Message(0, offset, event(f"again{offset}")) for offset in range(5)])
    assert sum(w.count for w in reader.accumulators[0].open_windows.values()) == 5


def test_an_unconfirmed_gap_sends_the_partition_back_to_its_next_offset_and_a_confirmed_one_is_skipped(
    reader, monkeypatch
):
    assign(reader, 0)
    reader.take([Message(0, 0, event("a"))])
    monkeypatch.setattr(topics, "first_offset_from", lambda settings, topic, partition, offset: 1)
    reader.take([Message(0, 5, event("b")), Message(0, 6, event("c"))])
    assert reader.consumer.seeks == [(0, 1)]  # back to offset 1; offset 6 of the same batch waits for the re-read
    assert reader.accumulators[0].next_offset == 1
    for _ in range(2):
        reader.take([Message(0, 5, event("b"))])
    with pytest.raises(Exited, match="sent back to offset 1 3 times"):
        reader.take([Message(0, 5, event("b"))])

    monkeypatch.setattr(topics, "first_offset_from", lambda settings, topic, partition, offset: 5)
    reader.take([Message(0, 5, event("b")), Message(0, 6, event("c"))])  # the broker holds nothing at 1..4
    assert reader.accumulators[0].next_offset == 7


def test_a_partition_is_idle_only_when_silent_at_the_end_of_its_last_fetch_and_the_broker_answers(reader):
    settings = reader.settings
    assign(reader, 0)
    reader.take([Message(0, 0, event("a", seconds=600))])
    clock = [time.time()]
    reader.health.clock = lambda: clock[0]
    reader.health.hold([0])
    watermark = reader.accumulators[0].watermark
    clock[0] += settings.idle_close_seconds + 1

    reader.close_idle_partitions()  # no end-of-partition event at offset 1 yet
    reader.take([Message(0, 1, error=KafkaError(KafkaError._PARTITION_EOF))])
    reader.close_idle_partitions()  # the broker does not answer for its end offset
    reader.consumer.ends[0] = 2
    reader.close_idle_partitions()  # the broker says offset 1 holds a message
    assert reader.accumulators[0].watermark == watermark

    reader.consumer.ends[0] = 1
    reader.close_idle_partitions()
    assert reader.accumulators[0].watermark > watermark
    saved = read_partition_checkpoint(reader.storage, "u-metrics", reader.topic, 0)
    assert saved is not None and saved.idle_watermark is not None


def test_an_event_after_the_end_of_partition_event_takes_its_place(reader):
    assign(reader, 0)
    reader.take([Message(0, 0, error=KafkaError(KafkaError._PARTITION_EOF)), Message(0, 0, event("a"))])
    assert 0 not in reader.eof_at


def test_writes_not_acknowledged_end_the_process_before_any_checkpoint_is_saved(reader):
    assign(reader, 0)
    reader.producer.fail = True
    with pytest.raises(Exited, match="not acknowledged"):
        reader.take([Message(0, 0, event("a"))])
    assert read_partition_checkpoint(reader.storage, "u-metrics", reader.topic, 0) is None


def test_a_failed_delivery_ends_the_process_too(reader):
    assign(reader, 0)
    reader.failed.append("u-window-reports: broker down")
    with pytest.raises(Exited, match="broker down"):
        reader.take([Message(0, 0, event("a"))])


def test_checkpoints_from_before_this_reader_are_resumed(reader):
    assign(reader, 2)
    reader.take([Message(2, 0, event("a"))])
    checkpoint = reader.accumulators[2].checkpoint().model_copy(update={"last_offset": 99})
    write_partition_checkpoint(reader.storage, "u-metrics", checkpoint)
    reader.accumulators.clear()
    assign(reader, 2)
    assert reader.consumer.assigned == [(2, 100)]


class Queue:
    """A client queue holding ``held`` messages now and ``later`` more after a wait; records each call."""

    def __init__(self, held: int, later: int) -> None:
        self.held, self.later = held, later
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[int]:
        self.calls.append((num_messages, timeout))
        if not self.held and timeout > 0:
            self.held, self.later = self.later, 0
        taken = min(num_messages, self.held)
        self.held -= taken
        return list(range(taken))


@pytest.mark.parametrize(
    ("held", "later", "size", "calls"),
    [
        (0, 0, 0, [(sources.BATCH, 0), (1, 0.5)]),  # nothing: one wait for the first message
        (sources.BATCH + 7, 0, sources.BATCH, [(sources.BATCH, 0)]),  # a full batch is there: no wait at all
        (30, 0, 30, [(sources.BATCH, 0), (sources.BATCH - 30, 0.1)]),  # what is there, topped up for 0.1 s
        (0, 40, 40, [(sources.BATCH, 0), (1, 0.5), (sources.BATCH - 1, 0.1)]),
    ],
)
def test_a_batch_is_what_the_client_holds_now_never_a_wait_for_a_full_one(held, later, size, calls):
    queue = Queue(held, later)
    assert len(SourceReader.read_batch(queue)) == size  # type: ignore[arg-type]
    assert queue.calls == calls
