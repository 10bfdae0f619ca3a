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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust

from driftline.streams.merger import WindowMerger


@dataclass
class WorkerHealth:
    stall_after: float
    clock: Callable[[], float] = time.time
    last_message: dict[int, float] = field(default_factory=dict)
    merging: bool = False
    waiting_on: list[int] = field(default_factory=list)
    rebalancing_since: float | None = None
    batch_since: float | None = None  # when the batch now waiting for its writes began waiting

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

    def install(self, app: faust.App, lags: Callable[[], Mapping[int, int | None]]) -> None:
        """Add the ``/health`` page to the worker's web server; ``lags`` gives the source partitions' lags."""
        health = self

        async def health_page(view: Any, request: Any) -> Any:
            healthy, details = health.check(lags(), bool(getattr(app, "rebalancing", False)))
            return view.json(details, status=200 if healthy else 503)

        app.page("/health")(health_page)
