"""A real Faust worker on the embedded broker: exact window figures, dead letters, Slack delivery through an outage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from driftline.schemas.records import Alert, DeadLetter, WindowMetrics, WindowPerformance
from driftline.schemas.settings import Settings
from driftline.streams.producer import DriftlineProducer
from tests.integration.conftest import consume_all

pytestmark = pytest.mark.integration
# Recent event times: the worker refuses events stamped more than DRIFTLINE_MAX_EVENT_AGE_SECONDS before receipt.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
WINDOW_SIZES = [200, 150, 250]


def generate_events(seed: int = 42) -> list[dict]:
    rng = np.random.default_rng(seed)
    events = []
    for window, size in enumerate(WINDOW_SIZES):
        median = 90.0 if window == 2 else 20.0  # the third minute regresses
        latencies = rng.lognormal(np.log(median), 0.4, size=size)
        failed = rng.random(size) < 0.04
        offsets = np.sort(rng.uniform(0, 60, size=size))
        for i in range(size):
            events.append(
                {
                    "window": window,
                    "request_id": f"w{window}-{i}",
                    "latency_ms": float(latencies[i]),
                    "error": "ValueError" if failed[i] else None,
                    "event_time": T0 + timedelta(minutes=window, seconds=float(offsets[i])),
                }
            )
    return events


def start_worker(tmp_path, monkeypatch, extra_config: str = "") -> tuple[subprocess.Popen, Path]:
    config_dir = tmp_path / "models"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "svc.yaml").write_text(
        "model: svc\nreference: unused.parquet\n"
        "metrics: {window: 1m, latency_p95_ms: 100, error_rate: 0.5, min_count: 20}\n"
        "alerts: {slack_channel: '#svc-alerts'}\n" + extra_config
    )
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("DRIFTLINE_IDLE_CLOSE_SECONDS", "2")
    log_path = tmp_path / "worker.log"
    import os

    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    return process, log_path


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def worker(driftline_env, slack, tmp_path, monkeypatch):
    process, log_path = start_worker(tmp_path, monkeypatch)
    yield process, log_path
    stop_worker(process)


def log_events(settings: Settings, events: list[dict]) -> None:
    with DriftlineProducer.from_settings(settings) as producer:
        for event in events:
            producer.log_prediction(
                model="svc",
                model_version="v7",
                request_id=event["request_id"],
                features={"x": 1.0},
                prediction=1.0,
                latency_ms=event["latency_ms"],
                error=event["error"],
                event_time=event["event_time"],
            )


def published_windows(settings: Settings, expected: int, timeout: float = 90) -> list[WindowMetrics]:
    values = consume_all(settings.bootstrap_servers, settings.topics.metrics, expected=expected, timeout=timeout)
    return sorted((WindowMetrics.parse(v) for v in values), key=lambda s: s.window_start)


def test_worker_publishes_exact_windows_alerts_and_dead_letters(worker, slack):
    process, log_path = worker
    settings = Settings.from_env()
    slack.fail_next = 2  # Slack is down for the first two calls: the alert is delayed, not dropped
    events = generate_events()
    log_events(settings, events)
    raw = Producer({"bootstrap.servers": settings.bootstrap_servers})
    raw.produce(settings.topics.predictions, value=b"\xff\xfe not json")
    raw.produce(settings.topics.predictions, value=json.dumps({"event_type": "prediction", "model": "svc"}).encode())
    raw.flush(10)

    snapshots = published_windows(settings, expected=3)
    assert process.poll() is None, log_path.read_text()[-3000:]
    assert [s.window_start for s in snapshots] == [T0 + timedelta(minutes=m) for m in range(3)]
    for window, snapshot in enumerate(snapshots):
        mine = [e for e in events if e["window"] == window]
        errors = sum(e["error"] is not None for e in mine)
        assert (snapshot.model, snapshot.model_version) == ("svc", "v7")
        assert snapshot.count == len(mine) == WINDOW_SIZES[window]
        assert snapshot.errors == errors
        assert snapshot.error_rate == errors / len(mine)
        latencies = np.array([e["latency_ms"] for e in mine])
        for q, key in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")):
            exact = np.quantile(latencies, q, method="lower")
            assert abs(getattr(snapshot, key) - exact) <= 0.01 * exact  # the sketch's documented error

    alerts = [
        Alert.parse(v) for v in consume_all(settings.bootstrap_servers, settings.topics.alerts, expected=1, timeout=20)
    ]
    assert [(a.metric, a.window_start) for a in alerts] == [("latency_p95_ms", T0 + timedelta(minutes=2))]

    dead = [
        DeadLetter.parse(v)
        for v in consume_all(settings.bootstrap_servers, settings.topics.dead_letter, expected=2, timeout=20)
    ]
    reasons = sorted(d.reason for d in dead)
    assert reasons[0].startswith("field 'model_version': Field required;")
    assert "field 'event_time': Field required" in reasons[0] and "field 'latency_ms': Field required" in reasons[0]
    assert reasons[1].startswith("not valid JSON")
    assert all(d.source == "worker" and d.topic == settings.topics.predictions for d in dead)

    deadline = time.monotonic() + 30
    while not slack.texts() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slack.failed == 2
    [text] = slack.texts()
    assert "model *svc* version *v7*: p95 latency was " in text
    assert slack.calls[0]["channel"] == "#svc-alerts" and slack.calls[0]["auth"] == "Bearer xoxb-test-token"


def partition_ends(settings: Settings, topic: str, *, expected: int, timeout: float = 60) -> list[int]:
    """Each partition's end (its last offset + 1), found by reading its ``expected`` messages from the start: the
    embedded broker's high watermarks are wrong after batched produces (docs/operations.md)."""
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap_servers, "group.id": "ends", "enable.auto.commit": False}
    )
    ends, read = [0] * settings.partitions, 0
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
    deadline = time.monotonic() + timeout
    try:
        while read < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if not message.error():
                    ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
                    read += 1
    finally:
        consumer.close()
    assert read == expected, f"read {read} of {expected} messages on {topic}"
    return ends


