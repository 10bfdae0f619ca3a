"""The stream worker: rolling metrics per model version, threshold alerts, alert delivery.

:func:`build_worker` adds its parts to an app made from one :class:`Settings`;
:func:`main` builds and runs it (``driftline worker``). The decisions live in
pure modules (:mod:`.partition_state`, :mod:`.merger`, :mod:`.thresholds`); the
IO is here and in :mod:`.sources`. Three parts, in one process however many
workers run:

1. The **source reader** (:mod:`.sources`, a thread with a confluent-kafka
   consumer in the group ``<app id>-sources``) reads the predictions topic.
   Each source partition has a :class:`PartitionAccumulator`; after each batch,
   the partitions it touched send a :class:`PartitionReport` (their closed
   partial windows and watermark) to the window-reports topic and, once that and
   the batch's dead letters are delivered, save their checkpoint to storage.
   Each partition starts at its checkpoint, never at a committed offset.
2. ``merge_windows`` (a Faust agent) reads the window-reports topic (one
   partition: one worker of the group runs it). It publishes each window on the
   metrics topic once every source partition has passed it, judges thresholds
   on the whole window and sends the alerts, then saves its checkpoint.
3. ``deliver_alerts`` (a Faust agent) posts each alert once: an alert id already
   recorded as sent in storage is skipped, so a re-published window or a second
   worker never notifies twice; a Slack outage only delays delivery.

A ``kill -9`` at any moment loses nothing and counts nothing twice: see
partition_state.py, sources.py and merger.py for why, and ``make chaos`` for the
proof on real processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.transport.consumer import Consumer
from faust.types import TP, StreamT
from mode import Service

from driftline.schemas.config import MonitorConfig, load_monitor_configs
from driftline.schemas.records import Alert, RecordError, WindowMetrics, WindowPerformance, utc_now
from driftline.schemas.settings import Settings
from driftline.schemas.storage.base import Storage
from driftline.schemas.storage.models import read_deployment_state
from driftline.schemas.storage.state import (
    alert_sent,
    mark_alert_sent,
    read_merger_checkpoint,
    write_merger_checkpoint,
)
from driftline.schemas.worker_state import PartitionReport
from driftline.streams.alerts.delivery import Notifier, deliver_with_retry, notifier_from_settings
from driftline.streams.alerts.formatting import alert_blocks, format_threshold_alert
from driftline.streams.app import announce, create_app, serving_port
from driftline.streams.health import WorkerHealth
from driftline.streams.kafka_security import faust_security
from driftline.streams.merger import WindowMerger
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts import store as rollout_store
from driftline.streams.rollouts.publisher import DeploymentPublisher
from driftline.streams.sources import SourceReader
from driftline.streams.telemetry import WorkerTelemetry
from driftline.streams.topics import confirm_gap, ensure_topics, partition_count

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
        self.reports_topic = app.topic(topics.window_reports, partitions=1, value_serializer="raw")
        self.metrics_topic = app.topic(topics.metrics, value_serializer="raw")
        self.alerts_topic = app.topic(topics.alerts, value_serializer="raw")
        self.performance_topic = app.topic(topics.performance, value_serializer="raw")
        self.merger: WindowMerger | None = None  # while this worker holds the window-reports topic
        # The window-reports partition, while held -> the offset after the merger's last saved checkpoint: the only
        # offset committed for it (see committable()).
        self.saved_next: dict[TP, int] = {}
        # An alerts partition, while held -> the offset after the last alert handled with none skipped before it.
        self.alerts_next: dict[TP, int] = {}
        self.alerts_gap: set[TP] = set()  # alerts partitions where Faust handed over an offset past a missing one
        self.alerts_held: set[TP] = set()
        self.health = WorkerHealth(stall_after=settings.worker_stall_seconds)
        self.telemetry = WorkerTelemetry()
        self.sources = SourceReader(settings, configs, self.storage, self.group, self.health, telemetry=self.telemetry)
        self.publish_deployment = DeploymentPublisher(settings, timeout=5.0)
        # The merger's agent and the rebalance handlers change the same state.
        self.lock = asyncio.Lock()

    # -- state: loaded when the window-reports partition is assigned, saved after every change -------------
    def load_merger(self) -> WindowMerger:
        merger = WindowMerger(self.settings.topics.window_reports, self.source_partitions)
        saved = read_merger_checkpoint(self.storage, self.group)
        if saved is not None:
            merger.restore(saved)
            log.info("window merger: resuming after report offset %d", saved.last_offset)
        return merger

    async def on_partitions_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs.get("assigned", set())
        async with self.lock:
            merging = any(tp.topic == self.settings.topics.window_reports for tp in assigned)
            if merging and self.merger is None:
                self.merger = await asyncio.to_thread(self.load_merger)
            elif not merging:
                self.merger = None
            self.health.merging = merging
            # What is held starts at its checkpoint (offset 0 without one) whatever offset was committed.
            self.saved_next = {}
            self.alerts_held = {tp for tp in assigned if tp.topic == self.settings.topics.alerts}
            if self.merger is not None:
                self.saved_next[TP(self.merger.topic, 0)] = self.merger.last_offset + 1

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
        confirmed, first = await asyncio.to_thread(confirm_gap, self.settings, topic, partition, expected, offset)
        if confirmed:
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
        """The offsets to commit: Faust's, except on the window-reports topic, where it is the merger's saved
        checkpoint's.

        Faust commits the offsets of the messages it acknowledged, and it acknowledges messages it never handed
        to the agent (those fetched before a rebalance and skipped after it; the rest of a batch a stopping
        worker did not finish): a full-size ``make chaos`` lost half of its backlog windows' reports to that.
        With this, the committed offset of the reports partition is always the next offset after a saved
        checkpoint, so whoever reads it next, after a restart or a rebalance, starts exactly where the
        checkpoint ends. It also lowers an offset committed too far, which is how :meth:`go_on_after_gap` moves
        the consumer back. (The predictions topic is not Faust's: see sources.py.)
        """
        ours = {self.settings.topics.window_reports, self.settings.topics.alerts}
        offsets = {tp: offset for tp, offset in faust_offsets.items() if tp.topic not in ours}
        for tp, next_offset in [*self.saved_next.items(), *self.alerts_next.items()]:
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

    async def on_partitions_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Drop the merger at once when its partition is revoked (its checkpoint is saved)."""
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        async with self.lock:
            for tp in revoked:
                self.saved_next.pop(tp, None)
                self.alerts_next.pop(tp, None)
                self.alerts_gap.discard(tp)
                self.alerts_held.discard(tp)
                if tp.topic == self.settings.topics.window_reports:
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
                closed = merger.close_ready()
                for metrics in closed:
                    sends.append(await self.metrics_topic.send(key=metrics.key.encode(), value=metrics.to_json()))
                    config = self.configs.get(metrics.model)
                    alerts = merger.alerts.judge(metrics, config) + merger.predictions.judge(metrics, config)
                    sends += [await self.send_alert(alert) for alert in alerts]
                    if any(alert.kind == "prediction_drift" for alert in alerts):
                        self.telemetry.prediction_drift.labels(metrics.model, metrics.model_version).inc()
                    self.telemetry.window_published(metrics)
                performances = merger.close_ready_performance()
                for performance in performances:
                    sends.append(
                        await self.performance_topic.send(key=performance.key.encode(), value=performance.to_json())
                    )
                    for alert in merger.alerts.judge_performance(performance, self.configs.get(performance.model)):
                        sends.append(await self.send_alert(alert))
                    self.telemetry.performance_published(performance)
                sends += await self.control_rollouts(merger, closed, performances)
                self.health.merged(merger)
                self.telemetry.pending.set(len(merger.pending))
                await self.delivered_or_exit(sends)
                await asyncio.to_thread(write_merger_checkpoint, self.storage, self.group, merger.checkpoint())
                self.saved_next[TP(merger.topic, 0)] = merger.last_offset + 1

    async def control_rollouts(
        self, merger: WindowMerger, windows: list[WindowMetrics], performances: list[WindowPerformance]
    ) -> list[Awaitable[Any]]:
        """Feed the closed windows of each model with a rollout in progress to its stage's gates, and apply their
        decision (streams/rollout_control.py): the next deployment state is stored and published, then its
        ``deployment`` alert sent. A state changed meanwhile (a person acted) wins: the decision is dropped."""
        sends: list[Awaitable[Any]] = []
        for model in sorted({w.model for w in windows} | {p.model for p in performances}):
            config = self.configs.get(model)
            if config is None:
                continue
            state = await asyncio.to_thread(read_deployment_state, self.storage, model)
            if state is None:
                continue
            for window in windows:
                if window.model == model:
                    merger.rollouts.observe(state, window)
            for performance in performances:
                if performance.model == model:
                    merger.rollouts.observe_performance(state, performance)
            gates = config.deployment.gates
            if not gates.automatic:
                continue
            decision = merger.rollouts.decide(
                state, gates, config.alerts.slack_channel, now=utc_now(), min_share=config.deployment.bandit_min_share
            )
            if decision is None:
                continue
            try:
                await asyncio.to_thread(rollout_store.save, self.storage, decision.state, self.publish_deployment)
            except rollout.DeployError as exc:
                log.warning("rollout of %s: the gates decided %s, but %s", model, decision.verdict.decision, exc)
                continue
            log.info("rollout of %s: %s (%s)", model, decision.state.status, decision.verdict.reason)
            if decision.alert is not None:
                sends.append(await self.send_alert(decision.alert))
        return sends

    async def deliver_alerts(self, stream: StreamT[bytes]) -> None:
        """Post alerts to Slack (or the console), each alert id once, in offset order; the offset committed for
        the alerts topic is the one after the last alert handled without a gap before it (:meth:`committable`),
        so an alert Faust fetched and skipped in a rebalance is read again by whoever holds the partition next
        (and a copy already delivered is skipped by its id)."""
        assert isinstance(stream, Stream)
        async for event in stream.events():
            await self.deliver_alert(event.value)
            tp, offset = TP(event.message.topic, event.message.partition), event.message.offset
            async with self.lock:
                if tp not in self.alerts_held:
                    continue  # revoked while it was delivered: the next holder commits for it
                expected = self.alerts_next.get(tp)
                if expected is None:  # the first after an assignment starts where the group's commit is
                    committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)
                    expected = offset if committed is None else committed
                if expected == offset:
                    self.alerts_next[tp] = offset + 1
                elif offset > expected and tp not in self.alerts_gap:
                    self.alerts_gap.add(tp)
                    log.warning(
                        "alerts %s: offset %d came after %d; not committing past %d", tp, offset, expected, expected
                    )

    async def deliver_alert(self, raw: bytes) -> None:
        try:
            alert = Alert.parse(raw)
        except RecordError as exc:  # not ours to deliver, and it must not stop the agent
            log.error("skipping a message on the alerts topic that is not an alert: %s", exc)
            return
        if await asyncio.to_thread(alert_sent, self.storage, alert.alert_id):
            log.info("alert %s was already delivered; not sending it again", alert.alert_id)
            self.telemetry.alert(alert.kind, "already_sent")
            return
        text = alert.text or format_threshold_alert(alert)
        blocks = alert_blocks(alert.model_copy(update={"text": text}))
        attempts = await asyncio.to_thread(
            partial(deliver_with_retry, self.notifier, text, alert.channel, blocks=blocks)
        )
        await asyncio.to_thread(mark_alert_sent, self.storage, alert)
        self.telemetry.alert(alert.kind, "delivered")
        self.telemetry.alert(alert.kind, "attempt_failed", attempts - 1)
        log.info("alert %s delivered via %s after %d attempt(s)", alert.alert_id, self.notifier.name, attempts)

    # -- sends (each returns the delivery to wait for) ----------------------------------------------------
    async def send_alert(self, alert: Alert) -> Awaitable[Any]:
        return await self.alerts_topic.send(key=alert.model.encode(), value=alert.to_json())


