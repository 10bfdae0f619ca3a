"""The Faust app of the stream worker, built from :class:`Settings` (nothing happens at import time).

:func:`create_app` makes the app; :mod:`driftline.streams.agents` adds the
agents to it and runs it.
"""

from __future__ import annotations

from typing import Any

import faust

from driftline.schemas.settings import Settings


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def create_app(settings: Settings) -> faust.App:
    group_timeouts: dict[str, Any] = (
        {"broker_session_timeout": 6.0, "broker_heartbeat_interval": 1.0, "broker_max_poll_interval": 7.0}
        if settings.fast_group_timeouts
        else {}
    )
    return faust.App(
        f"{settings.topic_prefix}-metrics",
        broker=broker_urls(settings.bootstrap_servers),
        store="memory://",
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        **group_timeouts,
    )
