"""The stream path at speed (issue 9, item 4): the worker, the embedded producer and ingest, each against the plain
confluent-kafka baseline measured in the same run, on the embedded broker started here on loopback.

    make bench-streams     # or: .venv/bin/python -m benchmarks.streams [--events 200000] [--producer-calls 100000]

1. **Worker.** ``--events`` prediction events (8 numeric and 2 categorical features, a score, a latency, 2 % errors,
   event times over the last minutes) are produced to a one-partition predictions topic. The baseline is a plain
   confluent-kafka consumer, outside any group, that reads them from the start in batches and decodes each value
   with ``json.loads``. Then a real ``driftline worker`` process reads the same backlog; its rate is read from
   outside, from the checkpoint it saves in storage after every batch (the offsets it counted), every 0.2 s:
   from the first checkpoint to the one holding every event, so the consumer-group join is not counted.
2. **Producer.** The cost per call of ``DriftlineProducer.log_prediction`` against the baseline: ``json.dumps``
   of the same event and ``Producer.produce`` + ``poll(0)`` on a bare confluent-kafka Producer; rounds alternate,
   the median round counts. Then the producer is pointed at a port where nothing listens: the slowest call there
   shows it does not block when the broker is down.
3. **Ingest.** ``ingest_topic`` moves the same backlog to Parquet in local storage; its rate (events / wall time,
   the consumer's assignment included, as for the baseline) over the raw consume rate.

The last three lines are exactly ``worker_vs_raw_consume=``, ``producer_vs_bare=`` and ``ingest_vs_raw_consume=``
(targets ≥ 0.40, ≤ 1.5, ≥ 0.50).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = [f"n{i}" for i in range(8)]
COUNTRIES = ["us", "de", "fr", "br", "in", "jp", "gb", "es"]
PLANS = ["free", "pro", "team"]


def make_events(count: int, *, seed: int = 7, now: datetime | None = None) -> list[dict[str, Any]]:
    """Prediction payloads as a serving node logs them (event times spread over the 10 minutes before ``now``)."""
    rng = np.random.default_rng(seed)
    now = now or datetime.now(UTC)
    numeric = rng.normal(0, 1, size=(count, len(NUMERIC))).round(6)
    countries = rng.integers(0, len(COUNTRIES), count)
    plans = rng.integers(0, len(PLANS), count)
    scores = rng.uniform(0, 1, count).round(6)
    latencies = rng.lognormal(2.5, 0.5, count).round(3)
    failed = rng.uniform(0, 1, count) < 0.02
    offsets = np.sort(rng.uniform(-600, 0, count))
    events = []
    for i in range(count):
        features: dict[str, Any] = dict(zip(NUMERIC, numeric[i].tolist(), strict=True))
        features["country"] = COUNTRIES[countries[i]]
        features["plan"] = PLANS[plans[i]]
        events.append(
            {
                "model": "bench",
                "model_version": "v1" if i % 10 else "v2",
                "request_id": f"req-{seed}-{i:09d}",
                "event_time": now + timedelta(seconds=float(offsets[i])),
                "features": features,
                "prediction": float(scores[i]),
                "latency_ms": float(latencies[i]),
                "error": "TimeoutError" if failed[i] else None,
            }
        )
    return events


def wire(event: dict[str, Any]) -> bytes:
    return json.dumps({"event_type": "prediction", **event}, default=lambda t: t.isoformat()).encode()


def produce_backlog(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1_000_000})
    for event in events:
        while True:
            try:
                producer.produce(topic, value=wire(event), key=event["request_id"].encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the broker did not take the backlog within 120 s")


def raw_consume(bootstrap: str, topic: str, count: int) -> float:
    """Events per second of a plain consumer that reads ``count`` events from the start and decodes each."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{time.time_ns()}",  # assigned, never joined
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        seen = 0
        while seen < count:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is None:
                    json.loads(message.value())
                    seen += 1
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"the raw consumer read {seen:,} of {count:,} events in 300 s")
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def worker_rate(settings: Any, count: int, log_path: Path) -> float:
    """Events per second of a real worker process reading the backlog (from its first counted event)."""
    from driftline.infra.local_stack import stop_child
    from driftline.schemas.storage import Storage
    from driftline.schemas.storage.state import read_partition_checkpoint

    storage, topic = Storage.from_settings(settings), settings.topics.predictions
    env = {**os.environ, **settings.to_env()}  # noqa: TID251 - the worker child gets the environment and its settings
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "warn"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 600
        first: tuple[float, float] | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the worker exited with code {process.returncode}; its log ends:\n{tail}")
            saved = read_partition_checkpoint(storage, f"{settings.topic_prefix}-metrics", topic, 0)
            seen = 0.0 if saved is None else float(saved.last_offset + 1)
            now = time.perf_counter()
            if seen and first is None:
                first = (now, seen)
            if seen >= count and first is not None:
                if now - first[0] < 1.0:
                    raise RuntimeError("the worker read the backlog between two checkpoint reads; use more --events")
                return (seen - first[1]) / (now - first[0])
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not count {count:,} events within 600 s; see {log_path}")
    finally:
        stop_child(process, 30)


