"""What ``make chaos`` compares after its run: every published window, realized performance, dead letter and Slack
message against the exact figures computed from the events it sent."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from driftline.infra.local_slack import SlackEndpoint
from driftline.schemas.config import load_monitor_configs
from driftline.schemas.records import Alert, DeadLetter, RecordError, WindowMetrics, WindowPerformance
from driftline.schemas.settings import Settings
from driftline.streams.alerts.formatting import format_threshold_alert
from driftline.streams.thresholds import StreamAlerts

if TYPE_CHECKING:
    from driftline.infra.chaos import ChaosResult, EventSource


def read_topic(bootstrap: str, topic: str, *, idle: float = 5.0, until: int | None = None) -> list[tuple[bytes, bytes]]:
    """Every (key, value) on ``topic`` from the start, until no message came for ``idle`` seconds (or ``until``
    messages were read).

    Partitions are assigned directly (no consumer group, so no join to wait for); the broker's high
    watermark is not trusted to say where a partition ends (see docs/operations.md), silence is.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-reader", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[tuple[bytes, bytes]] = []
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(10_000, timeout=0.5) if not m.error()]
            if batch:
                messages += [(m.key() or b"", m.value() or b"") for m in batch]
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= (idle if messages else 4 * idle):  # a first fetch can be slow
                break
    finally:
        consumer.close()
    return messages


def published_windows(settings: Settings) -> list[WindowMetrics]:
    return [WindowMetrics.parse(value) for _, value in read_topic(settings.bootstrap_servers, settings.topics.metrics)]


PERFORMANCE_COUNTS = (
    "predictions",
    "labelled",
    "unlabelled",
    "late_labels",
    "correct",
    "true_positives",
    "false_positives",
    "false_negatives",
    "true_negatives",
)


def compare_performance(source: EventSource, settings: Settings, result: ChaosResult) -> None:
    """Each window's realized performance, joined by the workers, against the labels sent."""
    expected = source.exact_performance()
    result.performance_expected = len(expected)
    result.labels_sent = sum(event.label is not None for event in source.sent.values())
    got: dict[tuple[str, str, datetime], list[WindowPerformance]] = {}
    for _, value in read_topic(settings.bootstrap_servers, settings.topics.performance):
        window = WindowPerformance.parse(value)
        got.setdefault((window.model, window.model_version, window.window_start), []).append(window)
    for key, exact in expected.items():
        copies = got.get(key, [])
        want = tuple(getattr(exact, name) for name in PERFORMANCE_COUNTS)
        if not copies:
            result.performance_wrong.append(f"{key[1]} {key[2]:%H:%M:%S}: no performance published")
            continue
        if any(tuple(getattr(c, name) for name in PERFORMANCE_COUNTS) != want for c in copies):
            first = tuple(getattr(copies[0], name) for name in PERFORMANCE_COUNTS)
            result.performance_wrong.append(f"{key[1]} {key[2]:%H:%M:%S}: {first} (exact {want})")
        else:
            result.performance_exact += 1
    for key in got.keys() - expected.keys():
        result.performance_wrong.append(f"{key[1]} {key[2]:%H:%M:%S}: performance for a window with no event")


def figures(window: WindowMetrics) -> tuple[object, ...]:
    """What must be exact in a published window (sums of floats may differ in their last bits with the order the
    partitions merged in, so the prediction mean is compared apart)."""
    sketch = window.predictions
    return (
        window.count,
        window.errors,
        window.errors_by_cause,
        window.latency_p95_ms,
        window.latency_sketch,
        sketch.numeric if sketch else None,
        sketch.positive if sketch else None,
    )


