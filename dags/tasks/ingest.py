"""Kafka → Parquet on storage, without loss or duplicates across crashes and retries.

One run, per partition of a topic:

1. start at the consumer group's committed offset;
2. if a *ledger* exists for that start (a previous run wrote files but crashed
   before committing), re-read exactly the ledger's offset range; otherwise
   read until the topic is idle or ``max_records`` and write a ledger first;
3. write one Parquet file per model / version / date / hour, named by topic,
   partition and offset range, atomically — a rewrite of the same range
   replaces the same files;
4. commit ``last offset + 1``, then drop the ledger.

So a run that dies anywhere before step 4 is repeated exactly by the next one.
Caught-up is detected by an idle poll, not by the high watermark (which the
embedded broker reports wrongly after batched produces).
"""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from driftline.schemas import layout
from driftline.schemas.events import EventError, LabelEvent, PredictionEvent, parse_event
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.streams.producer import dead_letter_value

log = logging.getLogger(__name__)


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


def _scalar_columns(value: Any, prefix: str) -> dict[str, Any]:
    """Numbers and booleans in a float column, anything else in a ``*_class`` text column."""
    if isinstance(value, (int, float)) or value is None:  # bool is an int here
        return {prefix: None if value is None else float(value), f"{prefix}_class": None}
    return {prefix: None, f"{prefix}_class": str(value)}


def event_row(event: PredictionEvent | LabelEvent, partition: int, offset: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": event.request_id,
        "model": event.model,
        "model_version": event.model_version,
        "event_time": event.event_time,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }
    if isinstance(event, PredictionEvent):
        row.update(_scalar_columns(event.prediction, "prediction"))
        row["latency_ms"] = event.latency_ms
        row["error"] = event.error
        for name, value in event.features.items():
            row[f"features.{name}"] = value
    else:
        row.update(_scalar_columns(event.label, "label"))
    return row


def rows_to_parquet(rows: list[dict[str, Any]]) -> bytes:
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if column.startswith("features.") and frame[column].dtype == object:
            values = frame[column].dropna()
            if not values.map(lambda v: isinstance(v, str)).all():
                frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


