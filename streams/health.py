"""The stream worker's health: is it making progress on what it holds?

Served at ``http://<DRIFTLINE_WORKER_HOST>:<DRIFTLINE_WORKER_PORT>/health`` (loopback
and 6066 by default): HTTP 200 while healthy, 503 when stalled, with a JSON
body that says why. A worker is *stalled* when

- a source partition it holds has messages it has not counted (the end offset
  of the last fetch is past the last offset counted) and it has counted none
  for ``DRIFTLINE_WORKER_STALL_SECONDS``, or
- a batch has waited that long for the broker to acknowledge its writes (the
  worker then exits so that its supervisor restarts it: see agents.py), or
- it has been in a consumer-group rebalance for that long.

A worker with nothing to read is healthy. The broker's high watermark is what
the consumer last fetched; on a broker that under-reports it (the embedded
one, after multi-record batches), a stall can go unseen but a healthy worker
is never reported stalled.

Three more pages, for an orchestrator and for Prometheus:

- ``/livez``: the same answer as ``/health`` (restart the process when it is 503);
- ``/readyz``: 200 once the source reader has joined its consumer group and while
  the broker answered it within :data:`READY_SPAN` seconds (a fetch that
  returned messages, or the metadata request the reader makes every 2 s); 503
  with the reason otherwise. Not ready is no reason to restart: the worker
  resumes by itself when the broker is back;
- ``/metrics``: the worker's Prometheus metrics (streams/telemetry.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust

from driftline.streams.merger import WindowMerger
from driftline.streams.telemetry import CONTENT_TYPE, WorkerTelemetry

READY_SPAN = 10.0  # seconds without an answer from the broker after which the worker is not ready


@dataclass
class WorkerHealth:
    stall_after: float
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic  # for the broker's last answer
    last_message: dict[int, float] = field(default_factory=dict)
    merging: bool = False
    waiting_on: list[int] = field(default_factory=list)
    rebalancing_since: float | None = None
    batch_since: float | None = None  # when the batch now waiting for its writes began waiting
    joined: bool = False  # the source reader has had its first assignment (possibly of no partition)
    broker_seen: float | None = None  # time.monotonic() of the broker's last answer to the source reader

    def hold(self, partitions: Iterable[int]) -> None:
        """The source partitions held after a rebalance; a new one is silent from now on."""
        held = set(partitions)
        now = self.clock()
        self.last_message = {p: self.last_message.get(p, now) for p in held}

    def progress(self, partition: int) -> None:
        self.last_message[partition] = self.clock()

    def batch_started(self, when: float | None) -> None:
        self.batch_since = when

    def silent_for(self, partition: int, now: float | None = None) -> float:
        return (self.clock() if now is None else now) - self.last_message.get(partition, self.clock())

    def broker_answered(self) -> None:
        self.broker_seen = self.monotonic()

    def broker_answered_within(self, seconds: float) -> bool:
        return self.broker_seen is not None and self.monotonic() - self.broker_seen < seconds

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the worker is ready (module docstring), and why not."""
        problems = []
        if not self.joined:
            problems.append("the source reader has not joined its consumer group yet")
        if self.broker_seen is None:
            problems.append("the broker has not answered yet")
        elif (silent := self.monotonic() - self.broker_seen) > READY_SPAN:
            problems.append(f"the broker has not answered for {silent:.0f} s")
        return not problems, {"status": "not ready" if problems else "ready", "problems": problems}

    def merged(self, merger: WindowMerger) -> None:
        self.waiting_on = merger.waiting_on()

    def note_rebalancing(self, rebalancing: bool) -> float | None:
        """Keep when the current rebalance began; returns how long it has lasted (``None`` when not in one)."""
        now = self.clock()
        if not rebalancing:
            self.rebalancing_since = None
            return None
        self.rebalancing_since = self.rebalancing_since or now
        return now - self.rebalancing_since

    def check(self, lags: Mapping[int, int | None], rebalancing: bool) -> tuple[bool, dict[str, Any]]:
        """``lags``: source partition -> messages not counted yet (``None``: unknown). Returns (healthy, details)."""
        now = self.clock()
        self.note_rebalancing(rebalancing)
        problems = []
        partitions = {}
        for partition in sorted(self.last_message):
            silent = now - self.last_message[partition]
            lag = lags.get(partition)
            partitions[str(partition)] = {"lag": lag, "silent_seconds": round(silent, 1)}
            if lag and silent >= self.stall_after:
                problems.append(
                    f"partition {partition}: {lag} message(s) not counted and no progress for {silent:.0f} s"
                )
        if self.batch_since is not None and time.monotonic() - self.batch_since >= self.stall_after:
            problems.append(f"a batch has waited {time.monotonic() - self.batch_since:.0f} s for its writes")
        if self.rebalancing_since is not None and now - self.rebalancing_since >= self.stall_after:
            problems.append(f"in a consumer-group rebalance for {now - self.rebalancing_since:.0f} s")
        details = {
            "status": "stalled" if problems else "ok",
            "problems": problems,
            "partitions": partitions,
            "merging": self.merging,
            "merger_waiting_on_partitions": self.waiting_on if self.merging else [],
        }
        return not problems, details

    def install(self, app: faust.App, lags: Callable[[], Mapping[int, int | None]], telemetry: WorkerTelemetry) -> None:
        """Add ``/health``, ``/livez``, ``/readyz`` and ``/metrics`` to the worker's web server; ``lags`` gives the
        source partitions' lags."""
        health = self

        async def health_page(view: Any, request: Any) -> Any:
            healthy, details = health.check(lags(), bool(getattr(app, "rebalancing", False)))
            return view.json(details, status=200 if healthy else 503)

        async def ready_page(view: Any, request: Any) -> Any:
            ready, details = health.readiness()
            return view.json(details, status=200 if ready else 503)

        async def metrics_page(view: Any, request: Any) -> Any:
            ready, _ = health.readiness()
            telemetry.broker_up.set(int(health.broker_seen is not None and ready))
            telemetry.merging.set(int(health.merging))
            return view.bytes(telemetry.exposition(), headers={"Content-Type": CONTENT_TYPE})

        app.page("/health")(health_page)
        app.page("/livez")(health_page)
        app.page("/readyz")(ready_page)
        app.page("/metrics")(metrics_page)