async def delivered(sends: list[Awaitable[Any]]) -> None:
    """Wait until every message sent is acknowledged by the broker."""
    for pending in sends:
        await pending


def build_worker(
    settings: Settings, configs: dict[str, MonitorConfig], notifier: Notifier, *, source_partitions: int
) -> faust.App:
    """The Faust app with its topics, agents, timer, source reader and health page; nothing runs until the app is
    started.

    ``source_partitions`` is the predictions topic's partition count: the merger waits for each of them.
    """
    app = create_app(settings)
    worker = MetricsWorker(app, settings, configs, notifier, source_partitions)
    # Every commit Faust makes goes through this method (faust-streaming 0.15); the worker decides the offsets
    # of the window-reports topic. Without it the worker would not be exact: refuse to run.
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
    app.agent(worker.reports_topic, name="merge_windows")(worker.merge_windows)
    app.agent(worker.alerts_topic, name="deliver_alerts")(worker.deliver_alerts)
    app.timer(interval=1.0)(worker.watchdog)
    app.service(source_service(worker.sources))
    worker.health.install(app, lambda: dict(worker.sources.lags), worker.telemetry)
    return app


def source_service(reader: SourceReader) -> type[Service]:
    """A service that runs ``reader`` in a thread of its own from the app's start to its stop."""

    class SourceService(Service):
        def __post_init__(self) -> None:
            self.stop_reading = threading.Event()
            self.thread = threading.Thread(
                target=reader.run, args=(self.stop_reading,), name="driftline-sources", daemon=True
            )

        async def on_start(self) -> None:
            self.thread.start()

        async def on_stop(self) -> None:
            self.stop_reading.set()  # the reader ends its batch, leaves the group and returns
            await asyncio.to_thread(self.thread.join, 60.0)

    return SourceService


def main(settings: Settings) -> None:
    """Run the worker (``driftline worker``); Faust reads its own options from ``sys.argv``.

    The worker serves its pages on ``DRIFTLINE_WORKER_PORT`` or, when another worker on the host has it, the next
    free port (:func:`serving_port`), and lists itself for Prometheus under ``$DRIFTLINE_HOME/worker/prometheus/``
    while it runs."""
    faust_security(settings.kafka_options)  # a security setting the Faust client cannot take stops us here
    configs = load_monitor_configs(settings.config_dir)
    ensure_topics(settings)
    source_partitions = partition_count(settings, settings.topics.predictions)
    settings = replace(settings, worker_port=serving_port(settings.worker_host, settings.worker_port))
    target = announce(settings, settings.worker_port)
    try:
        build_worker(settings, configs, notifier_from_settings(settings), source_partitions=source_partitions).main()
    finally:
        target.unlink(missing_ok=True)