def test_a_committed_offset_past_the_checkpoint_is_not_trusted(driftline_env, slack, tmp_path, monkeypatch):
    """The source group's committed offsets are moved half-way before the worker ever ran (as any client of the
    group could). No checkpoint says any event was counted, so the worker starts every partition at offset 0,
    where its checkpoint ends, and counts every event once."""
    settings = Settings.from_env()
    events = generate_events(seed=7)
    log_events(settings, events)
    topic, group = settings.topics.predictions, f"{settings.topic_prefix}-metrics-sources"
    skipped = 0
    admin = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        ahead = []
        for partition, end in enumerate(partition_ends(settings, topic, expected=len(events))):
            ahead.append(TopicPartition(topic, partition, end // 2))
            skipped += end // 2
        admin.commit(offsets=ahead, asynchronous=False)
        committed = admin.committed([TopicPartition(topic, p) for p in range(settings.partitions)], timeout=10)
    finally:
        admin.close()
    assert skipped > 100 and sum(tp.offset for tp in committed) == skipped  # the group really starts ahead

    process, log_path = start_worker(tmp_path, monkeypatch)
    try:
        snapshots = published_windows(settings, expected=3, timeout=150)
        assert process.poll() is None, log_path.read_text()[-3000:]  # no restart needed
    finally:
        stop_worker(process)
    assert [s.count for s in snapshots] == WINDOW_SIZES, log_path.read_text()[-3000:]


def test_late_labels_are_joined_in_the_stream_into_each_windows_realized_performance(driftline_env, slack, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    """200 predictions in one window; 60 labels sent before their predictions, 121 after, one of them stamped past
    the deadline; 19 never labelled. The worker publishes the window's performance once the deadline has passed on
    every partition, exact, and alerts: accuracy 120/180 is below the reference 0.9 with 95 % confidence."""
    settings = Settings.from_env()
    # Everything is on the topics before the worker starts (a backlog): events an hour old are counted then,
    # and would be late once the worker has marked its quiet partitions idle.
    with DriftlineProducer.from_settings(settings) as producer:

        def label(n: int, value: int, minutes: float = 1.0) -> None:
            producer.log_label(model="svc", model_version="v7", request_id=f"q{n}", label=value,
                               event_time=T0 + timedelta(minutes=minutes))  # fmt: skip

        for n in range(60):  # before their predictions on the topics
            label(n, 1)
        producer.flush()
        for n in range(200):
            producer.log_prediction(
                model="svc", model_version="v7", request_id=f"q{n}", features={"x": 1.0}, prediction=0.9,
                latency_ms=5.0, event_time=T0 + timedelta(seconds=n * 0.2),
            )  # fmt: skip
        producer.flush()
        for n in range(60, 120):
            label(n, 1)
        for n in range(120, 180):
            label(n, 0)  # wrong
        label(180, 1, minutes=5.0)  # past 10:01 + 2 min: late
    process, log_path = start_worker(
        tmp_path,
        monkeypatch,
        "performance: {task: classification, threshold: 0.5, reference: {accuracy: 0.9}, tolerance: 0.02, "
        "min_labels: 50, label_deadline: 2m}\n",
    )
    try:
        [raw] = consume_all(settings.bootstrap_servers, settings.topics.performance, expected=1, timeout=120)
        performance = WindowPerformance.parse(raw)
        assert process.poll() is None, log_path.read_text()[-3000:]
    finally:
        stop_worker(process)
    assert (performance.model, performance.model_version, performance.window_start) == ("svc", "v7", T0)
    assert (performance.predictions, performance.labelled, performance.correct) == (200, 180, 120)
    assert (performance.unlabelled, performance.late_labels, performance.label_deadline_seconds) == (20, 1, 120)
    assert (performance.true_positives, performance.false_positives) == (120, 60)
    assert sorted(performance.partitions) == [0, 1, 2]
    alerts = [Alert.parse(v) for v in consume_all(settings.bootstrap_servers, settings.topics.alerts, expected=1)]
    [degraded] = [a for a in alerts if a.kind == "performance"]
    assert degraded.metric == "accuracy" and degraded.value == pytest.approx(120 / 180)
    assert "180 labelled of 200 predictions" in (degraded.text or "")
