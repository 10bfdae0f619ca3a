"""The Faust app of the stream worker, built from :class:`Settings` (nothing happens at import time).

:func:`create_app` makes the app; :mod:`driftline.streams.agents` adds the
agents to it and runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from driftline.schemas.settings import Settings


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def create_app(settings: Settings) -> faust.App:
    # The same short group timeouts as every other consumer (Settings.consumer_group_overrides), in seconds.
    overrides = settings.consumer_group_overrides()
    group_timeouts: dict[str, Any] = (
        {
            "broker_session_timeout": overrides["session.timeout.ms"] / 1000,
            "broker_heartbeat_interval": overrides["heartbeat.interval.ms"] / 1000,
            "broker_max_poll_interval": overrides["max.poll.interval.ms"] / 1000,
        }
        if overrides
        else {}
    )
    worker_folder = Path(settings.home) / "worker"
    worker_folder.mkdir(parents=True, exist_ok=True)  # Faust creates its data folder but not the parents
    return faust.App(
        f"{settings.topic_prefix}-metrics",
        broker=broker_urls(settings.bootstrap_servers),
        store="memory://",
        # Faust's working folder goes under the driftline home, not wherever the worker was started.
        datadir=str(worker_folder / "{conf.name}-data"),
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        # Faust waits 20 minutes for an unacknowledged write by default; the worker gives up (and restarts from
        # its checkpoints, see agents.py) after the stall time instead.
        producer_request_timeout=max(settings.worker_stall_seconds, 1.0),
        # Faust's own wait for unacknowledged events before a rebalance hung for good in `make chaos`: messages
        # its generation check skips are never tracked as in flight. The worker's revoke handler waits for the
        # batch in progress itself (agents.py). Faust does acknowledge, and so may commit, the messages it skips:
        # the worker commits its saved checkpoints' offsets instead (MetricsWorker.committable in agents.py).
        stream_wait_empty=False,
        # The health page (streams/health.py) and Faust's own pages: loopback unless configured otherwise.
        web_enabled=True,
        web_bind=settings.worker_host,
        web_host=settings.worker_host,
        web_port=settings.worker_port,
        **group_timeouts,
    )
