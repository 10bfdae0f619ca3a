"""Topic handles for the Faust app, and topic creation for the local stack and tests."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from driftline.schemas.settings import Settings
from driftline.streams.app import app, settings

# Raw bytes in: validation happens in the agent so a malformed message goes to
# the dead-letter topic with its reason instead of failing in Faust's codec.
predictions = app.topic(settings.topics.predictions, key_type=bytes, value_type=bytes, value_serializer="raw")
metrics = app.topic(settings.topics.metrics, value_serializer="json")
alerts = app.topic(settings.topics.alerts, value_serializer="json")
dead_letter = app.topic(settings.topics.dead_letter, value_serializer="raw")


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
