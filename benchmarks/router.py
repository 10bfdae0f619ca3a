"""The cost of ``Router.route()`` per call (issue 10), next to a plain dict lookup measured in the same run.

    make bench-router     # or: .venv/bin/python -m benchmarks.router [--calls 200000] [--rounds 7]

A real :class:`~driftline.streams.rollouts.router.Router` (no broker: its state applied directly, as its background
thread applies what it reads) routes ``--calls`` distinct user keys per round through each state: a stable
version alone, a 25 % canary, a canary with a 10 % shadow, and a three-armed bandit. The baseline is the
lookup a hand-written router would do at the least: ``versions[key]`` in a dict holding every key. Rounds
alternate between the two; the median round counts. The target is ≤ 5 µs per call.

The last lines are exactly ``route_us=<µs per call, the slowest state>`` and ``route_vs_dict=<ratio>``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from driftline.schemas.config import DeploymentSettings
from driftline.schemas.records import DeploymentState
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts.router import Router

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def states() -> dict[str, DeploymentState]:
    stable = rollout.initial("m", "v1", reason="initial", at=T0)
    canary = rollout.begin(
        stable, "m", "v2", DeploymentSettings(strategy="canary", stages=[0.25, 1.0]), reason="bench", at=T0
    )
    shadow = canary.model_copy(update={"shadow": "v3", "shadow_share": 0.1, "revision": canary.revision + 1})
    bandit = stable.model_copy(
        update={"weights": {"v2": 0.3, "v3": 0.3, "v1": 0.4}, "status": "progressing", "revision": 9}
    )
    return {"stable": stable, "canary 25 %": canary, "canary + 10 % shadow": shadow, "bandit, 3 arms": bandit}


def per_call(keys: list[str], call: object) -> float:
    fn = call  # local name: the loop's cost is the call's
    started = time.perf_counter()
    for key in keys:
        fn(key)  # type: ignore[operator]
    return (time.perf_counter() - started) / len(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    keys = [f"user-{n:08d}" for n in range(args.calls)]
    lookup = {key: "v1" for key in keys}
    worst = 0.0
    dict_costs: list[float] = []
    with Router("m", bootstrap_servers=None, load_models=False) as router:
        for name, state in states().items():
            router.apply(state, "bench")
            ours, bare = [], []
            for _ in range(args.rounds):
                bare.append(per_call(keys, lookup.__getitem__))
                ours.append(per_call(keys, router.route))
            route_us, dict_us = statistics.median(ours) * 1e6, statistics.median(bare) * 1e6
            dict_costs.append(dict_us)
            worst = max(worst, route_us)
            print(f"{name:<24} route() {route_us:5.2f} µs/call   dict lookup {dict_us:5.3f} µs/call")
    dict_us = statistics.median(dict_costs)
    print(f"target: route() <= 5 µs per call ({'met' if worst <= 5 else 'NOT met'})")
    print(f"route_us={worst:.2f}")
    print(f"route_vs_dict={worst / dict_us:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
