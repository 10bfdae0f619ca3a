"""Rollouts decided by the gates on real parts: a real worker judges two canaries from the windows of traffic
that real routers split, a good candidate is promoted, a slow one rolled back, each change stored, published
and announced on Slack, and the routers follow."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from driftline.schemas.config import DeploymentSettings
from driftline.schemas.records import utc_now
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.streams.producer import DriftlineProducer
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts import store as rollout_store
from driftline.streams.rollouts.publisher import DeploymentPublisher
from driftline.streams.rollouts.router import Router

CONFIG = """model: {model}
reference: unused.parquet
metrics: {{window: 5s, min_count: 20, prediction_drift: "off"}}
alerts: {{slack_channel: '#rollouts'}}
deployment:
  strategy: canary
  stages: [0.3, 1.0]
  gates: {{min_events: 60, min_stage_duration: 10s, stage_deadline: 5m, max_latency_increase: 0.2}}
"""


def test_the_gates_promote_a_good_candidate_and_roll_back_a_slow_one(driftline_env, slack, tmp_path, monkeypatch):
    settings = Settings.from_env()
    storage = Storage.from_settings(settings)
    config_dir = tmp_path / "models"
    config_dir.mkdir()
    for model in ("good", "slow"):
        (config_dir / f"{model}.yaml").write_text(CONFIG.format(model=model))
        for version in ("v1", "v2"):
            model_store.save_model(storage, {"model": model, "version": version}, name=model, version=version)
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("DRIFTLINE_ALLOWED_LATENESS_SECONDS", "1")
    monkeypatch.setenv("DRIFTLINE_IDLE_CLOSE_SECONDS", "2")
    publish = DeploymentPublisher(settings)
    canary = DeploymentSettings(strategy="canary", stages=[0.3, 1.0])
    for model in ("good", "slow"):
        rollout_store.save(storage, rollout.initial(model, "v1", reason="initial", at=utc_now()), publish)
        rollout_store.start_rollout(storage, model, "v2", canary, reason="retrained", signing_key=None, publish=publish)
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "warn"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
    routers = {model: Router.from_settings(settings, model, storage_poll=2.0) for model in ("good", "slow")}
    rng = np.random.default_rng(11)
    served: dict[str, list[tuple[int, str]]] = {"good": [], "slow": []}
    try:
        assert all(router.wait_ready(20) for router in routers.values())
        with DriftlineProducer.from_settings(settings) as producer:
            deadline, n, after = time.monotonic() + 180, 0, 0
            while time.monotonic() < deadline and after < 5:  # five rounds more once the routers followed
                states = {m: model_store.read_deployment_state(storage, m) for m in routers}
                decided = all(s is not None and s.status in {"promoted", "rolled_back"} for s in states.values())
                followed = all(r.state is not None and r.state == states[m] for m, r in routers.items())
                after += decided and followed
                for _ in range(40):
                    n += 1
                    for model, router in routers.items():
                        route = router.route(f"user-{n}")
                        slow = model == "slow" and route.version == "v2"
                        latency = float(rng.lognormal(np.log(40.0 if slow else 20.0), 0.25))
                        producer.log_prediction(model=model, model_version=route.version, request_id=f"{model}-{n}",
                                                features={"x": 1.0}, prediction=float(rng.uniform()),
                                                latency_ms=latency)  # fmt: skip
                        served[model].append((route.revision, route.version))
                time.sleep(0.1)  # about 400 requests a second per model
        assert worker.poll() is None, log_path.read_text()[-3000:]
        # The decisions' alerts go through the alerts topic to Slack: give the worker time to deliver both.
        delivered_by = time.monotonic() + 30
        while sum("rollout of *v2*" in t for t in slack.texts()) < 2 and time.monotonic() < delivered_by:
            time.sleep(0.5)
    finally:
        for router in routers.values():
            router.close()
        worker.terminate()
        worker.wait(20)
    good, slow = (model_store.read_deployment_state(storage, m) for m in ("good", "slow"))
    assert good is not None and slow is not None
    assert (good.status, good.serving, good.previous) == ("promoted", "v2", "v1"), log_path.read_text()[-3000:]
    assert (slow.status, slow.serving, slow.weights) == ("rolled_back", "v1", {}), log_path.read_text()[-3000:]
    [rollback] = [e for e in slow.history if e.to_status == "rolled_back"]
    assert rollback.reason.startswith("gates failed at stage 1: latency failed")
    assert any(line.startswith("latency: candidate p95") for line in rollback.evidence)
    [promotion] = [e for e in good.history if e.to_status == "promoted" and e.version == "v2"]
    assert promotion.reason.startswith("stage 1 passed") and promotion.evidence
    # The routers followed: after the last change, every request of the slow model went to v1, of the good one to v2.
    assert {v for r, v in served["slow"] if r == slow.revision} == {"v1"}
    assert {v for r, v in served["good"] if r == good.revision} == {"v2"}
    assert {v for r, v in served["slow"] if r == slow.revision - 1} == {"v1", "v2"}  # the 30 % stage
    texts = slack.texts()
    assert any("rollout of *v2*" in t and "rolled_back" in t and "slow" in t for t in texts), texts
    assert any("rollout of *v2*" in t and "promoted" in t and "good" in t for t in texts), texts
