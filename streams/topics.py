"""Topic creation for the local stack, the worker and tests: plain confluent-kafka, no Faust."""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from driftline.schemas.settings import Settings

log = logging.getLogger(__name__)


def wanted_partitions(settings: Settings) -> dict[str, int]:
    """Every driftline topic and its partition count: ``settings.partitions``, except the window-reports topic,
    which has one partition so that one merger in the worker group sees every source partition's report in order."""
    wanted = dict.fromkeys(settings.topics.all(), settings.partitions)
    wanted[settings.topics.window_reports] = 1
    return wanted


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Broker settings of the topics driftline creates: the event topics take the broker's clock as each
    message's time (``LogAppendTime``), so a producer cannot set the time the event bounds are measured against.
    (The embedded broker stores this setting but still hands out the producer's time; the readers' own clocks
    bound the future there: see ``EventLimits.time_problem``.)"""
    event_time = {"message.timestamp.type": "LogAppendTime"}
    return {
        settings.topics.predictions: event_time,
        settings.topics.labels: event_time,
        # Keyed by model: the last state of each is what a router starting up reads (streams/deployments.py).
        settings.topics.deployments: {"cleanup.policy": "compact"},
    }


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create driftline's topics that do not exist yet; returns those created."""
    admin = AdminClient(settings.kafka_client_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = {topic: count for topic, count in wanted_partitions(settings).items() if topic not in existing}
    if not wanted:
        return []
    configs = topic_configs(settings)
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1, config=configs.get(t, {})) for t, n in wanted.items()]
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def partition_count(settings: Settings, topic: str, timeout: float = 15.0) -> int:
    """How many partitions ``topic`` has on the broker (the worker's merger waits for each of them)."""
    admin = AdminClient(settings.kafka_client_config())
    metadata = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise RuntimeError(
            f"topic {topic!r} has no partitions on {settings.bootstrap_servers} "
            f"({metadata.error if metadata else 'not found'}); create it with `driftline up` or ensure_topics()"
        )
    return len(metadata.partitions)


def first_offset_from(settings: Settings, topic: str, partition: int, offset: int, timeout: float = 5.0) -> int | None:
    """The offset of the first message the broker holds at or after ``offset`` (later when the messages there were
    deleted by retention, or never written); ``None`` when it sends none within ``timeout``.

    A throwaway consumer, outside any group, asks the broker directly, so the answer does not depend on what a
    Faust consumer has buffered or committed.
    """
    consumer = Consumer(
        settings.kafka_client_config(
            **{
                "group.id": f"driftline-probe-{uuid.uuid4().hex[:8]}",  # never joined, never committed
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",  # below the log start: the first message still there
                "enable.partition.eof": False,
            }
        )
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = consumer.poll(min(left, 0.5))
            found = message.offset() if message is not None and not message.error() else None
            if found is not None:
                return found
        return None
    finally:
        consumer.close()


def confirm_gap(settings: Settings, topic: str, partition: int, expected: int, offset: int) -> tuple[bool, int | None]:
    """Whether the broker holds nothing from ``expected`` up to the message at ``offset``, and its first message
    from ``expected`` (``None`` when it does not say, which never confirms a gap).

    A reader that takes offsets one after the other calls this when ``offset`` arrives where ``expected`` was
    next. Kafka has gaps of its own (compaction, transaction markers, retention deleting messages before they
    were read, offsets a broker never wrote); a confirmed one is logged here. What an unconfirmed one means, and
    what to do, is the caller's.
    """
    try:
        first = first_offset_from(settings, topic, partition, expected)
    except Exception as exc:  # noqa: BLE001 - unknown counts as not confirmed
        log.info("%s[%d]: the broker did not say where its next message is (%s)", topic, partition, exc)
        return False, None
    if first != offset:
        return False, first
    log.warning(
        "%s[%d]: the broker holds no message at offsets %d to %d (compacted, a transaction marker, deleted by "
        "retention before it was read, or never written); going on from offset %d",
        topic,
        partition,
        expected,
        offset - 1,
        offset,
    )
    return True, first
