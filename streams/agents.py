"""The stream worker: rolling metrics per model version, threshold alerts, alert delivery.

:func:`build_worker` adds the agents to an app made from one :class:`Settings`;
:func:`main` builds and runs it (``driftline worker``). The decisions live in
pure modules (:mod:`.metrics_state`, :mod:`.thresholds`); this module only
reads topics, calls them and writes topics.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.streams import Stream
from faust.types import StreamT

from driftline.schemas.config import MetricSettings, MonitorConfig, load_monitor_configs
from driftline.schemas.events import EventLimits
from driftline.schemas.records import Alert, DeadLetter, RecordError, original_text
from driftline.schemas.settings import Settings
from driftline.streams.alerts import Notifier, deliver_with_retry, format_threshold_alert, notifier_from_settings
from driftline.streams.app import create_app
from driftline.streams.intake import PredictionIntake
from driftline.streams.metrics_state import MetricsState
from driftline.streams.thresholds import window_alerts
from driftline.streams.topics import ensure_topics

log = logging.getLogger("driftline.worker")


def new_metrics_state(settings: Settings, configs: dict[str, MonitorConfig]) -> MetricsState:
    default_window = MetricSettings().window  # unconfigured models get the defaults

    def window_for_model(model: str) -> timedelta:
        config = configs.get(model)
        return config.metrics.window if config else default_window

    return MetricsState(
        window_for_model=window_for_model,
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_seconds),
        idle_close_after=settings.idle_close_seconds,
        limits=EventLimits.from_settings(settings),
    )


def build_worker(settings: Settings, configs: dict[str, MonitorConfig], notifier: Notifier) -> faust.App:
    """The Faust app with its topics, agents and timer; nothing runs until the app is started."""
    app = create_app(settings)
    # Raw bytes in: validation happens in the agent so a malformed message goes to
    # the dead-letter topic with its reason instead of failing in Faust's codec.
    predictions = app.topic(settings.topics.predictions, key_type=bytes, value_type=bytes, value_serializer="raw")
    metrics_topic = app.topic(settings.topics.metrics, value_serializer="raw")
    alerts_topic = app.topic(settings.topics.alerts, value_serializer="raw")
    dead_letter = app.topic(settings.topics.dead_letter, value_serializer="raw")
    state = new_metrics_state(settings, configs)
    intake = PredictionIntake(state, configs)

    async def on_partitions_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[Any] = args[0] if args else kwargs.get("assigned", set())
        state.assign(tp.partition for tp in assigned if tp.topic == settings.topics.predictions)

    app.on_partitions_assigned.connect(on_partitions_assigned)

    async def send_dead_letter(raw: bytes, reason: str, message: Any) -> None:
        record = DeadLetter(
            reason=reason,
            source="worker",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            original=original_text(raw),
        )
        await dead_letter.send(value=record.to_json())

    async def publish_closed_windows() -> None:
        for metrics in state.close_ready():
            await metrics_topic.send(key=metrics.key.encode(), value=metrics.to_json())
            for alert in window_alerts(metrics, configs.get(metrics.model)):
                await alerts_topic.send(key=alert.model.encode(), value=alert.to_json())

    async def compute_metrics(stream: StreamT[bytes]) -> None:
        """Validate predictions and fold them into the open windows, a batch at a time."""
        assert isinstance(stream, Stream)  # take_events is on the implementation, not on StreamT
        async for events in stream.take_events(5000, within=0.5):
            for event in events:
                message = event.message
                broker_time = datetime.fromtimestamp(message.timestamp, tz=UTC) if message.timestamp else None
                outcome = intake.take(event.value, message.partition, broker_time)
                if outcome.refused:
                    await send_dead_letter(event.value or b"", outcome.refused, message)
                if outcome.alert:
                    log.warning("model %r has no monitor config; using the default limits", outcome.alert.model)
                    await alerts_topic.send(key=outcome.alert.model.encode(), value=outcome.alert.to_json())
            await publish_closed_windows()

    async def close_windows() -> None:
        """Close windows on a quiet stream too (the agent only wakes up on events)."""
        await publish_closed_windows()

    async def deliver_alerts(stream: StreamT[bytes]) -> None:
        """Post alerts to Slack (or the console). An alert is acknowledged only once delivered."""
        async for raw in stream:
            try:
                alert = Alert.parse(raw)
            except RecordError as exc:  # not ours to deliver, and it must not stop the agent
                log.error("skipping a message on the alerts topic that is not an alert: %s", exc)
                continue
            text = alert.text or format_threshold_alert(alert)
            attempts = await asyncio.to_thread(deliver_with_retry, notifier, text, alert.channel)
            log.info("alert %s delivered via %s after %d attempt(s)", alert.alert_id, notifier.name, attempts)

    app.agent(predictions, name="compute_metrics")(compute_metrics)
    app.agent(alerts_topic, name="deliver_alerts")(deliver_alerts)
    app.timer(interval=1.0)(close_windows)
    return app


def main(settings: Settings) -> None:
    """Run the worker (``driftline worker``); Faust reads its own options from ``sys.argv``."""
    configs = load_monitor_configs(settings.config_dir)
    ensure_topics(settings)
    build_worker(settings, configs, notifier_from_settings(settings)).main()