def compare(source: EventSource, published: list[WindowMetrics], result: ChaosResult) -> None:
    expected = source.exact_windows()
    result.windows_expected = len(expected)
    copies: dict[tuple[str, str, datetime], list[WindowMetrics]] = {}
    for window in published:
        copies.setdefault((window.model, window.model_version, window.window_start), []).append(window)
    for key, exact in expected.items():
        got = copies.get(key, [])
        if not got:
            result.lost += exact.count
            result.windows_wrong.append(f"{key[1]} {key[2]:%H:%M:%S}: never published ({exact.count} events)")
            continue
        first = got[0]
        result.counted += first.count
        result.lost += max(0, exact.count - first.count)
        result.duplicated += max(0, first.count - exact.count)
        if any(copy.model_dump() != first.model_dump() for copy in got[1:]):
            result.windows_wrong.append(f"{key[1]} {key[2]:%H:%M:%S}: published twice with different figures")
        if figures(first) == figures(exact) and math.isclose(
            first.prediction_mean or 0.0, exact.prediction_mean or 0.0, rel_tol=1e-9
        ):
            result.windows_exact += 1
        else:
            result.windows_wrong.append(
                f"{key[1]} {key[2]:%H:%M:%S}: count {first.count} (exact {exact.count}), errors {first.errors} "
                f"({exact.errors}), p95 {first.latency_p95_ms} ({exact.latency_p95_ms})"
            )
    for key, got in copies.items():
        if key not in expected:
            result.duplicated += got[0].count
            result.windows_wrong.append(f"{key[1]} {key[2]:%H:%M:%S}: published but no event was sent for it")


def compare_dead_letters(source: EventSource, settings: Settings, result: ChaosResult) -> None:
    valid: set[str] = set()
    bad: set[tuple[int | None, int | None]] = set()
    for _, value in read_topic(settings.bootstrap_servers, settings.topics.dead_letter):
        try:
            letter = DeadLetter.parse(value)
        except RecordError:
            continue
        original = letter.original
        request_id = original.get("request_id") if isinstance(original, dict) else None
        if isinstance(original, str):
            with suppress(ValueError):
                decoded = json.loads(original)
                request_id = decoded.get("request_id") if isinstance(decoded, dict) else None
        if isinstance(request_id, str) and request_id in source.sent:
            valid.add(request_id)
        else:
            bad.add((letter.partition, letter.offset))
    result.valid_dead_lettered = len(valid)
    result.bad_events_dead_lettered = len(bad)


def count_copies_in_topic(settings: Settings, result: ChaosResult) -> None:
    """How many events the predictions topic holds more than once (the producer's retries, not the worker's)."""
    ids: Counter[str] = Counter()
    # The embedded broker's S3 log can pause for many seconds between fetches of a large topic: wait longer for
    # silence (a re-read that still ends early says so: see run_chaos).
    for _, value in read_topic(settings.bootstrap_servers, settings.topics.predictions, idle=30.0):
        with suppress(ValueError, AttributeError, TypeError):
            ids[json.loads(value)["request_id"]] += 1
    result.copies_in_topic = sum(count - 1 for count in ids.values())
    result.events_in_topic = len(ids)


STREAM_ALERT_PREFIXES = (":rotating_light:", ":white_check_mark:")  # threshold alerts and their resolutions


def expected_alerts(source: EventSource, settings: Settings) -> list[Alert]:
    """The alerts the stream owes for the exact windows: the same rules (streams/thresholds.py) over them in order."""
    return StreamAlerts().judge_all(source.exact_windows().values(), load_monitor_configs(settings.config_dir))


def alert_text(alert: Alert) -> str:
    return alert.text or format_threshold_alert(alert)


def compare_alerts(source: EventSource, settings: Settings, slack: SlackEndpoint, result: ChaosResult) -> None:
    expected = Counter(alert_text(alert) for alert in expected_alerts(source, settings))
    delivered = Counter(text for text in slack.texts() if text.startswith(STREAM_ALERT_PREFIXES))
    result.alerts_expected = sum(expected.values())
    result.alerts_delivered = sum(delivered.values())
    result.alerts_duplicated = sum(count - 1 for count in delivered.values() if count > 1)
    result.alerts_lost = sum(1 for text in expected if text not in delivered)
    result.alerts_lost += sum(1 for text in delivered if text not in expected)  # an alert no exact window calls for
