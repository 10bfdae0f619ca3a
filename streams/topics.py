"""Topic creation for the local stack, the worker and tests: plain confluent-kafka, no Faust."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from driftline.schemas.settings import Settings


def wanted_partitions(settings: Settings) -> dict[str, int]:
    """Every driftline topic and its partition count: ``settings.partitions``, except the window-reports topic,
    which has one partition so that one merger in the worker group sees every source partition's report in order."""
    wanted = dict.fromkeys(settings.topics.all(), settings.partitions)
    wanted[settings.topics.window_reports] = 1
    return wanted


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create driftline's topics that do not exist yet; returns those created."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = {topic: count for topic, count in wanted_partitions(settings).items() if topic not in existing}
    if not wanted:
        return []
    futures = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in wanted.items()])
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
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    metadata = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise RuntimeError(
            f"topic {topic!r} has no partitions on {settings.bootstrap_servers} "
            f"({metadata.error if metadata else 'not found'}); create it with `driftline up` or ensure_topics()"
        )
    return len(metadata.partitions)
