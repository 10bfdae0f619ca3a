"""Kafka → Parquet on storage, without loss or duplicates across crashes and retries.

One run, per partition of a topic:

1. start at the consumer group's committed offset;
2. if a *ledger* exists for that start (a previous run wrote files but crashed
   before committing), re-read exactly the ledger's offset range; otherwise
   read a chunk (until the topic is idle, ``chunk_records`` or ``max_records``)
   and write a ledger first;
3. write one Parquet file per model / version / date / hour, named by topic,
   partition and offset range, atomically — a rewrite of the same range
   replaces the same files;
4. commit ``last offset + 1``, then drop the ledger; read the next chunk.

So a run that dies anywhere before step 4 is repeated exactly by the next one.
Caught-up is detected by an idle poll, not by the high watermark (which the
embedded broker reports wrongly after batched produces).

:func:`plan_partition` is the pure part (records in, files and dead letters
out); :func:`ingest_topic` reads Kafka, writes storage and commits.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from driftline.schemas.events import TOMBSTONE_REASON, EventError, EventLimits, read_event
from driftline.schemas.records import DeadLetter, IngestLedger, IngestProgress, original_text
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage.layout import hour_of
from driftline.streams.topics import confirm_gap

log = logging.getLogger(__name__)

EXPECTED_EVENT_TYPE = {"predictions": "prediction", "labels": "label"}


@dataclass
class IngestResult:
    topic: str
    rows_written: int = 0
    invalid: int = 0
    files: list[str] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)
    replayed_partitions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlannedFile:
    """The rows of one (model, version, hour) from one source offset range."""

    model: str
    model_version: str
    hour: datetime
    columns: events.EventColumns

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.columns.rows()


@dataclass(frozen=True)
class PartitionPlan:
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    files: list[PlannedFile]
    dead_letters: list[DeadLetter]


# (offset, value, the broker's timestamp); a tombstone has no value
Record = tuple[int, bytes | None, datetime | None]


def plan_partition(
    kind: str, topic: str, partition: int, records: Sequence[Record], limits: EventLimits
) -> PartitionPlan:
    """Validate one partition's ``(offset, value)`` records and group the valid ones into files. Pure.

    ``records`` must be non-empty and in offset order; the files are named by
    the whole range, invalid records included, so a replay names them the same. An event the stream
    worker would refuse (too large, stamped too far from the broker's time) is refused here too, so no
    single event can move the window a drift check reads.
    """
    expected = EXPECTED_EVENT_TYPE[kind]
    groups: dict[tuple[str, str, datetime], events.EventColumns] = defaultdict(events.EventColumns)
    dead_letters = []
    now = datetime.now(UTC)  # the reader's clock, once per chunk: it bounds the future (EventLimits.time_problem)
    for offset, value, broker_time in records:
        try:
            if value is None:
                raise EventError(TOMBSTONE_REASON)
            event = read_event(value, expected, max_bytes=limits.max_bytes)
            time_problem = limits.time_problem(event.event_time, broker_time, now)
            if time_problem:
                raise EventError(time_problem)
        except EventError as exc:
            dead_letters.append(
                DeadLetter(
                    reason=exc.reason,
                    source="ingest",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    original=None if value is None else original_text(value),
                )
            )
            continue
        hour = hour_of(event.event_time)
        groups[(event.model, event.model_version, hour)].append(event, partition, offset)
    files = [PlannedFile(model, version, hour, columns) for (model, version, hour), columns in sorted(groups.items())]
    return PartitionPlan(topic, partition, records[0][0], records[-1][0], files, dead_letters)


def write_plan(storage: Storage, kind: str, plan: PartitionPlan) -> list[str]:
    source = (plan.topic, plan.partition, plan.first_offset, plan.last_offset)
    return [
        events.write_event_file(storage, kind, (file.model, file.model_version, file.hour), source, file.columns)
        for file in plan.files
    ]


# Records taken from the consumer per call: a chunk holds at most CHUNK_BYTES of values plus one call's worth.
CONSUME_BATCH = 1_000

# librdkafka prefetches up to 64 MB by default, whatever a chunk holds; ingest needs one chunk at a time.
PREFETCH_KBYTES = 16_384


def _consumer(settings: Settings, group_id: str) -> Consumer:
    prefetch = (
        {}
        if "queued.max.messages.kbytes" in settings.kafka_options
        else {"queued.max.messages.kbytes": PREFETCH_KBYTES}
    )
    return Consumer(
        settings.kafka_client_config(
            **{
                **prefetch,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                **settings.consumer_group_overrides(),
            }
        )
    )


GAP_REREADS = 5


class GapGuard:
    """Holds a consumer to contiguous offsets per partition: nothing skipped, nothing taken twice.

    A message past the next offset expected is a gap. Kafka has legitimate gaps (compaction, transaction
    markers, retention deleting messages before they were read), and then the broker's first message from the
    expected offset is that very message (:func:`confirm_gap`): the guard goes on. Otherwise the consumer
    was handed messages past some the broker holds: the embedded broker does that to a consumer reading the
    end of a partition that several producers write at once (measured: 2 gaps of 15 and 4 messages in one
    run of three producers and a tailing reader; a second read from the start saw no gap). Committing past
    them would lose them, so the guard seeks the partition back to the expected offset, drops what the batch
    holds beyond it, and reads again; after :data:`GAP_REREADS` re-reads of the same gap it raises.
    """

    def __init__(self, consumer: Consumer, settings: Settings, topic: str, next_offsets: dict[int, int]) -> None:
        self.consumer, self.settings, self.topic, self.next_offsets = consumer, settings, topic, next_offsets
        self.rereads: dict[tuple[int, int], int] = defaultdict(int)
        self.sought: set[int] = set()

    def new_batch(self) -> None:
        self.sought.clear()

    def takes(self, partition: int, offset: int) -> bool:
        """Whether to take the message at ``offset``; False for one read before (after a seek back) and for the
        rest of a batch after a seek back on its partition."""
        if partition in self.sought:
            return False
        expected = self.next_offsets.get(partition)
        if expected is None or offset == expected:
            self.next_offsets[partition] = offset + 1
            return True
        if offset < expected:
            return False  # already taken
        confirmed, first = confirm_gap(self.settings, self.topic, partition, expected, offset)
        if confirmed:
            self.next_offsets[partition] = offset + 1
            return True
        self.rereads[(partition, expected)] += 1
        if self.rereads[(partition, expected)] > GAP_REREADS:
            raise RuntimeError(
                f"reading {self.topic}[{partition}]: offset {offset} arrived where {expected} was next, and the "
                f"broker's first message from {expected} is {first} ({GAP_REREADS} re-reads gave the same); nothing "
                f"from offset {expected} on was committed, so rerunning the task reads it again"
            )
        log.warning(
            "%s[%d]: offset %d arrived where %d was next, but the broker's first message from %d is %s; reading "
            "again from offset %d",
            self.topic,
            partition,
            offset,
            expected,
            expected,
            first,
            expected,
        )
        self.consumer.seek(TopicPartition(self.topic, partition, expected))
        self.sought.add(partition)
        return False


def _read_new_records(
    consumer: Consumer,
    settings: Settings,
    topic: str,
    targets: dict[int, int],
    *,
    max_records: int,
    idle_timeout: float,
    max_bytes: int | None = None,
    next_offsets: dict[int, int],
) -> tuple[dict[int, list[Record]], bool]:
    """Poll until idle (or ``max_records``, or ``max_bytes`` of values) and, for replayed partitions, exactly up
    to their ledger's last offset; returns the records and whether the topic was idle (not cut by a limit).

    ``next_offsets`` holds each partition's next offset to read (where the consumer was assigned or sought). A
    message past it is a gap (see :class:`GapGuard`).
    """
    records: dict[int, list[Record]] = defaultdict(list)
    guard = GapGuard(consumer, settings, topic, dict(next_offsets))
    total, size, last_message_at = 0, 0, time.monotonic()
    while True:
        batch = consumer.consume(max(1, min(CONSUME_BATCH, max_records - total)), timeout=0.5)
        guard.new_batch()
        for message in batch:
            error = message.error()
            if error:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {topic}: {error}")
                continue
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None  # set on every consumed message
            if not guard.takes(partition, offset):
                continue
            if partition in targets and offset > targets[partition]:
                continue  # beyond the replayed range: the next run takes it
            timestamp_type, timestamp_ms = message.timestamp()
            broker_time = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC) if timestamp_type else None
            value = message.value()
            records[partition].append((offset, value, broker_time))
            total += 1
            size += len(value) if value else 0
        if batch:
            last_message_at = time.monotonic()
        replay_done = all(records[p] and records[p][-1][0] >= end for p, end in targets.items())
        idle_for = time.monotonic() - last_message_at
        full = total >= max_records or (max_bytes is not None and size >= max_bytes)
        if replay_done and (full or idle_for >= idle_timeout):
            return records, not full
        if not replay_done and idle_for >= max(30.0, 10 * idle_timeout):
            missing = {p: end for p, end in targets.items() if not records[p] or records[p][-1][0] < end}
            raise RuntimeError(
                f"cannot replay the unfinished ingest of {topic}: offsets up to {missing} "
                "(partition: last offset) are no longer readable; check the topic's retention"
            )


def _unfinished_ranges(storage: Storage, topic: str, starts: dict[int, int]) -> dict[int, int]:
    """Per partition whose committed offset starts a ledger (a run that wrote files and died before committing):
    the ledger's last offset, to re-read exactly."""
    targets = {}
    for partition, start in starts.items():
        ledger = state.read_ingest_ledger(storage, topic, partition, start)
        if ledger is not None:
            targets[partition] = ledger.last_offset
    return targets


def _store_chunk(
    settings: Settings,
    storage: Storage,
    kind: str,
    records: dict[int, list[Record]],
    *,
    starts: dict[int, int],
    limits: EventLimits,
    result: IngestResult,
    dead_letters: Producer | None,
) -> None:
    """Plan one chunk's records per partition and write them (ledger first), recording in ``result`` the files
    and the offsets to commit; the chunk's dead letters are delivered before its offsets may be committed."""
    topic = result.topic
    for partition, items in sorted(records.items()):
        plan = plan_partition(kind, topic, partition, items, limits)
        ledger = IngestLedger(
            topic=topic, partition=partition, first_offset=plan.first_offset, last_offset=plan.last_offset
        )
        state.write_ingest_ledger(storage, ledger, starts[partition])
        for dead in plan.dead_letters:
            if dead_letters is not None:
                dead_letters.produce(settings.topics.dead_letter, dead.to_json())
        result.invalid += len(plan.dead_letters)
        result.files += write_plan(storage, kind, plan)
        result.rows_written += sum(len(file.columns) for file in plan.files)
        result.committed[partition] = plan.last_offset + 1
    if dead_letters is not None and dead_letters.flush(30):
        # Committing now would lose them: the next run re-reads this range and sends them again.
        raise RuntimeError(
            f"could not deliver the dead letters of {topic} to {settings.topics.dead_letter} within 30 s; "
            "offsets not committed, the next run repeats this range"
        )


# Records read, stored and committed at a time: memory holds one chunk, however long the backlog of a run. A
# chunk also ends at CHUNK_BYTES of event values, so large events make smaller chunks.
CHUNK_RECORDS = 50_000
CHUNK_BYTES = 64 << 20


def ingest_topic(
    settings: Settings,
    storage: Storage,
    topic: str,
    *,
    kind: str,
    group_id: str | None = None,
    max_records: int = 1_000_000,
    chunk_records: int = CHUNK_RECORDS,
    chunk_bytes: int = CHUNK_BYTES,
    idle_timeout: float = 3.0,
) -> IngestResult:
    """Move what is new on ``topic`` to storage under ``kind/``; see the module docstring.

    A run reads at most ``max_records``, in chunks of ``chunk_records``: each chunk is planned, written (ledger
    first) and committed before the next is read, so memory is bounded by a chunk, and a crash repeats at most
    the chunk it was in.
    """
    if kind not in EXPECTED_EVENT_TYPE:
        raise ValueError(f"kind must be one of {sorted(EXPECTED_EVENT_TYPE)}, got {kind!r}")
    started_at = datetime.now(UTC)
    consumer = _consumer(settings, group_id or f"{settings.topic_prefix}-ingest-{kind}")
    limits = EventLimits.from_settings(settings)
    result = IngestResult(topic)
    # Invalid predictions are dead-lettered by the stream worker; ingest only counts them.
    dead_letters = Producer(settings.kafka_client_config()) if kind == "labels" else None
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise RuntimeError(
                f"topic {topic!r} does not exist on {settings.bootstrap_servers}; run 'driftline up' or create it"
            )
        partitions = sorted(metadata.topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        starts = {tp.partition: max(tp.offset, 0) for tp in committed}
        targets = _unfinished_ranges(storage, topic, starts)
        result.replayed_partitions = sorted(targets)
        consumer.assign(
            [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING) for tp in committed]
        )
        read_in_all, caught_up = 0, False
        while read_in_all < max_records:
            wanted = min(chunk_records, max_records - read_in_all)
            records, idle = _read_new_records(
                consumer,
                settings,
                topic,
                targets,
                max_records=wanted,
                idle_timeout=idle_timeout,
                max_bytes=chunk_bytes,
                next_offsets=starts,
            )
            read = sum(len(items) for items in records.values())
            read_in_all += read
            _store_chunk(
                settings, storage, kind, records, starts=starts, limits=limits, result=result, dead_letters=dead_letters
            )
            to_commit = [TopicPartition(topic, partition, result.committed[partition]) for partition in records]
            if to_commit:
                consumer.commit(offsets=to_commit, asynchronous=False)
                for partition in records:
                    state.remove_ingest_ledger(storage, topic, partition, starts[partition])
                    starts[partition] = result.committed[partition]
            if targets:
                # The replay skipped the replayed partitions' records past their ledgers; the consumer's position
                # is beyond them. Go back to the committed offsets, or the next chunk would never store them.
                for partition in targets:
                    consumer.seek(TopicPartition(topic, partition, starts[partition]))
                targets = {}  # only the first chunk replays an unfinished run
                continue  # and it never says ingest caught up: it read only the ledgers' ranges of those partitions
            if idle:  # read until idle: everything the broker held at the start is stored now
                caught_up = True
                break
        if caught_up:
            state.write_ingest_progress(
                storage, IngestProgress(topic=topic, caught_up_at=started_at, rows_written=result.rows_written)
            )
    finally:
        consumer.close()
    log.info(
        "ingested %d rows from %s into %d files (%d invalid)",
        result.rows_written,
        topic,
        len(result.files),
        result.invalid,
    )
    return result