def producer_costs(bootstrap: str, topic_prefix: str, calls: int, rounds: int = 5) -> tuple[float, float]:
    """Median seconds per call of (bare json + produce + poll, DriftlineProducer.log_prediction)."""
    from confluent_kafka import Producer

    from driftline.schemas.settings import Topics
    from driftline.streams.producer import DriftlineProducer

    events = make_events(calls, seed=11)
    topics = Topics(prefix=topic_prefix)
    bare = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": calls + 10, "acks": "all"}
    )
    ours = DriftlineProducer(bootstrap, topics=topics, max_buffered=calls + 10)
    bare_times, our_times = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for event in events:
            bare.produce(topics.predictions, value=wire(event), key=event["request_id"].encode())
            bare.poll(0)
        bare_times.append((time.perf_counter() - started) / calls)
        bare.flush(60)
        started = time.perf_counter()
        for event in events:
            ours.log_prediction(**event)
        our_times.append((time.perf_counter() - started) / calls)
        ours.flush(60)
    if ours.stats.dropped:
        raise RuntimeError(f"the driftline producer dropped events: {ours.stats_dict()}")
    ours.close()
    return statistics.median(bare_times), statistics.median(our_times)


def producer_broker_down(calls: int) -> tuple[float, int]:
    """(slowest call in seconds, events queued) for a producer whose broker is not there."""
    from driftline.infra.local_stack import free_port
    from driftline.streams.producer import DriftlineProducer

    events = make_events(calls, seed=13)
    producer = DriftlineProducer(f"127.0.0.1:{free_port()}", max_buffered=calls // 2)
    slowest = 0.0
    for event in events:
        started = time.perf_counter()
        producer.log_prediction(**event)
        slowest = max(slowest, time.perf_counter() - started)
    stats = producer.stats
    producer.close(timeout=0.5)
    return slowest, stats.enqueued + stats.dropped_buffer_full


def ingest_rate(settings: Any, count: int) -> float:
    from driftline.dags.tasks.ingest import ingest_topic
    from driftline.schemas.storage import Storage

    storage = Storage.from_settings(settings)
    started = time.perf_counter()
    result = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions", max_records=count)
    seconds = time.perf_counter() - started
    if result.rows_written != count:
        raise RuntimeError(f"ingest stored {result.rows_written:,} of {count:,} events")
    return count / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="backlog for the worker and ingest")
    parser.add_argument("--producer-calls", type=int, default=100_000, help="calls per producer round")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: worker, producer, ingest")
    args = parser.parse_args(argv)
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}

    from driftline.infra.local_stack import free_port, start_broker, stop_process
    from driftline.schemas.settings import Settings
    from driftline.streams.topics import ensure_topics

    with tempfile.TemporaryDirectory(prefix="driftline-bench-streams-") as temp:
        home = Path(temp)
        port = free_port()
        broker = start_broker(port, home / "broker.log")
        try:
            bootstrap = f"127.0.0.1:{port}"
            settings = Settings(
                home=str(home / "home"),
                storage_url=str(home / "storage"),
                bootstrap_servers=bootstrap,
                topic_prefix="bench",
                partitions=1,
                worker_port=free_port(),
                slack_token=None,
                slack_webhook_url=None,
                config_dir=str(home / "configs"),
            )
            (home / "configs").mkdir()
            ensure_topics(settings)
            events = make_events(args.events)
            produce_backlog(bootstrap, settings.topics.predictions, events)
            print(f"backlog: {args.events:,} prediction events on one partition")

            # The baseline, twice, and the faster of the two counts: a slow first read only flatters the ratios.
            raw = max(raw_consume(bootstrap, settings.topics.predictions, args.events) for _ in range(2))
            print(f"raw consume + json.loads:  {raw:>10,.0f} events/s (the faster of two reads)")
            figures = {}
            if "worker" not in skip:
                worker = worker_rate(settings, args.events, home / "worker.log")
                print(f"driftline worker:          {worker:>10,.0f} events/s (one process, one partition)")
                figures["worker_vs_raw_consume"] = worker / raw
            if "producer" not in skip:
                ensure_topics(Settings(bootstrap_servers=bootstrap, topic_prefix="bench-producer", partitions=1))
                bare, ours = producer_costs(bootstrap, "bench-producer", args.producer_calls)
                print(f"bare json.dumps + produce + poll:  {bare * 1e6:6.2f} µs/call")
                print(f"DriftlineProducer.log_prediction:  {ours * 1e6:6.2f} µs/call")
                slowest, calls = producer_broker_down(min(args.producer_calls, 20_000))
                print(f"broker down: slowest log_prediction call {slowest * 1e3:.2f} ms over {calls:,} calls")
                figures["producer_vs_bare"] = ours / bare
            if "ingest" not in skip:
                ingest = ingest_rate(settings, args.events)
                print(f"ingest Kafka -> Parquet:   {ingest:>10,.0f} events/s")
                figures["ingest_vs_raw_consume"] = ingest / raw
        finally:
            stop_process(broker)
    for name, value in figures.items():
        print(f"{name}={value:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