def ingest_topic(
    settings: Settings,
    storage: Storage,
    topic: str,
    *,
    kind: str,
    group_id: str | None = None,
    max_records: int = 1_000_000,
    idle_timeout: float = 3.0,
    crash_before_commit: bool = False,
) -> IngestResult:
    """Move what is new on ``topic`` to storage under ``kind/``; see the module docstring.

    ``crash_before_commit`` stops after the files are written, as a crash would
    (tests use it to show the next run repeats the range exactly).
    """
    expected = {"predictions": "prediction", "labels": "label"}.get(kind)
    if expected is None:
        raise ValueError(f"kind must be 'predictions' or 'labels', got {kind!r}")
    group_id = group_id or f"{settings.topics.prefix}-ingest-{kind}"
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            **settings.consumer_group_overrides(),
        }
    )
    result = IngestResult(topic)
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise RuntimeError(
                f"topic {topic!r} does not exist on {settings.bootstrap_servers}; run 'driftline up' or create it"
            )
        partitions = sorted(metadata.topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        positions = {tp.partition: tp.offset if tp.offset >= 0 else -1 for tp in committed}
        targets: dict[int, int] = {}
        for partition, position in positions.items():
            ledger = layout.ingest_ledger(topic, partition, max(position, 0))
            if storage.exists(ledger):
                targets[partition] = storage.read_json(ledger)["last_offset"]
                result.replayed_partitions.append(partition)
        consumer.assign(
            [TopicPartition(topic, p, positions[p] if positions[p] >= 0 else OFFSET_BEGINNING) for p in partitions]
        )

        records: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        total, last_message_at = 0, time.monotonic()
        while True:
            batch = consumer.consume(10_000, timeout=0.5)
            for message in batch:
                if message.error():
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {topic}: {message.error()}")
                    continue
                partition, offset = message.partition(), message.offset()
                if partition in targets and offset > targets[partition]:
                    continue  # beyond the replayed range: the next run takes it
                records[partition].append((offset, message.value()))
                total += 1
            if batch:
                last_message_at = time.monotonic()
            replay_done = all(records[p] and records[p][-1][0] >= end for p, end in targets.items())
            idle_for = time.monotonic() - last_message_at
            if replay_done and (total >= max_records or idle_for >= idle_timeout):
                break
            if not replay_done and idle_for >= max(30.0, 10 * idle_timeout):
                missing = {p: end for p, end in targets.items() if not records[p] or records[p][-1][0] < end}
                raise RuntimeError(
                    f"cannot replay the unfinished ingest of {topic}: offsets up to {missing} "
                    "(partition: last offset) are no longer readable; check the topic's retention"
                )

        dead_letters = Producer({"bootstrap.servers": settings.bootstrap_servers}) if kind == "labels" else None
        to_commit = []
        for partition, items in sorted(records.items()):
            first, last = items[0][0], items[-1][0]
            storage.write_json(
                layout.ingest_ledger(topic, partition, max(positions[partition], 0)),
                {"topic": topic, "partition": partition, "first_offset": first, "last_offset": last},
            )
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for offset, value in items:
                try:
                    event = parse_event(value, expected=expected)
                except EventError as exc:
                    result.invalid += 1
                    if dead_letters is not None:
                        dead_letters.produce(
                            settings.topics.dead_letter,
                            dead_letter_value(
                                value.decode(errors="replace"),
                                exc.reason,
                                source="ingest",
                                topic=topic,
                                partition=partition,
                                offset=offset,
                            ),
                        )
                    continue
                hour = event.event_time.replace(minute=0, second=0, microsecond=0)
                groups[layout.event_partition(kind, event.model, event.model_version, hour)].append(
                    event_row(event, partition, offset)
                )
            for directory, rows in sorted(groups.items()):
                path = storage.write_bytes(
                    f"{directory}/{layout.data_file_name(topic, partition, first, last)}", rows_to_parquet(rows)
                )
                result.files.append(path)
                result.rows_written += len(rows)
            to_commit.append(TopicPartition(topic, partition, last + 1))
            result.committed[partition] = last + 1
        if dead_letters is not None:
            dead_letters.flush(10)
        if crash_before_commit:
            return result
        if to_commit:
            consumer.commit(offsets=to_commit, asynchronous=False)
            for partition in result.committed:
                storage.remove(layout.ingest_ledger(topic, partition, max(positions[partition], 0)))
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


def newest_hour(storage: Storage, kind: str, model: str) -> datetime | None:
    """Start of the newest hour partition holding data of ``model``, from the paths alone."""
    hours = {
        path.split("date=")[1][:10] + "T" + path.split("hour=")[1][:2]
        for path in storage.fs.glob(storage.path(f"{kind}/model={model}/version=*/date=*/hour=*/*.parquet"))
    }
    return datetime.strptime(max(hours), "%Y-%m-%dT%H").replace(tzinfo=UTC) if hours else None


def read_recent_events(storage: Storage, kind: str, model: str, window: timedelta) -> pd.DataFrame:
    """Rows of the hour partitions that can hold events of the last ``window`` before the newest one.

    Reads only those partitions, not the model's whole history; callers cut the
    exact window by event time.
    """
    newest = newest_hour(storage, kind, model)
    return pd.DataFrame() if newest is None else read_events(storage, kind, model, since=newest - window)


def read_events(storage: Storage, kind: str, model: str, since: datetime | None = None) -> pd.DataFrame:
    """All stored rows of one model (every version), optionally only the hour partitions from the one holding ``since`` on."""
    pattern = storage.path(f"{kind}/model={model}/version=*/date=*/hour=*/*.parquet")
    frames = []
    for path in sorted(storage.fs.glob(pattern)):
        if since is not None:
            date_part = path.split("date=")[1][:10]
            hour_part = path.split("hour=")[1][:2]
            if f"{date_part}T{hour_part}" < since.strftime("%Y-%m-%dT%H"):
                continue
        with storage.fs.open(path, "rb") as handle:
            frames.append(pq.read_table(handle).to_pandas())
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
