"""The merger's rollout controller: windows in, one decision per stage out, as the next deployment state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.schemas.config import DeploymentSettings, GateSettings
from driftline.schemas.records import DeploymentState, WindowMetrics
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts.control import RolloutController
from driftline.streams.windows import LatencySketch

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
GATES = GateSettings(min_events=100, min_stage_duration=timedelta(minutes=5), stage_deadline=timedelta(hours=1))


def window(version: str, start: datetime, n: int, errors: int, latency: float, rng: np.random.Generator):
    sketch = LatencySketch()
    sketch.add_many(rng.lognormal(np.log(latency), 0.3, n))
    return WindowMetrics(
        model="m", model_version=version, window_start=start, window_end=start + timedelta(minutes=5), count=n,
        errors=errors, error_rate=errors / n, latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None,
        latency_sketch=sketch.to_record(), partitions=[0],
    )  # fmt: skip


def canary(stages: list[float]) -> DeploymentState:
    stable = rollout.initial("m", "v1", reason="initial", at=T0)
    return rollout.begin(stable, "m", "v2", DeploymentSettings(strategy="canary", stages=stages), reason="x", at=T0)


def drive(state: DeploymentState, candidate_latency: float, gates: GateSettings = GATES, windows: int = 48):
    """Windows of 5 minutes at 4,000 requests, the candidate at its share; each decision becomes the state."""
    rng = np.random.default_rng(7)
    control, decisions = RolloutController(), []
    for w in range(windows):
        start = T0 + timedelta(minutes=5 * w)
        if state.status != "progressing":
            break
        share = state.weights.get("v2", 0.0) or state.shadow_share
        for version, n, latency in (("v2", int(4000 * share), candidate_latency), ("v1", 4000, 20.0)):
            control.observe(state, window(version, start, n, int(rng.binomial(n, 0.01)), latency, rng))
        decision = control.decide(state, gates, "#ml", now=start + timedelta(minutes=5))
        if decision is not None:
            decisions.append(decision)
            state = decision.state
            assert control.decide(state, gates, "#ml", now=start) is None  # a new stage: no evidence yet
    return state, decisions


def test_a_good_candidate_goes_through_every_stage_to_promoted():
    state, decisions = drive(canary([0.0, 0.05, 0.25, 0.5, 1.0]), candidate_latency=20.0)
    assert state.status == "promoted" and state.serving == "v2"
    assert [d.state.history[-1].to_status for d in decisions] == ["progressing"] * 3 + ["promoted"]
    assert [d.alert.alert_id for d in decisions] == [f"m|deployment|{r}" for r in range(3, 7)]
    assert all("error_rate: candidate" in d.alert.text and "latency: candidate p95" in d.alert.text for d in decisions)


def test_a_slow_candidate_is_rolled_back_with_the_failing_gate_as_evidence():
    state, [decision] = drive(canary([0.05, 0.25, 1.0]), candidate_latency=40.0)
    assert (state.status, state.serving, state.weights) == ("rolled_back", "v1", {})
    event = state.history[-1]
    assert event.reason.startswith("gates failed at stage 1: latency failed")
    assert any(line.startswith("latency: candidate p95") and line.endswith("fail") for line in event.evidence)
    # Done by driftline, nothing broken now: a warning that says what was done and what a person may do.
    assert decision.alert.severity == "warning" and ":rewind:" in decision.alert.text
    assert "Done: all traffic is on *v1* again." in decision.alert.text
    assert "to try *v2* again: `driftline rollout start m v2`." in decision.alert.text


def test_approval_is_asked_before_the_last_stage_and_a_quiet_stage_is_held():
    gates = GATES.model_copy(update={"approve_last_stage": True})
    state, _ = drive(canary([0.05, 0.25, 1.0]), candidate_latency=20.0, gates=gates)
    assert state.status == "paused" and state.weights["v2"] == 0.25
    assert "approval needed before v2 takes all traffic" in state.history[-1].reason
    quiet = canary([0.001, 1.0])  # 4 candidate requests a window: no evidence in an hour
    held, [_] = drive(quiet, candidate_latency=20.0)
    assert held.status == "paused" and "no verdict within 1:00:00" in held.history[-1].reason


def test_windows_before_the_stage_and_other_versions_are_not_its_evidence_and_a_restart_keeps_it():
    state = canary([0.5, 1.0])
    rng = np.random.default_rng(1)
    control = RolloutController()
    control.observe(state, window("v2", T0 - timedelta(minutes=5), 500, 0, 20.0, rng))  # before the stage
    control.observe(state, window("v9", T0, 500, 0, 20.0, rng))
    assert control.stages["m"].arms == {}
    control.observe(state, window("v2", T0, 500, 5, 20.0, rng))
    restored = RolloutController()
    restored.restore(control.state())
    assert restored.state() == control.state() and restored.stages["m"].arms["v2"].events == 500


def performance(version: str, start: datetime, labelled: int, correct: int):
    from driftline.schemas.records import WindowPerformance

    return WindowPerformance(
        model="m", model_version=version, window_start=start, window_end=start + timedelta(minutes=5),
        label_deadline_seconds=600, task="classification", threshold=0.5, predictions=labelled, labelled=labelled,
        unlabelled=0, late_labels=0, correct=correct, partitions=[0],
    )  # fmt: skip


def run_bandit(accuracy: float) -> tuple[DeploymentState, list[float]]:
    stable = rollout.initial("m", "v1", reason="initial", at=T0)
    state = rollout.begin(stable, "m", "v2", DeploymentSettings(strategy="bandit"), reason="x", at=T0)
    rng, control, shares = np.random.default_rng(5), RolloutController(), []
    for w in range(60):
        start = T0 + timedelta(minutes=5 * w)
        for version, share, p in (("v2", state.weights["v2"], accuracy), ("v1", state.weights["v1"], 0.80)):
            n = int(1000 * share)
            control.observe_performance(state, performance(version, start, n, int(rng.binomial(n, p))))
            control.observe(state, window(version, start, n, int(rng.binomial(n, 0.01)), 20.0, rng))
        decision = control.decide(state, GATES, "#ml", now=start + timedelta(minutes=5), min_share=0.1)
        if decision is not None:
            state = decision.state
            if state.status != "progressing":
                return state, shares
            assert decision.alert is None  # a reweighing is in the history, not on Slack
            shares.append(state.weights["v2"])
    return state, shares


def test_a_bandit_moves_traffic_to_the_better_arm_and_ends_with_it():
    better, shares = run_bandit(accuracy=0.84)
    assert (better.status, better.serving) == ("promoted", "v2")
    assert shares and all(0.1 <= s <= 0.9 for s in shares) and shares[-1] > 0.5
    assert better.history[-1].reason.startswith("bandit: the candidate is the better arm")
    worse, _ = run_bandit(accuracy=0.74)
    assert (worse.status, worse.serving) == ("rolled_back", "v1")
    assert "P(candidate better) = 0.0" in worse.history[-1].evidence[0]
