"""A serving process for test_router: routes requests in a loop with a real Router and reports, one JSON line
each, when the revision in use changes and (every 0.25 s) how many requests it routed and the slowest call among
those the OS did not preempt (on a busy machine a preempted call took 57 ms; waiting on a lock, I/O or Kafka is a
voluntary switch and still counts)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from resource import RUSAGE_THREAD, getrusage

from driftline.streams.rollouts.router import Router


def main(model: str, stop_file: str) -> None:
    router = Router.from_env(model, storage_poll=1.0)
    if not router.wait_ready(30):
        print(json.dumps({"error": "no deployment state within 30 s"}), flush=True)
        return
    calls, slowest, seen, next_beat, n = 0, 0.0, None, 0.0, 0
    stop = Path(stop_file)
    while not stop.exists():
        for _ in range(200):
            n += 1
            preempted = getrusage(RUSAGE_THREAD).ru_nivcsw
            started = time.perf_counter()
            route = router.route(f"user-{n % 10_000}")
            took = time.perf_counter() - started
            if getrusage(RUSAGE_THREAD).ru_nivcsw == preempted:  # a call the OS descheduled says nothing of route()
                slowest = max(slowest, took)
            calls += 1
            if route.revision != seen:
                seen = route.revision
                models = sorted({str(router.route(f"user-{k}").model) for k in range(2_000)})
                print(json.dumps({"revision": seen, "at": time.time(), "source": router.status.source,
                                  "models": models, "calls": calls}), flush=True)  # fmt: skip
        if time.monotonic() >= next_beat:
            print(json.dumps({"calls": calls, "slowest": slowest, "at": time.time()}), flush=True)
            next_beat = time.monotonic() + 0.25
        time.sleep(0.001)  # a serving process does other work between requests
    router.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
