"""The stream worker: rolling metrics per model version, threshold alerts, alert delivery.

:func:`build_worker` adds the agents to an app made from one :class:`Settings`;
:func:`main` builds and runs it (``driftline worker``). The decisions live in
pure modules (:mod:`.partition_state`, :mod:`.merger`, :mod:`.thresholds`); this
module only reads topics, calls them, writes topics and saves checkpoints.

Three agents, in one consumer group however many workers run:

1. ``compute_metrics`` reads the predictions topic. Each source partition has a
   :class:`PartitionAccumulator`; after each batch, the partitions it touched
   send a :class:`PartitionReport` (their closed partial windows and watermark)
   to the window-reports topic and, once that and the batch's dead letters are
   delivered, save their checkpoint to storage. Only then does the batch end,
   so Faust commits no offset past a saved checkpoint.
2. ``merge_windows`` reads the window-reports topic (one partition: one worker
   of the group runs it). It publishes each window on the metrics topic once
   every source partition has passed it, judges thresholds on the whole window
   and sends the alerts, then saves its checkpoint.
3. ``deliver_alerts`` posts each alert once: an alert id already recorded as
   sent in storage is skipped, so a re-published window or a second worker
   never notifies twice; a Slack outage only delays delivery.

A ``kill -9`` at any moment loses nothing and counts nothing twice: see
partition_state.py and merger.py for why, and ``make chaos`` for the proof on
real processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.transport.consumer import Consumer
from faust.types import TP, StreamT

from driftline.schemas.config import MetricSettings, MonitorConfig, load_monitor_configs
from driftline.schemas.events import EventLimits
from driftline.schemas.records import (
    Alert,
    DeadLetter,
    PartitionCheckpoint,
    PartitionReport,
    RecordError,
    original_text,
)
from driftline.schemas.settings import Settings
from driftline.schemas.storage.base import Storage
from driftline.schemas.storage.state import (
    alert_sent,
    mark_alert_sent,
    read_merger_checkpoint,
    read_partition_checkpoint,
    write_merger_checkpoint,
    write_partition_checkpoint,
)
from driftline.streams.alerts import (
    Notifier,
    alert_blocks,
    deliver_with_retry,
    format_threshold_alert,
    notifier_from_settings,
)
from driftline.streams.app import create_app
from driftline.streams.health import WorkerHealth
from driftline.streams.intake import PredictionIntake
from driftline.streams.merger import WindowMerger
from driftline.streams.partition_state import PartitionAccumulator
from driftline.streams.thresholds import window_alerts
from driftline.streams.topics import ensure_topics, first_offset_from, partition_count

log = logging.getLogger("driftline.worker")


class MetricsWorker:
    """The worker's state and its agents' bodies; :func:`build_worker` wires them to the app."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        configs: dict[str, MonitorConfig],
        notifier: Notifier,
        source_partitions: int,
    ) -> None:
        self.app = app
        self.settings = settings
        self.configs = configs
        self.notifier = notifier
        self.source_partitions = source_partitions
        self.group = app.conf.id
        self.storage = Storage.from_settings(settings)
        topics = settings.topics
        # Raw bytes in: validation happens in the agent so a malformed message goes to
        # the dead-letter topic with its reason instead of failing in Faust's codec.
        self.predictions = app.topic(topics.predictions, key_type=bytes, value_type=bytes, value_serializer="raw")
        self.reports_topic = app.topic(topics.window_reports, partitions=1, value_serializer="raw")
        self.metrics_topic = app.topic(topics.metrics, value_serializer="raw")
        self.alerts_topic = app.topic(topics.alerts, value_serializer="raw")
        self.dead_letter = app.topic(topics.dead_letter, value_serializer="raw")
        self.limits = EventLimits.from_settings(settings)
        self.intake = PredictionIntake(configs, max_bytes=settings.max_event_bytes)
        self.accumulators: dict[int, PartitionAccumulator] = {}
        self.merger: WindowMerger | None = None  # while this worker holds the window-reports topic
        # Source partitions and the window-reports partition held -> the offset after their last saved checkpoint:
        # the only offset committed for them (see committable()).
        self.saved_next: dict[TP, int] = {}
        self.health = WorkerHealth(stall_after=settings.worker_stall_seconds)
        # The agents and the idle timer change the same state, and each change ends in a checkpoint.
        self.lock = asyncio.Lock()

    def window_for_model(self, model: str) -> timedelta:
        config = self.configs.get(model)
        return config.metrics.window if config else MetricSettings().window  # unconfigured: the defaults

    # -- state: loaded when a partition is assigned, saved after every change ----------------------------
    def load_accumulator(self, partition: int) -> PartitionAccumulator:
        accumulator = PartitionAccumulator(
            topic=self.settings.topics.predictions,
            partition=partition,
            window_for_model=self.window_for_model,
            allowed_lateness=timedelta(seconds=self.settings.allowed_lateness_seconds),
            limits=self.limits,
            dedupe_horizon=self.settings.dedupe_horizon,
        )
        saved = read_partition_checkpoint(self.storage, self.group, accumulator.topic, partition)
        if saved is not None:
            accumulator.restore(saved)
            log.info(
                "partition %d: resuming after offset %d (%d open windows)",
                partition,
                saved.last_offset,
                len(saved.open_windows),
            )
        return accumulator

    def load_merger(self) -> WindowMerger:
        merger = WindowMerger(self.settings.topics.window_reports, self.source_partitions)
        saved = read_merger_checkpoint(self.storage, self.group)
        if saved is not None:
            merger.restore(saved)
            log.info("window merger: resuming after report offset %d", saved.last_offset)
        return merger

    async def on_partitions_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs.get("assigned", set())
        topics = self.settings.topics
        async with self.lock:
            held = {tp.partition for tp in assigned if tp.topic == topics.predictions}
            for partition in set(self.accumulators) - held:
                del self.accumulators[partition]  # its new owner resumes from the checkpoint of our last batch
            for partition in held - set(self.accumulators):
                self.accumulators[partition] = await asyncio.to_thread(self.load_accumulator, partition)
            self.health.hold(held)
            merging = any(tp.topic == topics.window_reports for tp in assigned)
            if merging and self.merger is None:
                self.merger = await asyncio.to_thread(self.load_merger)
            elif not merging:
                self.merger = None
            self.health.merging = merging
            # What is held starts at its checkpoint (offset 0 without one) whatever offset was committed.
            self.saved_next = {TP(topics.predictions, p): self.accumulators[p].next_offset for p in held}
            if self.merger is not None:
                self.saved_next[TP(topics.window_reports, 0)] = self.merger.last_offset + 1

    async def report_and_save(self, partitions: set[int], sends: list[Awaitable[Any]]) -> None:
        """Send each partition's report, wait until it and ``sends`` are delivered, then save the checkpoints."""
        saved = []
        for partition in sorted(partitions):
            accumulator = self.accumulators.get(partition)
            if accumulator is None:
                continue
            report = accumulator.report(accumulator.close_ready())
            sends.append(await self.reports_topic.send(key=str(partition).encode(), value=report.to_json()))
            saved.append(accumulator.checkpoint())
        await self.delivered_or_exit(sends)
        for checkpoint in saved:
            await self.save_checkpoint(checkpoint)

    async def save_checkpoint(self, checkpoint: PartitionCheckpoint) -> None:
        await asyncio.to_thread(write_partition_checkpoint, self.storage, self.group, checkpoint)
        self.saved_next[TP(checkpoint.topic, checkpoint.partition)] = checkpoint.last_offset + 1  # the next commit

    async def delivered_or_exit(self, sends: list[Awaitable[Any]]) -> None:
        """Wait until the broker acknowledged every message sent, or end the process.

        Crash-only: a batch whose writes fail or are not acknowledged within ``DRIFTLINE_WORKER_STALL_SECONDS``
        leaves memory ahead of the saved checkpoints, and nothing but a restart from them is exact. So the
        worker exits (code 75) without saving or acknowledging anything more; its supervisor (systemd,
        Kubernetes, ``make chaos``) restarts it and it resumes from the last checkpoints, as after a ``kill -9``.
        """
        started = time.monotonic()
        self.health.batch_started(started)
        try:
            await asyncio.wait_for(delivered(sends), timeout=self.settings.worker_stall_seconds)
        except BaseException as exc:  # noqa: BLE001 - any failure here ends the process (see above)
            log.critical(
                "a batch's writes were not acknowledged within %.0f s (%r); exiting so that the worker restarts "
                "from its last checkpoints",
                time.monotonic() - started,
                exc,
            )
            logging.shutdown()
            os._exit(75)
        self.health.batch_started(None)

    # -- agents -------------------------------------------------------------------------------------------
    async def compute_metrics(self, stream: StreamT[bytes]) -> None:
        """Validate predictions and fold them into their partition's windows, a batch at a time."""
        assert isinstance(stream, Stream)  # take_events is on the implementation, not on StreamT
        async for events in stream.take_events(5000, within=0.5):
            async with self.lock:
                touched: set[int] = set()
                sends: list[Awaitable[Any]] = []
                for event in events:
                    message = event.message
                    accumulator = self.accumulators.get(message.partition)
                    if accumulator is None:
                        continue  # not ours any more (a rebalance)
                    self.health.progress(message.partition)  # a replay of counted offsets is activity too
                    if accumulator.already_counted(message.offset):
                        continue  # held by the checkpoint (a replay)
                    if accumulator.skips_ahead(message.offset):
                        gap = (message.topic, message.partition, accumulator.next_offset, message.offset)
                        accumulator.skip_to(await self.go_on_after_gap(*gap))
                    broker_time = datetime.fromtimestamp(message.timestamp, tz=UTC) if message.timestamp else None
                    outcome = self.intake.take(accumulator, message.offset, event.value, broker_time)
                    touched.add(message.partition)
                    if outcome.refused:
                        sends.append(await self.send_dead_letter(event.value or b"", outcome.refused, message))
                    if outcome.alert:
                        log.warning("model %r has no monitor config; using the default limits", outcome.alert.model)
                        sends.append(await self.send_alert(outcome.alert))
                await self.report_and_save(touched, sends)

    async def go_on_after_gap(self, topic: str, partition: int, expected: int, offset: int) -> int:
        """The message at ``offset`` arrived past ``expected``, the next offset to take: returns ``offset`` when
        the broker confirms that it holds nothing in between, else restarts the worker at the checkpoint.

        A confirmed gap (retention deleted messages before any worker took them, or the broker never wrote those
        offsets: the embedded broker leaves one out across a restart, measured) is logged and skipped.
        Otherwise the consumer was moved past messages never taken: the worker commits the checkpoint's offset
        and exits (code 75), crash-only like :meth:`delivered_or_exit`; the supervisor restarts it and Faust
        starts the partition at the committed offset, the checkpoint's (:meth:`committable`). Seeking inside a
        running Faust consumer is not reliable (messages already fetched move its read offset past the sought
        one, and it drops the re-fetched messages below that).
        """
        try:
            first = await asyncio.to_thread(first_offset_from, self.settings, topic, partition, expected)
        except Exception as exc:  # noqa: BLE001 - unknown counts as not confirmed
            log.info("%s[%d]: the broker did not say where its next message is (%s)", topic, partition, exc)
            first = None
        if first == offset:
            log.warning(
                "%s[%d]: the broker holds no message at offsets %d to %d (deleted by retention before they were "
                "taken, or never written); going on from offset %d",
                topic,
                partition,
                expected,
                offset - 1,
                offset,
            )
            return offset
        log.critical(
            "%s[%d]: offset %d arrived but %d is the next to take (the broker's first message from there: %s); "
            "committing offset %d and exiting so that the worker restarts there",
            topic,
            partition,
            offset,
            expected,
            first,
            expected,
        )
        try:
            await asyncio.wait_for(self.app.consumer.commit(), timeout=self.settings.worker_stall_seconds)
        except Exception as exc:  # noqa: BLE001 - exit anyway: the next commit after the restart sets it
            log.error("could not commit before exiting (%r)", exc)
        logging.shutdown()
        os._exit(75)

    def committable(self, faust_offsets: dict[TP, int], committed: Mapping[TP, int | None]) -> dict[TP, int]:
        """The offsets to commit: Faust's, except on the predictions and window-reports topics, where they are the
        saved checkpoints'.

        Faust commits the offsets of the messages it acknowledged, and it acknowledges messages it never handed
        to the agent (those fetched before a rebalance and skipped after it; the rest of a batch a stopping
        worker did not finish): a CI run lost 745 events to that, and a full-size ``make chaos`` half of its
        backlog windows' reports. With this, the committed offset of a source partition, and of the reports
        partition, is always the next offset after a saved checkpoint, so whoever reads it next, after a restart
        or a rebalance, starts exactly where the checkpoint ends. It also lowers an offset committed too far,
        which is how :meth:`go_on_after_gap` moves the consumer back.
        """
        mine = {self.settings.topics.predictions, self.settings.topics.window_reports}
        offsets = {tp: offset for tp, offset in faust_offsets.items() if tp.topic not in mine}
        for tp, next_offset in self.saved_next.items():
            if committed.get(tp) != next_offset:
                offsets[tp] = next_offset
        return offsets

    async def watchdog(self) -> None:
        """Crash-only, like a batch whose writes are not acknowledged: a rebalance that does not end within
        ``DRIFTLINE_WORKER_STALL_SECONDS`` ends the process (code 75) for its supervisor to restart it."""
        lasted = self.health.note_rebalancing(bool(getattr(self.app, "rebalancing", False)))
        if lasted is not None and lasted >= self.settings.worker_stall_seconds:
            log.critical("in a consumer-group rebalance for %.0f s; exiting so that the worker restarts", lasted)
            logging.shutdown()
            os._exit(75)

    async def close_idle_partitions(self) -> None:
        """A partition silent for the idle time *and* caught up is idle: its watermark follows the wall clock.

        Silence alone is not enough: while the broker is unreachable (or restarting) every partition is
        silent, and a starved process can leave one partition unread for a while during a backlog. So a
        silent partition counts as caught up only when (1) the broker answers for its end offset and says
        nothing is left, and (2) the consumer has taken nothing from it beyond what was counted (its fetch
        position is right after the last offset counted). The second check matters where the first is wrong:
        the embedded broker reports the start of the last batch as the end (measured: end offset 1 after a
        batch of 1,000), so it alone would call a partition with a backlog caught up.
        """
        now = time.time()
        silent = {
            partition: accumulator
            for partition, accumulator in self.accumulators.items()
            if self.health.silent_for(partition, now) >= self.settings.idle_close_seconds
        }
        if not silent:
            return
        partitions = {partition: TP(accumulator.topic, partition) for partition, accumulator in silent.items()}
        try:
            ends = await asyncio.wait_for(self.app.consumer.highwaters(*partitions.values()), timeout=5.0)
            positions = {p: await self.app.consumer.position(tp) for p, tp in partitions.items()}
        except Exception as exc:  # noqa: BLE001 - any failure means "not known to be caught up"
            log.info("not closing idle partitions: the broker did not say where they end (%s)", exc)
            return
        async with self.lock:
            moved = set()
            for partition, accumulator in silent.items():
                end, position = ends.get(partitions[partition]), positions.get(partition)
                if (
                    self.accumulators.get(partition) is accumulator  # still ours
                    and end is not None
                    and end <= accumulator.last_offset + 1
                    and position is not None
                    and position <= accumulator.last_offset + 1
                    and self.health.silent_for(partition) >= self.settings.idle_close_seconds
                    and accumulator.mark_idle(datetime.fromtimestamp(now, tz=UTC))
                ):
                    moved.add(partition)
                    log.info("partition %d is idle: its watermark is now %s", partition, accumulator.watermark)
                    # The wall clock is the one thing a replay would not decide the same way: save the decision
                    # (windows still open) before any window it closes is sent, so a restart closes the same ones.
                    decided = accumulator.checkpoint()
                    await self.save_checkpoint(decided)
            if moved:
                await self.report_and_save(moved, [])

    async def on_partitions_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Drop revoked partitions at once (their checkpoints are saved); the idle timer must not touch them."""
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        async with self.lock:
            for tp in revoked:
                self.saved_next.pop(tp, None)
                if tp.topic == self.settings.topics.predictions:
                    self.accumulators.pop(tp.partition, None)
                elif tp.topic == self.settings.topics.window_reports:
                    self.merger = None

    async def merge_windows(self, stream: StreamT[bytes]) -> None:
        """Publish each window once every source partition has passed it; alert on the whole window."""
        assert isinstance(stream, Stream)
        async for events in stream.take_events(1000, within=0.2):
            async with self.lock:
                merger = self.merger
                if merger is None:
                    continue  # revoked while the batch was read; the new holder re-reads it
                for event in events:
                    offset, topic = event.message.offset, event.message.topic
                    if merger.already_taken(offset):
                        continue
                    if offset > merger.last_offset + 1:  # reports are taken one after the other, like events
                        merger.last_offset = await self.go_on_after_gap(topic, 0, merger.last_offset + 1, offset) - 1
                    try:
                        merger.take(PartitionReport.parse(event.value), offset)
                    except RecordError as exc:
                        log.error("skipping a message on the window-reports topic that is not a report: %s", exc)
                        merger.last_offset = offset
                sends: list[Awaitable[Any]] = []
                for metrics in merger.close_ready():
                    sends.append(await self.metrics_topic.send(key=metrics.key.encode(), value=metrics.to_json()))
                    sends += [await self.send_alert(a) for a in window_alerts(metrics, self.configs.get(metrics.model))]
                self.health.merged(merger)
                await self.delivered_or_exit(sends)
                await asyncio.to_thread(write_merger_checkpoint, self.storage, self.group, merger.checkpoint())
                self.saved_next[TP(merger.topic, 0)] = merger.last_offset + 1

    async def deliver_alerts(self, stream: StreamT[bytes]) -> None:
        """Post alerts to Slack (or the console), each alert id once. Acknowledged only once delivered."""
        async for raw in stream:
            try:
                alert = Alert.parse(raw)
            except RecordError as exc:  # not ours to deliver, and it must not stop the agent
                log.error("skipping a message on the alerts topic that is not an alert: %s", exc)
                continue
            if await asyncio.to_thread(alert_sent, self.storage, alert.alert_id):
                log.info("alert %s was already delivered; not sending it again", alert.alert_id)
                continue
            text = alert.text or format_threshold_alert(alert)
            blocks = alert_blocks(alert.model_copy(update={"text": text}))
            attempts = await asyncio.to_thread(
                partial(deliver_with_retry, self.notifier, text, alert.channel, blocks=blocks)
            )
            await asyncio.to_thread(mark_alert_sent, self.storage, alert)
            log.info("alert %s delivered via %s after %d attempt(s)", alert.alert_id, self.notifier.name, attempts)

    # -- sends (each returns the delivery to wait for) ----------------------------------------------------
    async def send_dead_letter(self, raw: bytes, reason: str, message: Any) -> Awaitable[Any]:
        record = DeadLetter(
            reason=reason,
            source="worker",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            original=original_text(raw),
        )
        key = f"{message.partition}:{message.offset}".encode()  # a replayed copy carries the same key
        return await self.dead_letter.send(key=key, value=record.to_json())

    async def send_alert(self, alert: Alert) -> Awaitable[Any]:
        return await self.alerts_topic.send(key=alert.model.encode(), value=alert.to_json())


async def delivered(sends: list[Awaitable[Any]]) -> None:
    """Wait until every message sent is acknowledged by the broker."""
    for pending in sends:
        await pending


def build_worker(
    settings: Settings, configs: dict[str, MonitorConfig], notifier: Notifier, *, source_partitions: int
) -> faust.App:
    """The Faust app with its topics, agents, timer and health page; nothing runs until the app is started.

    ``source_partitions`` is the predictions topic's partition count: the merger waits for each of them.
    """
    app = create_app(settings)
    worker = MetricsWorker(app, settings, configs, notifier, source_partitions)
    # Every commit Faust makes goes through this method (faust-streaming 0.15); the worker decides the offsets
    # of the predictions and window-reports topics. Without it the worker would not be exact: refuse to run.
    consumer = cast(Consumer, app.consumer)
    faust_offsets = getattr(consumer, "_filter_committable_offsets", None)
    if faust_offsets is None or not hasattr(consumer, "_committed_offset"):
        raise RuntimeError(
            f"this Faust ({faust.__version__}) has no Consumer._filter_committable_offsets, through which the "
            "worker decides its committed offsets; install the faust-streaming version pinned in constraints.txt"
        )

    def committable_offsets(tps: Any) -> dict[TP, int]:
        return worker.committable(faust_offsets(tps), consumer._committed_offset)

    setattr(consumer, "_filter_committable_offsets", committable_offsets)  # noqa: B010 - no public hook
    app.on_partitions_assigned.connect(worker.on_partitions_assigned)
    app.on_partitions_revoked.connect(worker.on_partitions_revoked)
    app.agent(worker.predictions, name="compute_metrics")(worker.compute_metrics)
    app.agent(worker.reports_topic, name="merge_windows")(worker.merge_windows)
    app.agent(worker.alerts_topic, name="deliver_alerts")(worker.deliver_alerts)
    app.timer(interval=1.0)(worker.close_idle_partitions)
    app.timer(interval=1.0)(worker.watchdog)
    worker.health.install(app, worker.accumulators)
    return app


def main(settings: Settings) -> None:
    """Run the worker (``driftline worker``); Faust reads its own options from ``sys.argv``."""
    configs = load_monitor_configs(settings.config_dir)
    ensure_topics(settings)
    source_partitions = partition_count(settings, settings.topics.predictions)
    build_worker(settings, configs, notifier_from_settings(settings), source_partitions=source_partitions).main()
