"""The Faust app of the stream worker, built from :class:`Settings` (nothing happens at import time).

:func:`create_app` makes the app; :mod:`driftline.streams.agents` adds the
agents to it and runs it.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
from pathlib import Path
from typing import Any

import faust

from driftline.schemas.settings import Settings
from driftline.streams.kafka_security import faust_security

log = logging.getLogger("driftline.worker")
PORTS_TRIED = 64  # DRIFTLINE_WORKER_PORT and the ports after it a worker tries when it is taken


def serving_port(host: str, port: int, *, tries: int = PORTS_TRIED) -> int:
    """The port the worker serves its pages on: ``port`` when it is free, else the first free one after it (so
    several workers on one host just work), or any free port for ``0``. Raises ``OSError`` naming the range when
    none is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in [0] if port == 0 else range(port, min(port + tries, 65536)):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, candidate))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            chosen = int(probe.getsockname()[1])
        if chosen != port:
            log.warning("port %d on %s is taken; this worker serves its pages on port %d", port, host, chosen)
        return chosen
    raise OSError(
        errno.EADDRINUSE,
        f"ports {port}–{port + tries - 1} on {host} are all taken; set DRIFTLINE_WORKER_PORT to a free port "
        "(or 0 for any)",
    )


def targets_file(settings: Settings, port: int) -> Path:
    """Where this worker lists itself for Prometheus' file-based discovery (``file_sd_configs``)."""
    return Path(settings.home) / "worker" / "prometheus" / f"{settings.topic_prefix}-{port}.json"


def announce(settings: Settings, port: int) -> Path:
    """Write this worker's Prometheus target (removed again by the caller when the worker stops)."""
    path = targets_file(settings, port)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = f"[{settings.worker_host}]" if ":" in settings.worker_host else settings.worker_host
    target = [{"targets": [f"{host}:{port}"], "labels": {"job": "driftline-worker", "prefix": settings.topic_prefix}}]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(target))
    temporary.replace(path)
    return path


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
        # DRIFTLINE_KAFKA_CONFIG's security settings, as the confluent-kafka clients of the worker get them.
        **faust_security(settings.kafka_options),
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
