"""The one Faust app. Topics live in :mod:`driftline.streams.topics`, agents in
:mod:`driftline.streams.agents`; :func:`main` imports both and runs the worker.
"""

from __future__ import annotations

import faust

from driftline.schemas.settings import Settings

settings = Settings.from_env()


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


_group_timeouts = (
    {"broker_session_timeout": 6.0, "broker_heartbeat_interval": 1.0, "broker_max_poll_interval": 7.0}
    if settings.fast_group_timeouts
    else {}
)

app = faust.App(
    f"{settings.topics.prefix}-metrics",
    broker=_broker_urls(settings.bootstrap_servers),
    store="memory://",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    **_group_timeouts,
)
