"""Topic creation for the local stack, the worker and tests: plain confluent-kafka, no Faust."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from driftline.schemas.settings import Settings


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create driftline's topics with ``settings.partitions`` partitions; returns those created."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [t for t in settings.topics.all() if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=settings.partitions, replication_factor=1) for t in wanted]
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
