"""The worker's source partitions: the predictions topic read with confluent-kafka (librdkafka) in a thread.

Faust's consumer (aiokafka) received about 5,000 events a second from the embedded broker whatever its fetch
settings, a tenth of what librdkafka reads from it (docs/operations.md, "Stream speed"). So the hot path, the
predictions topic, is read here by a plain confluent-kafka consumer in a consumer group of its own
(``<app id>-sources``), in one thread; the Faust app keeps the window merger, alert delivery, the timers and
the web pages. The decisions are the pure modules' (:mod:`.partition_state`, :mod:`.intake`); this module
reads, calls them, writes topics and saves checkpoints in the order that makes a crash safe:

1. each batch's events are folded into their partition's :class:`PartitionAccumulator`;
2. the partitions it touched send a :class:`PartitionReport` (closed partial windows and the watermark) to
   the window-reports topic; the batch's dead letters and alerts are sent too;
3. once the broker acknowledged all of them, the partitions' checkpoints are saved to storage, and only then
   is the next batch read. A batch whose writes are not acknowledged within ``DRIFTLINE_WORKER_STALL_SECONDS``
   ends the process (code 75) for its supervisor to restart it from the checkpoints.

**Where a partition starts.** Always at its checkpoint: when a partition is assigned, its checkpoint is
loaded and the consumer is placed at the offset after it. The group's committed offsets are written after
each saved checkpoint for tooling that reads consumer lag, and never read: an offset committed too far (by
anyone) cannot make the worker skip events, and a restart after ``kill -9`` starts exactly where the last
saved checkpoint ends.

**Offsets one after the other.** A message past the next offset to count is a gap. The worker asks the broker,
outside the group, where its next message from there is; a confirmed gap (retention deleted the messages, or
the broker never wrote those offsets) is logged and skipped, and anything else sends the consumer back to the
checkpoint's offset (librdkafka seeks reliably; after three returns to the same offset the process exits for a
clean start).

**Idle partitions.** A partition is idle, and its watermark follows the wall clock, when it has delivered
nothing for ``DRIFTLINE_IDLE_CLOSE_SECONDS`` *and* the last fetch from its next offset came back empty
(librdkafka's end-of-partition event at exactly that offset) *and* the broker answers for its end offset now,
with nothing past what was counted. The end-of-partition event is the one that holds on the embedded broker,
whose end offsets are wrong after batched writes; the answer proves the broker is reachable, so an outage is
never taken for a quiet stream.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from driftline.schemas.config import MetricSettings, MonitorConfig, PerformanceSettings
from driftline.schemas.events import EventError, EventLimits, LabelRecord, read_event
from driftline.schemas.records import Alert, DeadLetter, original_text
from driftline.schemas.settings import Settings
from driftline.schemas.storage.base import Storage
from driftline.schemas.storage.state import read_partition_checkpoint, write_partition_checkpoint
from driftline.schemas.worker_state import PartitionCheckpoint
from driftline.streams.health import WorkerHealth
from driftline.streams.intake import PredictionIntake
from driftline.streams.label_join import LabelJoin
from driftline.streams.partition_state import PartitionAccumulator
from driftline.streams.progress import PartitionProgress
from driftline.streams.telemetry import WorkerTelemetry
from driftline.streams.topics import confirm_gap

log = logging.getLogger("driftline.worker")

BATCH = 5000  # messages read at a time; a batch ends in one report per partition and one checkpoint save
RETURNS_BEFORE_EXIT = 3  # unconfirmed gaps at the same offset before the process restarts itself
BROKER_PROBE_SECONDS = 2.0  # how often the reader asks the broker for the topic's metadata (readiness)


@dataclass
class Batch:
    """What one batch of messages did (SourceReader.take)."""

    now: datetime
    touched: set[int] = field(default_factory=set)  # partitions whose state moved: a report and a checkpoint
    seen: set[int] = field(default_factory=set)  # predictions partitions that delivered anything
    sent_back: set[tuple[str, int]] = field(default_factory=set)  # (topic, partition) read again after a gap
    causes: dict[str, int] = field(default_factory=dict)  # dead letters by cause (metrics)
    taken: int = 0


def broker_time(message: Message) -> datetime | None:
    timestamp_type, timestamp_ms = message.timestamp()
    return None if timestamp_type == TIMESTAMP_NOT_AVAILABLE else datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def exit_for_restart(message: str, *args: Any) -> None:
    """Crash-only: log, and end the process (code 75) for its supervisor to restart it from the checkpoints."""
    log.critical(message, *args)
    logging.shutdown()
    os._exit(75)


class SourceReader:
    """Reads the source partitions it is assigned, in the thread that calls :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        configs: dict[str, MonitorConfig],
        storage: Storage,
        group: str,
        health: WorkerHealth,
        *,
        telemetry: WorkerTelemetry | None = None,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.predictions
        # The late-label join (streams/label_join.py) reads the labels topic too, when a model takes part.
        self.label_topic: str | None = (
            settings.topics.labels if any(c.performance.label_deadline for c in configs.values()) else None
        )
        self.configs = configs
        self.storage = storage
        self.group = group  # the checkpoints' key in storage: the Faust app's id, as before this reader
        self.health = health
        self.telemetry = telemetry or WorkerTelemetry()
        self.limits = EventLimits.from_settings(settings)
        self.intake = PredictionIntake(configs, max_bytes=settings.max_event_bytes)
        self.default_window = MetricSettings().window  # an unconfigured model's
        self.accumulators: dict[int, PartitionAccumulator] = {}
        self.lags: dict[int, int | None] = {}  # for the health page: messages not counted yet, per partition
        self.eof_at: dict[int, int] = {}  # partition -> the offset at which the last fetch found nothing more
        self.label_eof_at: dict[int, int] = {}  # the same for the labels topic
        self.label_seen: dict[int, float] = {}  # labels partition -> wall time of its last message
        self.labels_refused = 0  # invalid labels skipped (ingest dead-letters them)
        self.returns: dict[tuple[str, int, int], int] = {}  # (topic, partition, offset) -> times sent back there
        self.failed: list[str] = []  # delivery errors of the batch in flight
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        # Asks for end offsets (idle partitions) on a connection of its own: on the reader's, each request waits
        # behind the fetch in flight, up to fetch.wait.max.ms (3 s a partition, measured).
        self.end_offsets: Consumer | None = None

    # -- clients --------------------------------------------------------------------------------------------
    def consumer_config(self) -> dict[str, Any]:
        return self.settings.kafka_client_config(
            **{
                "group.id": f"{self.group}-sources",
                "client.id": "driftline-worker",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",  # below the log start (retention): the first message still there
                "enable.partition.eof": True,  # the end-of-partition event tells idle partitions (module docstring)
                # The embedded broker with its log in S3 answers a fetch with what it could read within this
                # wait: at the default 500 ms, one partition per answer (the worker fell behind 400 events/s in
                # make chaos); at 100 ms, nothing at all. A real broker answers as soon as it has data.
                "fetch.wait.max.ms": 3000,
                **self.settings.consumer_group_overrides(),
            }
        )

    def producer_config(self) -> dict[str, Any]:
        return self.settings.kafka_client_config(
            **{"acks": "all", "linger.ms": 5, "enable.idempotence": False, "client.id": "driftline-worker"}
        )

    def window_for_model(self, model: str) -> timedelta:
        config = self.configs.get(model)
        return config.metrics.window if config else self.default_window

    def joined_model(self, model: str) -> PerformanceSettings | None:
        """The model's performance settings when it takes part in the late-label join."""
        config = self.configs.get(model)
        return config.performance if config is not None and config.performance.label_deadline else None

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Read until ``stop`` is set; any failure ends the process for a restart from the checkpoints."""
        try:
            self._run(stop)
        except Exception:
            log.exception("the source reader failed")
            exit_for_restart("the source reader failed; exiting so that the worker restarts from its checkpoints")

    def _run(self, stop: threading.Event) -> None:
        self.consumer = consumer = Consumer(self.consumer_config())
        self.producer = Producer(self.producer_config())
        self.end_offsets = end_offsets = Consumer(
            self.settings.kafka_client_config(**{"group.id": f"{self.group}-ends", "enable.auto.commit": False})
        )  # never joins the group, never commits
        self.check_label_partitions(consumer)
        topics = [self.topic] if self.label_topic is None else [self.topic, self.label_topic]
        consumer.subscribe(topics, on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_revoke)
        next_idle_check = time.monotonic() + 1.0
        next_probe = time.monotonic()
        try:
            while not stop.is_set():
                messages = self.read_batch(consumer)
                if messages:
                    self.take(messages)
                else:
                    self.telemetry.note_taken(0)
                if time.monotonic() >= next_idle_check:
                    self.close_idle_partitions()
                    next_idle_check = time.monotonic() + 1.0
                if time.monotonic() >= next_probe:
                    # Messages prove the broker answers; a metadata request queues behind the fetch in flight
                    # (measured: 0.5 s each while a backlog is read), so it is sent only when nothing came.
                    if not self.health.broker_answered_within(BROKER_PROBE_SECONDS):
                        self.probe_broker(consumer)
                    next_probe = time.monotonic() + BROKER_PROBE_SECONDS
                self.note_lags()
        finally:
            consumer.close()  # leaves the group: the partitions go to the other workers at once
            end_offsets.close()
            self.producer.flush(5.0)

    def check_label_partitions(self, consumer: Consumer) -> None:
        """The join needs a prediction and its label on the same partition number: equal partition counts."""
        if self.label_topic is None:
            return
        topics = consumer.list_topics(timeout=15.0).topics
        counts = [len(topics[t].partitions) if t in topics else 0 for t in (self.topic, self.label_topic)]
        if counts[0] != counts[1]:
            log.error(
                "the late-label join is off: %s has %d partitions and %s %d; it needs the same number on both "
                "(a prediction and its label share a key and so a partition number)",
                self.topic,
                counts[0],
                self.label_topic,
                counts[1],
            )
            self.label_topic = None

    @staticmethod
    def read_batch(consumer: Consumer) -> list[Message]:
        """Up to :data:`BATCH` messages: what the client holds now, topped up for at most 0.1 s, or, when it
        holds nothing, what arrives within 0.5 s of the first message's wait.

        ``consume(BATCH, 0.5)`` alone waits the full 0.5 s whenever fewer than a batch are queued, which is
        always the case while tailing live traffic.
        """
        messages = consumer.consume(BATCH, timeout=0)
        if len(messages) >= BATCH:
            return messages
        if not messages:
            messages = consumer.consume(1, timeout=0.5)  # returns at the first message
            if not messages:
                return messages
        return messages + consumer.consume(BATCH - len(messages), timeout=0.1)

    # -- assignment -------------------------------------------------------------------------------------------
    def load(self, partition: int) -> PartitionAccumulator:
        accumulator = PartitionAccumulator(
            topic=self.topic,
            partition=partition,
            window_for_model=self.window_for_model,
            allowed_lateness=timedelta(seconds=self.settings.allowed_lateness_seconds),
            limits=self.limits,
            dedupe_horizon=self.settings.dedupe_horizon,
        )
        if self.label_topic is not None:
            accumulator.join = LabelJoin(
                topic=self.label_topic,
                partition=partition,
                settings_for_model=self.joined_model,
                window_for_model=self.window_for_model,
                allowed_lateness=timedelta(seconds=self.settings.allowed_lateness_seconds),
                limits=self.limits,
                max_pending=min(
                    (c.performance.max_pending for c in self.configs.values() if c.performance.label_deadline),
                    default=100_000,
                ),
            )
        saved = read_partition_checkpoint(self.storage, self.group, self.topic, partition)
        if saved is not None:
            accumulator.restore(saved)
            log.info(
                "partition %d: resuming after offset %d (%d open windows)",
                partition,
                saved.last_offset,
                len(saved.open_windows),
            )
        return accumulator

    def on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Load each assigned partition's checkpoint and start it right after: never at a committed offset."""
        taken = []
        for tp in sorted(partitions, key=lambda tp: tp.topic != self.topic):  # the predictions' first
            if tp.topic == self.topic:
                if tp.partition not in self.accumulators:
                    self.accumulators[tp.partition] = self.load(tp.partition)
                tp.offset = self.accumulators[tp.partition].next_offset
            else:
                # A labels partition is read only with its predictions partition: the two share one checkpoint.
                # The group gives them together when every worker subscribes to both topics with equal partition
                # counts (range assignment); a worker assigned one alone (workers configured differently during a
                # rolling change) leaves it unread, so no two workers ever write one checkpoint.
                accumulator = self.accumulators.get(tp.partition)
                if accumulator is None or accumulator.join is None:
                    log.error(
                        "%s[%d] was assigned without %s[%d]; not reading it (give every worker the same monitor "
                        "configs: the late-label join needs both partitions on one worker)",
                        tp.topic,
                        tp.partition,
                        self.topic,
                        tp.partition,
                    )
                    continue
                tp.offset = accumulator.join.next_offset
                self.label_seen[tp.partition] = self.health.clock()
            taken.append(tp)
        self.health.hold(self.accumulators)
        self.health.joined = True
        consumer.assign(taken)

    def on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Drop revoked partitions: their checkpoints are saved (callbacks run between batches, in this thread)."""
        for tp in partitions:
            if tp.topic != self.topic:
                self.label_eof_at.pop(tp.partition, None)
                continue  # the join goes with its predictions partition (assigned together)
            self.accumulators.pop(tp.partition, None)
            self.lags.pop(tp.partition, None)
            self.eof_at.pop(tp.partition, None)
        self.health.hold(self.accumulators)

    # -- a batch ----------------------------------------------------------------------------------------------
    def take(self, messages: list[Message]) -> None:
        batch = Batch(now=datetime.now(UTC))  # the reader's clock, once per batch: it bounds event times ahead
        for message in messages:
            partition, offset = message.partition(), message.offset()
            error = message.error()
            topic = message.topic()
            if error is not None:  # client errors (transport, poll interval) carry no partition
                if error.code() == KafkaError._PARTITION_EOF and partition is not None and offset is not None:
                    (self.eof_at if topic == self.topic else self.label_eof_at)[partition] = offset
                else:
                    log.warning("%s[%s]: %s", topic, partition, error)
                continue
            assert partition is not None and offset is not None and topic is not None  # set on every message
            accumulator = self.accumulators.get(partition)
            if accumulator is None or (topic, partition) in batch.sent_back:
                continue  # not ours any more, or its messages after a gap are read again after the seek
            if topic == self.topic:
                self.take_prediction(accumulator, message, partition, offset, batch)
            elif accumulator.join is not None and self.take_label(accumulator.join, message, partition, offset, batch):
                batch.touched.add(partition)
        for partition in batch.seen:
            self.health.progress(partition)
        if batch.seen:
            self.health.broker_answered()
        self.report_and_save(batch.touched)
        counted, duplicates = self.intake.drain()
        self.telemetry.batch(counted=counted, dead_lettered=batch.causes, duplicates=duplicates, taken=batch.taken)

    def take_prediction(
        self, accumulator: PartitionAccumulator, message: Message, partition: int, offset: int, batch: Batch
    ) -> None:
        batch.seen.add(partition)  # a replay of counted offsets is activity too
        self.eof_at.pop(partition, None)
        if accumulator.already_counted(offset):
            return  # held by the checkpoint
        if accumulator.skips_ahead(offset):
            if not self.gap_confirmed(self.topic, partition, accumulator.next_offset, offset):
                self.send_back(self.topic, partition, accumulator.next_offset)
                batch.sent_back.add((self.topic, partition))
                return
            accumulator.skip_to(offset)
        value = message.value()
        outcome = self.intake.take(accumulator, offset, value, broker_time(message), batch.now)
        batch.touched.add(partition)
        batch.taken += 1
        if outcome.refused:
            self.send_dead_letter(value or b"", outcome.refused, partition, offset)
            cause = outcome.cause or "invalid"
            batch.causes[cause] = batch.causes.get(cause, 0) + 1
        if outcome.alert:
            log.warning("model %r has no monitor config; using the default limits", outcome.alert.model)
            self.send_alert(outcome.alert)

    def take_label(self, join: LabelJoin, message: Message, partition: int, offset: int, batch: Batch) -> bool:
        """Fold one label message into its partition's join; returns whether the join moved (a report is due).

        Offsets one after the other, as for the predictions. An invalid label is skipped here: ingest
        dead-letters it (one bad message, one dead letter)."""
        topic = join.topic
        self.label_seen[partition] = self.health.clock()
        self.label_eof_at.pop(partition, None)
        if join.already_counted(offset):
            return False
        if join.skips_ahead(offset):
            if not self.gap_confirmed(topic, partition, join.next_offset, offset):
                self.send_back(topic, partition, join.next_offset)
                batch.sent_back.add((topic, partition))
                return False
            join.skip_to(offset)
        value = message.value()
        try:
            if value is None:
                raise EventError("tombstone")
            label = read_event(value, "label", max_bytes=self.settings.max_event_bytes)
            assert isinstance(label, LabelRecord)
        except EventError:
            join.refuse(offset)
            self.labels_refused += 1
            return True
        if join.add_label(label, offset, broker_time(message), batch.now):
            self.labels_refused += 1
        return True

    def gap_confirmed(self, topic: str, partition: int, expected: int, offset: int) -> bool:
        """Whether the broker holds nothing from ``expected`` up to ``offset`` (asked outside the group)."""
        confirmed, first = confirm_gap(self.settings, topic, partition, expected, offset)
        if confirmed:
            return True
        log.error(
            "%s[%d]: offset %d arrived but %d is the next to take (the broker's first message from there: %s); "
            "reading again from offset %d",
            topic,
            partition,
            offset,
            expected,
            first,
            expected,
        )
        return False

    def send_back(self, topic: str, partition: int, offset: int) -> None:
        returns = self.returns[(topic, partition, offset)] = self.returns.get((topic, partition, offset), 0) + 1
        if returns > RETURNS_BEFORE_EXIT:
            exit_for_restart(
                "%s[%d]: sent back to offset %d %d times and still not read from there; exiting so that the "
                "worker restarts there",
                topic,
                partition,
                offset,
                returns - 1,
            )
        assert self.consumer is not None
        self.consumer.seek(KafkaPartition(topic, partition, offset))

    def report_and_save(self, partitions: set[int]) -> None:
        """Send each partition's report, wait until everything sent is acknowledged, save the checkpoints."""
        saved: list[PartitionCheckpoint] = []
        for partition in sorted(partitions):
            accumulator = self.accumulators[partition]
            closed = accumulator.close_ready()
            self.telemetry.reported.inc(len(closed))
            report = accumulator.report(closed, accumulator.close_performance())
            self.send(self.settings.topics.window_reports, str(partition).encode(), report.to_json())
            saved.append(accumulator.checkpoint())
        self.delivered_or_exit()
        for checkpoint in saved:
            write_partition_checkpoint(self.storage, self.group, checkpoint)
        if saved:
            assert self.consumer is not None
            offsets = [KafkaPartition(self.topic, c.partition, c.last_offset + 1) for c in saved]
            offsets += [
                KafkaPartition(c.label_join.topic, c.partition, c.label_join.last_offset + 1)
                for c in saved
                if c.label_join is not None
            ]
            try:  # for tooling that shows consumer lag; never read back (module docstring)
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                log.info("could not commit the saved checkpoints' offsets (%s); they are not needed", exc)

    # -- sends ------------------------------------------------------------------------------------------------
    def send(self, topic: str, key: bytes, value: bytes) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self.on_delivery)
                return
            except BufferError:
                self.producer.poll(0.1)  # the local queue is full: let deliveries drain it

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed.append(f"{message.topic()}: {error}")

    def delivered_or_exit(self) -> None:
        """Wait until the broker acknowledged everything sent, or end the process (crash-only, module docstring)."""
        assert self.producer is not None
        started = time.monotonic()
        self.health.batch_started(started)
        remaining = self.producer.flush(self.settings.worker_stall_seconds)
        if remaining or self.failed:
            exit_for_restart(
                "a batch's writes were not acknowledged within %.0f s (%d pending, failures: %s); exiting so that "
                "the worker restarts from its last checkpoints",
                time.monotonic() - started,
                remaining,
                "; ".join(self.failed[:3]) or "none",
            )
        self.health.batch_started(None)

    def send_dead_letter(self, raw: bytes, reason: str, partition: int, offset: int) -> None:
        record = DeadLetter(
            reason=reason,
            source="worker",
            topic=self.topic,
            partition=partition,
            offset=offset,
            original=original_text(raw),
        )
        # A replayed copy carries the same key.
        self.send(self.settings.topics.dead_letter, f"{partition}:{offset}".encode(), record.to_json())

    def send_alert(self, alert: Alert) -> None:
        self.send(self.settings.topics.alerts, alert.model.encode(), alert.to_json())

    # -- idle partitions and lag --------------------------------------------------------------------------------
    def close_idle_partitions(self) -> None:
        """Raise the watermark of idle partitions to the wall clock (module docstring): the predictions' partitions
        and, with the late-label join, the labels' partitions of the same number."""
        now = self.health.clock()  # the wall clock (time.time)
        predictions_silent = partial(self.health.silent_for, now=now)
        moved = self._close_idle(self.topic, lambda accumulator: accumulator, predictions_silent, self.eof_at, now)
        if self.label_topic is not None:

            def labels_silent(partition: int) -> float:
                return now - self.label_seen.get(partition, now)

            moved |= self._close_idle(
                self.label_topic, lambda accumulator: accumulator.join, labels_silent, self.label_eof_at, now
            )
        if moved:
            self.report_and_save(moved)

    def _close_idle(
        self,
        topic: str,
        progress_of: Callable[[PartitionAccumulator], PartitionProgress | None],
        silent_for: Callable[[int], float],
        eof_at: dict[int, int],
        now: float,
    ) -> set[int]:
        """The partitions of ``topic`` whose watermark moved to the wall clock: silent for the idle time, the last
        fetch empty at the next offset to count, and the broker's end offset there too."""
        assert self.end_offsets is not None
        moved: set[int] = set()
        for partition, accumulator in list(self.accumulators.items()):
            progress = progress_of(accumulator)
            if progress is None or silent_for(partition) < self.settings.idle_close_seconds:
                continue
            if eof_at.get(partition) != progress.next_offset:
                continue  # the last fetch did not come back empty at the next offset to count
            try:
                _, end = self.end_offsets.get_watermark_offsets(
                    KafkaPartition(topic, partition), timeout=5.0, cached=False
                )
            except KafkaException as exc:
                log.info(
                    "not closing idle partition %d of %s: the broker did not say where it ends (%s)",
                    partition,
                    topic,
                    exc,
                )
                continue
            if end > progress.next_offset:
                continue
            if progress.mark_idle(datetime.fromtimestamp(now, tz=UTC)):
                moved.add(partition)
                log.info("partition %d of %s is idle: its watermark is now %s", partition, topic, progress.watermark)
                # The wall clock is the one thing a replay would not decide the same way: save the decision
                # (windows still open) before any window it closes is sent, so a restart closes the same ones.
                write_partition_checkpoint(self.storage, self.group, accumulator.checkpoint())
        return moved

    def note_lags(self) -> None:
        """Messages not counted yet per partition, from the end offsets of the last fetches (no broker call)."""
        assert self.consumer is not None
        for partition, accumulator in list(self.accumulators.items()):
            try:
                _, end = self.consumer.get_watermark_offsets(KafkaPartition(self.topic, partition), cached=True)
            except KafkaException:
                end = -1
            self.lags[partition] = None if end < 0 else max(0, end - accumulator.next_offset)
        open_windows = sum(len(a.open_windows) for a in self.accumulators.values())
        self.telemetry.partitions(self.topic, dict(self.lags), open_windows)
        if self.label_topic is not None:
            label_lags: dict[int, int | None] = {}
            joins = [(p, a.join) for p, a in self.accumulators.items() if a.join is not None]
            for partition, join in joins:
                try:
                    _, end = self.consumer.get_watermark_offsets(
                        KafkaPartition(self.label_topic, partition), cached=True
                    )
                except KafkaException:
                    end = -1
                label_lags[partition] = None if end < 0 else max(0, end - join.next_offset)
            self.telemetry.label_join(self.label_topic, label_lags, [join for _, join in joins])

    def probe_broker(self, consumer: Consumer) -> None:
        """Ask the broker for the topic's metadata: an answer keeps the worker ready (streams/health.py)."""
        try:
            consumer.list_topics(self.topic, timeout=BROKER_PROBE_SECONDS)
        except KafkaException as exc:
            log.info("the broker did not answer a metadata request (%s)", exc)
            return
        self.health.broker_answered()
