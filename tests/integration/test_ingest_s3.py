"""Producer → embedded broker → ingest → Parquet on S3 (moto over HTTP, through s3fs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from driftline.dags.tasks import ingest
from driftline.dags.tasks.ingest import ingest_topic
from driftline.schemas.records import DeadLetter
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state
from driftline.schemas.storage.events import read_events
from driftline.streams.producer import DriftlineProducer
from tests.integration.conftest import consume_all

pytestmark = pytest.mark.integration
# Yesterday 09:50: recent enough for DRIFTLINE_MAX_EVENT_AGE_SECONDS, and 360 events at 3 s span two hours.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(hour=9, minute=50, second=0, microsecond=0)


def publish(settings: Settings, start: int, count: int) -> None:
    with DriftlineProducer.from_settings(settings) as producer:
        for i in range(start, start + count):
            version = "v1" if i % 3 else "v2"
            producer.log_prediction(
                model="churn",
                model_version=version,
                request_id=f"r{i:05d}",
                features={"x": i * 0.5, "plan": "pro" if i % 2 else "basic"},
                prediction=i % 2,
                latency_ms=10.0 + i,
                event_time=T0 + timedelta(seconds=3 * i),
            )
            producer.log_label(
                model="churn",
                model_version=version,
                request_id=f"r{i:05d}",
                label=i % 2,
                event_time=T0 + timedelta(seconds=3 * i + 1),
            )
        assert producer.flush(20) == 0
        assert producer.stats.dropped == 0


class Crash(BaseException):
    """The process dies between writing a chunk's files and committing its offsets."""


class CrashingOnCommit:
    """A real consumer whose commit never happens: the run stops there, as a killed process would."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def commit(self, *args: Any, **kwargs: Any) -> None:
        raise Crash

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_ingest_writes_every_event_once_even_across_a_crash(driftline_env, s3_bucket, monkeypatch):
    settings = Settings.from_env()
    storage = Storage.from_url(f"s3://{s3_bucket}/data", **settings.storage_options)
    publish(settings, 0, 300)

    real_consumer = ingest._consumer
    monkeypatch.setattr(ingest, "_consumer", lambda *args: CrashingOnCommit(real_consumer(*args)))
    with pytest.raises(Crash):
        ingest_topic(settings, storage, settings.topics.predictions, kind="predictions")
    monkeypatch.setattr(ingest, "_consumer", real_consumer)
    first_files = sorted(storage.fs.glob(f"{s3_bucket}/data/predictions/**/*.parquet"))
    assert len(read_events(storage, "predictions", "churn")) == 300  # the chunk's files are written, not committed

    # The retry after the crash re-reads exactly the same offsets and rewrites the same files (skipping the 60
    # published since), then, in its next chunk, goes back for the 60.
    publish(settings, 300, 60)
    replay = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions")
    assert sorted(replay.replayed_partitions) == [0, 1, 2]
    assert set(first_files) <= set(replay.files)
    assert replay.rows_written == 360

    # The next run takes only what is new.
    publish(settings, 360, 30)
    following = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions")
    assert following.rows_written == 30 and following.replayed_partitions == []
    empty = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions", idle_timeout=1.0)
    assert empty.rows_written == 0

    stored = read_events(storage, "predictions", "churn")
    assert len(stored) == 390
    assert stored["request_id"].is_unique
    assert sorted(stored["request_id"]) == [f"r{i:05d}" for i in range(390)]
    assert (stored.groupby("model_version").size().to_dict()) == {"v1": 260, "v2": 130}
    # Hive-style layout on S3: model / version / date / hour, named by topic, partition, offsets.
    paths = storage.fs.glob(f"{s3_bucket}/data/predictions/model=churn/version=v1/date={T0:%Y-%m-%d}/hour=*/*.parquet")
    assert {p.split("hour=")[1][:2] for p in paths} == {"09", "10"}
    assert all(p.rsplit("/", 1)[1].startswith(f"{settings.topics.predictions}+") for p in paths)
    with storage.fs.open(paths[0], "rb") as handle:
        columns = pq.read_schema(handle).names
    assert {"request_id", "event_time", "latency_ms", "features.x", "features.plan", "kafka_offset"} <= set(columns)


def test_invalid_labels_go_to_the_dead_letter_topic_with_the_reason(driftline_env, s3_bucket):
    settings = Settings.from_env()
    storage = Storage.from_url(f"s3://{s3_bucket}/data", **settings.storage_options)
    publish(settings, 0, 20)
    raw = Producer({"bootstrap.servers": settings.bootstrap_servers})
    raw.produce(settings.topics.labels, value=json.dumps({"event_type": "label", "model": "churn"}).encode())
    raw.flush(10)
    result = ingest_topic(settings, storage, settings.topics.labels, kind="labels")
    assert (result.rows_written, result.invalid) == (20, 1)
    [dead] = [
        DeadLetter.parse(v) for v in consume_all(settings.bootstrap_servers, settings.topics.dead_letter, expected=1)
    ]
    assert dead.source == "ingest" and dead.topic == settings.topics.labels
    assert "field 'request_id': Field required" in dead.reason
    assert "field 'label': Field required" in dead.reason


def test_a_long_backlog_is_stored_and_committed_chunk_by_chunk(driftline_env, s3_bucket):
    """360 events in chunks of 100: each chunk is written and committed before the next is read (bounded memory),
    every event is stored once, and the run that ends idle records that ingest caught up."""
    settings = Settings.from_env()
    storage = Storage.from_url(f"s3://{s3_bucket}/data", **settings.storage_options)
    publish(settings, 0, 360)

    result = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions", chunk_records=100)

    assert result.rows_written == 360 and sum(result.committed.values()) == 360
    # Every file is named by the offset range of one chunk of one partition: at most 100 offsets each.
    ranges = [tuple(int(n) for n in path.removesuffix(".parquet").rsplit("+", 2)[1:]) for path in result.files]
    assert ranges and all(last - first < 100 for first, last in ranges)
    stored = read_events(storage, "predictions", "churn")
    assert len(stored) == 360 and stored["request_id"].is_unique
    progress = state.read_ingest_progress(storage, settings.topics.predictions)
    assert progress is not None and progress.rows_written == 360
    assert storage.glob(f"_ingest/{settings.topics.predictions}/*/*.json") == []  # no ledger left behind

    capped = ingest_topic(settings, storage, settings.topics.labels, kind="labels", chunk_records=100, max_records=150)
    assert capped.rows_written == 150  # cut by max_records
    assert state.read_ingest_progress(storage, settings.topics.labels) is None  # not idle: not caught up
