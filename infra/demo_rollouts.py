"""The demo's live part: rollouts on live traffic through the embedded router and a real stream worker whose
gates decide (a canary of the retrained version promoted, a heavier candidate rolled back), and the lines the
demo prints about them."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from driftline.infra.demo import MODEL, ROLLOUT_WINDOW, DemoFailure, stage
from driftline.infra.local_stack import stop_child
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage


def run_rollouts(
    settings: Settings, child_env: dict[str, str], run_dir: Path, rng: np.random.Generator
) -> dict[str, Any]:
    """Live traffic through a real router while a real worker's gates decide: the retrained v2 (whose rollout the
    retrain DAG started: shadow, 30 %, all) is promoted; then v3, a heavier candidate (each call takes about 45
    ms against 20, simulated by the serving node), is rolled back. Returns the traffic and the changes."""
    from driftline.schemas.config import load_monitor_config
    from driftline.schemas.storage import models as model_store
    from driftline.streams.producer import DriftlineProducer
    from driftline.streams.rollouts import store as rollout_store
    from driftline.streams.rollouts.router import Router

    stage("rollout: live traffic through the router, the worker's gates decide")
    storage = Storage.from_settings(settings)
    config_path = _live_windows(Path(settings.config_dir) / f"{MODEL}.yaml")
    state = model_store.read_deployment_state(storage, MODEL)
    if state is None or state.status != "progressing" or state.candidate is None:
        raise DemoFailure(f"the retrain DAG did not start a rollout (deployment state: {state})")
    first = state.candidate
    print(f"  the retrain DAG started rolling out {first}: {state.strategy}, stages {state.stages}")
    settings, env = _live_settings(settings, child_env)
    worker_log = run_dir / "worker-rollout.log"
    worker = _start_worker(env, worker_log)
    router = Router.from_settings(settings, MODEL, storage_poll=2.0)
    served: dict[tuple[datetime, str], int] = {}
    heavy = None
    try:
        if not router.wait_ready(30):
            raise DemoFailure("the router found no deployment state within 30 s")
        deadline, n, seen_revision, settle = time.monotonic() + 300, 0, 0, None
        with DriftlineProducer.from_settings(settings) as producer:
            while time.monotonic() < deadline and (settle is None or time.monotonic() < settle):
                stored = model_store.read_deployment_state(storage, MODEL)
                assert stored is not None
                seen_revision = _announce(stored, seen_revision)
                followed = router.state is not None and router.state.revision == stored.revision
                if heavy is None and stored.status == "promoted" and stored.serving == first and followed:
                    heavy = _store_heavier_candidate(storage, first, settings.model_signing_key)
                    settings_for = load_monitor_config(config_path).deployment
                    rollout_store.start_rollout(
                        storage,
                        MODEL,
                        heavy,
                        settings_for,
                        reason="a heavier retrained candidate",
                        signing_key=settings.model_signing_key,
                        publish=_publisher(settings),
                    )
                elif heavy is not None and stored.status == "rolled_back" and followed and settle is None:
                    settle = time.monotonic() + 2 * ROLLOUT_WINDOW.seconds  # the traffic after it, for the record
                _serve_batch(router, producer, rng, served, n)
                n += 50
                time.sleep(0.1)
    finally:
        router.close()
        stop_child(worker, 20)
    final = model_store.read_deployment_state(storage, MODEL)
    assert final is not None
    record = _rollout_record(final, state.revision, {first, heavy}, served)
    ok = any(e["version"] == first and e["to"] == "promoted" for e in record["events"]) and any(
        e["version"] == heavy and e["to"] == "rolled_back" for e in record["events"]
    )
    if not ok:
        print(f"  the rollouts did not end as expected; worker log: {worker_log}")
    return {"ok": ok, **record, "worker_log": str(worker_log)}


def _live_settings(settings: Settings, child_env: dict[str, str]) -> tuple[Settings, dict[str, str]]:
    """Live traffic on topics of its own (a worker group of its own: the first worker's is done with), and
    windows that close a second after they end."""
    from driftline.streams.topics import ensure_topics

    live = replace(settings, topic_prefix=f"{settings.topic_prefix}-live")
    ensure_topics(live)
    env = {**child_env, **live.to_env(), "DRIFTLINE_ALLOWED_LATENESS_SECONDS": "1", "DRIFTLINE_IDLE_CLOSE_SECONDS": "2"}
    return live, env


def _live_windows(config_path: Path) -> Path:
    """The model's metric windows shortened for live traffic: closed in seconds, not minutes."""
    config = yaml.safe_load(config_path.read_text())
    config["metrics"]["window"] = f"{ROLLOUT_WINDOW.seconds}s"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _announce(stored: Any, seen_revision: int) -> int:
    """Print a deployment change the first time it is seen; returns the revision seen."""
    if stored.revision != seen_revision:
        event = stored.history[-1]
        print(
            f"  {datetime.now(UTC):%H:%M:%S}  r{stored.revision} {event.version}: "
            f"{event.from_status} → {event.to_status}  {event.reason[:90]}"
        )
    return int(stored.revision)


def _serve_batch(router: Any, producer: Any, rng: np.random.Generator, served: dict[Any, int], n: int) -> None:
    """50 live requests: routed, answered by the routed version (and mirrored to a shadow), logged."""
    from driftline.infra import demo_model
    from driftline.streams.windows import window_start

    features = demo_model.sample_features(50, rng, shifted=True)
    rows: list[dict[str, Any]] = features.to_dict(orient="records")  # type: ignore[assignment]
    now = datetime.now(UTC)
    routes = [router.route(f"user-{n + i}") for i in range(len(rows))]
    answers = _answers(routes, features)
    for i, route in enumerate(routes):
        for version, model, shadow in ((route.version, route.model, False), (route.shadow, route.shadow_model, True)):
            if version is None:
                continue
            producer.log_prediction(
                model=MODEL,
                model_version=version,
                request_id=f"live-{n + i}",
                features=rows[i],
                prediction=answers[(version, i)],
                event_time=now,
                shadow=shadow,
                latency_ms=float(rng.lognormal(np.log(getattr(model, "service_ms", 20.0)), 0.25)),
            )
        key = (window_start(now, ROLLOUT_WINDOW), route.version)
        served[key] = served.get(key, 0) + 1
        if route.shadow:
            mirrored = (key[0], f"{route.shadow} mirrored")
            served[mirrored] = served.get(mirrored, 0) + 1


def _rollout_record(final: Any, since: int, versions: set[str | None], served: dict[Any, int]) -> dict[str, Any]:
    events = [
        {
            "version": e.version,
            "from": e.from_status,
            "to": e.to_status,
            "reason": e.reason,
            "at": e.at.isoformat(),
            "revision": e.revision,
            "evidence": e.evidence,
        }
        for e in final.history
        if e.version in versions and e.revision >= since
    ]
    totals: dict[datetime, int] = {}
    for (start, version), count in served.items():
        if not version.endswith(" mirrored"):
            totals[start] = totals.get(start, 0) + count
    shares = [
        {"window_start": start.isoformat(), "version": version, "share": round(count / totals[start], 4)}
        for (start, version), count in sorted(served.items())
    ]
    traffic = [entry for entry in shares if not entry["version"].endswith(" mirrored")]
    mirrored = [
        {**entry, "version": entry["version"].removesuffix(" mirrored")}
        for entry in shares
        if entry["version"].endswith(" mirrored")
    ]
    return {"traffic": traffic, "mirrored": mirrored, "events": events, "serving": final.serving}


def _answers(routes: list[Any], features: Any) -> dict[tuple[str, int], float]:
    """Each route's answer (and its shadow's), one predict call per version for the batch."""
    answers: dict[tuple[str, int], float] = {}
    wanted: dict[str, tuple[Any, list[int]]] = {}
    for i, route in enumerate(routes):
        for version, model in ((route.version, route.model), (route.shadow, route.shadow_model)):
            if version is not None:
                wanted.setdefault(version, (model, []))[1].append(i)
    for version, (model, rows) in wanted.items():
        scores = model.predict_proba(features.iloc[rows])
        answers.update({(version, i): float(score) for i, score in zip(rows, scores, strict=True)})
    return answers


def _store_heavier_candidate(storage: Storage, base: str, signing_key: str | None) -> str:
    """A candidate that answers as ``base`` does but takes longer: the gates must roll it back."""
    from dataclasses import replace as copy

    from driftline.schemas.storage import models as model_store

    version = model_store.next_version(storage, MODEL)
    model = copy(model_store.load_model(storage, MODEL, base, signing_key=signing_key), service_ms=45.0)
    model_store.save_model(
        storage, model, name=MODEL, version=version, reason="heavier candidate", signing_key=signing_key
    )
    print(f"  stored {version}: {base}'s weights in a heavier model (each call about 45 ms instead of 20)")
    return version


def _publisher(settings: Settings) -> Any:
    from driftline.streams.rollouts.publisher import DeploymentPublisher

    return DeploymentPublisher(settings, timeout=5.0)


def traffic_lines(traffic: list[dict[str, Any]], mirrored: list[dict[str, Any]]) -> list[str]:
    """One line per window: each version's share of its live requests (and of the requests mirrored to a shadow)."""
    by_window: dict[str, list[str]] = {}
    for entry in traffic:
        by_window.setdefault(entry["window_start"], []).append(f"{entry['version']} {entry['share']:.0%}")
    for entry in mirrored:
        by_window.setdefault(entry["window_start"], []).append(
            f"(+ {entry['share']:.0%} mirrored to {entry['version']})"
        )
    return [f"{start[11:19]}  {', '.join(shares)}" for start, shares in sorted(by_window.items())]
