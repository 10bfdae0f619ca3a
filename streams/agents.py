"""Faust agents: rolling metrics per model version, threshold alerts, alert delivery."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta

from driftline.schemas.config import MetricSettings, load_monitor_configs
from driftline.schemas.events import EventError, parse_event
from driftline.streams import topics
from driftline.streams.alerts import deliver_with_retry, format_threshold_alert, notifier_from_settings
from driftline.streams.app import app, settings
from driftline.streams.metrics_state import MetricsState
from driftline.streams.producer import dead_letter_value
from driftline.streams.windows import threshold_breaches

log = logging.getLogger("driftline.worker")

monitor_configs = load_monitor_configs(settings.config_dir)
_default_window = timedelta(seconds=float(os.environ.get("DRIFTLINE_METRICS_WINDOW_SECONDS", "300")))


def _window_for_model(model: str) -> timedelta:
    config = monitor_configs.get(model)
    return config.metrics.window if config else _default_window


state = MetricsState(
    window_for_model=_window_for_model,
    allowed_lateness=timedelta(seconds=float(os.environ.get("DRIFTLINE_ALLOWED_LATENESS_SECONDS", "30"))),
    idle_close_after=float(os.environ.get("DRIFTLINE_IDLE_CLOSE_SECONDS", "10")),
)


async def _dead_letter(raw: bytes, reason: str, topic: str, partition: int, offset: int) -> None:
    try:
        original = raw.decode()
    except UnicodeDecodeError:
        original = raw.hex()
    await topics.dead_letter.send(
        value=dead_letter_value(original, reason, source="worker", topic=topic, partition=partition, offset=offset)
    )


@app.agent(topics.predictions)
async def compute_metrics(stream):
    """Validate predictions and fold them into the open windows, a batch at a time."""
    async for events in stream.take_events(5000, within=0.5):
        for event in events:
            message = event.message
            try:
                prediction = parse_event(event.value, expected="prediction")
            except EventError as exc:
                await _dead_letter(event.value, exc.reason, message.topic, message.partition, message.offset)
                continue
            late_reason = state.add(prediction, message.partition)
            if late_reason:
                await _dead_letter(event.value, late_reason, message.topic, message.partition, message.offset)
        await _publish_closed_windows()


@app.timer(interval=1.0)
async def close_windows() -> None:
    """Close windows on a quiet stream too (the agent only wakes up on events)."""
    await _publish_closed_windows()


async def _publish_closed_windows() -> None:
    for snapshot in state.close_ready():
        await topics.metrics.send(key=f"{snapshot['model']}|{snapshot['model_version']}", value=snapshot)
        config = monitor_configs.get(snapshot["model"])
        limits = config.metrics if config else MetricSettings()  # unconfigured models get the defaults
        for breach in threshold_breaches(
            snapshot, latency_p95_ms=limits.latency_p95_ms, error_rate=limits.error_rate, min_count=limits.min_count
        ):
            alert = {
                "alert_id": f"{snapshot['model']}|{snapshot['model_version']}|{snapshot['window_start']}|{breach.metric}",
                "kind": "threshold",
                "model": snapshot["model"],
                "model_version": snapshot["model_version"],
                "metric": breach.metric,
                "value": breach.value,
                "threshold": breach.threshold,
                "window_start": snapshot["window_start"],
                "window_end": snapshot["window_end"],
                "count": snapshot["count"],
                "channel": config.alerts.slack_channel if config else None,
            }
            await topics.alerts.send(key=alert["model"], value=alert)


notifier = notifier_from_settings(settings)


@app.agent(topics.alerts)
async def deliver_alerts(stream):
    """Post alerts to Slack (or the console). An alert is acknowledged only once delivered."""
    async for alert in stream:
        text = alert.get("text") or format_threshold_alert(alert)
        attempts = await asyncio.to_thread(deliver_with_retry, notifier, text, alert.get("channel"))
        log.info("alert %s delivered via %s after %d attempt(s)", alert.get("alert_id"), notifier.name, attempts)


def main() -> None:
    """Run the worker (``driftline worker``); Faust reads its options from ``sys.argv``."""
    topics.ensure_topics(settings)
    app.main()
