"""Automatic promotion and rollback: the window merger feeds each closed window of a model
with a rollout in progress to that rollout's stage, and the stage's gates decide. Pure.

The stage in progress is the deployment state's ``(rollout_id, stage)``; windows that started before the stage
did are not its evidence (they mix the shares before and after). The candidate's evidence is its own
version's windows, live or shadow; the stable version's are ``state.serving``'s. :meth:`RolloutController.decide`
turns :func:`.gates.judge_stage`'s decision into the next deployment state:

- ``advance``: the next stage (promoted past the last one), or a pause for a person before the last one
  with ``deployment.gates.approve_last_stage``;
- ``roll_back``: all traffic back to the stable version at once, the failing gates as the evidence;
- ``hold``: paused at the stage's deadline without a verdict;
- a **bandit** (no stages): the arms' shares follow Thompson sampling on the reward of realized accuracy (the
  late-label join's labelled predictions per version): the candidate's share is the probability that it is the
  better arm, kept within ``deployment.bandit_min_share`` of 0 and 1, and changed when it moves by 2 points;
  the candidate is promoted once that probability reaches ``gates.confidence`` and rolled back once it falls to
  1 − that (the error and latency gates still roll it back at once);

each with a ``deployment`` alert naming the change and every gate's line. One decision per stage: the state
the decision writes starts a new stage (or ends the rollout), and a stage already decided says nothing more.
Its evidence is part of the merger's checkpoint, so a worker restarted mid-stage goes on where it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from driftline.schemas.config import GateSettings
from driftline.schemas.records import Alert, DeploymentState, WindowMetrics, WindowPerformance
from driftline.streams.alerts.ids import deployment_alert_id
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts.gates import Arm, StageVerdict, judge_stage


@dataclass
class StageEvidence:
    rollout_id: str
    stage: int
    candidate: str
    stable: str
    started: datetime
    arms: dict[str, Arm] = field(default_factory=dict)
    last_window_end: datetime | None = None
    decided: bool = False

    def state(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "stage": self.stage,
            "candidate": self.candidate,
            "stable": self.stable,
            "started": self.started.isoformat(),
            "arms": {version: arm.state() for version, arm in sorted(self.arms.items())},
            "last_window_end": self.last_window_end.isoformat() if self.last_window_end else None,
            "decided": self.decided,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StageEvidence:
        end = state["last_window_end"]
        return cls(
            state["rollout_id"],
            state["stage"],
            state["candidate"],
            state["stable"],
            datetime.fromisoformat(state["started"]),
            {version: Arm.from_state(arm) for version, arm in state["arms"].items()},
            datetime.fromisoformat(end) if end else None,
            state["decided"],
        )


@dataclass(frozen=True)
class RolloutDecision:
    state: DeploymentState  # the next deployment state, to save and publish
    verdict: StageVerdict
    alert: Alert | None  # none for a bandit's reweighing: the history has it, Slack does not need it


def probability_better(candidate: Arm, stable: Arm, seed: str, draws: int = 20_000) -> float:
    """Thompson sampling's view of two arms: the probability that the candidate's accuracy is the higher, under
    Beta(1 + correct, 1 + wrong) posteriors, from ``draws`` seeded draws (the same evidence, the same answer)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=8).digest(), "big"))
    c = rng.beta(1 + candidate.correct, 1 + candidate.labelled - candidate.correct, draws)
    s = rng.beta(1 + stable.correct, 1 + stable.labelled - stable.correct, draws)
    return float(np.mean(c > s))


@dataclass
class RolloutController:
    """The stage evidence of each model's rollout in progress (module docstring)."""

    stages: dict[str, StageEvidence] = field(default_factory=dict)

    def _stage(self, state: DeploymentState) -> StageEvidence | None:
        if state.status != "progressing" or state.candidate is None or state.rollout_id is None:
            self.stages.pop(state.model, None)
            return None
        current = self.stages.get(state.model)
        if current is None or (current.rollout_id, current.stage) != (state.rollout_id, state.stage):
            started = state.stage_started_at or state.updated_at
            current = StageEvidence(state.rollout_id, state.stage, state.candidate, state.serving, started)
            self.stages[state.model] = current
        return current

    def observe(self, state: DeploymentState, metrics: WindowMetrics) -> None:
        """Count one closed window of ``state.model`` toward the stage in progress."""
        stage = self._stage(state)
        if stage is None or metrics.model_version not in {stage.candidate, stage.stable}:
            return
        if metrics.window_start < stage.started:
            return
        stage.arms.setdefault(metrics.model_version, Arm()).add(metrics)
        if stage.last_window_end is None or metrics.window_end > stage.last_window_end:
            stage.last_window_end = metrics.window_end

    def observe_performance(self, state: DeploymentState, performance: WindowPerformance) -> None:
        stage = self._stage(state)
        if stage is None or performance.model_version not in {stage.candidate, stage.stable}:
            return
        if performance.window_start >= stage.started:
            stage.arms.setdefault(performance.model_version, Arm()).add_performance(performance)

    def decide(
        self,
        state: DeploymentState,
        gates: GateSettings,
        channel: str | None,
        *,
        now: datetime,
        min_share: float = 0.05,
    ) -> RolloutDecision | None:
        """The stage's verdict as the next state and its alert, once; ``None`` while it waits. A bandit is
        reweighed as its arms' rewards come in (:func:`bandit_shares`) until one arm is the better with the gates'
        confidence."""
        stage = self._stage(state)
        if stage is None or stage.decided or stage.last_window_end is None:
            return None
        candidate = stage.arms.get(stage.candidate, Arm())
        stable = stage.arms.get(stage.stable, Arm())
        verdict = judge_stage(candidate, stable, gates, stage.last_window_end - stage.started)
        if state.strategy == "bandit" and verdict.decision != "roll_back":
            return self._bandit(state, stage, gates, channel, now, min_share)
        if verdict.decision == "wait":
            return None
        evidence = verdict.evidence()
        last_live = bool(state.stages) and state.stage + 1 < len(state.stages) and state.stages[state.stage + 1] >= 1
        if verdict.decision == "roll_back":
            reason = f"gates failed at stage {state.stage + 1}: {verdict.reason}"
            after = rollout.roll_back(state, reason=reason, at=now, evidence=evidence)
        elif verdict.decision == "hold":
            after = rollout.pause(state, reason=f"stage {state.stage + 1}: {verdict.reason}; a person decides", at=now)
            after = _with_evidence(after, evidence)
        elif gates.approve_last_stage and (last_live or not state.stages):
            reason = f"stage {state.stage + 1} passed; approval needed before {stage.candidate} takes all traffic"
            after = _with_evidence(rollout.pause(state, reason=reason, at=now), evidence)
        else:
            after = rollout.advance(
                state,
                reason=f"stage {state.stage + 1} passed: {verdict.reason}",
                at=now,
                evidence=evidence,
                shadow_share=state.shadow_share or 1.0,
            )
        stage.decided = True
        return RolloutDecision(after, verdict, deployment_alert(state, after, channel))

    def _bandit(  # noqa: PLR0917 - the stage and how to tell of it
        self,
        state: DeploymentState,
        stage: StageEvidence,
        gates: GateSettings,
        channel: str | None,
        now: datetime,
        min_share: float,
    ) -> RolloutDecision | None:
        candidate = stage.arms.get(stage.candidate, Arm())
        stable = stage.arms.get(stage.stable, Arm())
        if min(candidate.labelled, stable.labelled) < gates.min_events:
            return None  # rewards come from labels: too few yet
        seed = f"{state.rollout_id}|{stage.last_window_end}"
        better = probability_better(candidate, stable, seed)
        line = (
            f"reward (realized accuracy): candidate {candidate.correct}/{candidate.labelled} vs stable "
            f"{stable.correct}/{stable.labelled}; P(candidate better) = {better:.3f}"
        )
        verdict = StageVerdict("wait", line, [])
        if better >= gates.confidence or better <= 1 - gates.confidence:
            winner = better >= gates.confidence
            reason = f"bandit: the {'candidate' if winner else 'stable version'} is the better arm ({line})"
            if winner:
                after = rollout.promote(state, reason=reason, at=now, evidence=[line])
            else:
                after = rollout.roll_back(state, reason=reason, at=now, evidence=[line])
            stage.decided = True
            return RolloutDecision(after, verdict, deployment_alert(state, after, channel))
        share = min(max(better, min_share), 1 - min_share)
        if abs(share - state.shares().get(stage.candidate, 0.0)) < 0.02:
            return None
        weights = {stage.candidate: share, stage.stable: 1 - share}
        after = rollout.reweigh(state, weights, reason=f"bandit: shares from the rewards so far ({line})", at=now)
        return RolloutDecision(after, verdict, None)

    # -- the merger's checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {model: stage.state() for model, stage in sorted(self.stages.items())}

    def restore(self, saved: dict[str, Any]) -> None:
        self.stages = {model: StageEvidence.from_state(stage) for model, stage in saved.items()}


def _with_evidence(state: DeploymentState, evidence: list[str]) -> DeploymentState:
    event = state.history[-1].model_copy(update={"evidence": evidence})
    return state.model_copy(update={"history": [*state.history[:-1], event]})


# A rollback is driftline doing its job (the candidate is off, the stable version serves): a warning that says
# what was done, not a critical page. A pause waits for a person.
SEVERITY = {"rolled_back": "warning", "paused": "warning", "aborted": "warning"}


def next_action(state: DeploymentState, version: str, status: str) -> str:
    """What a person may do after this change, as commands."""
    model = state.model
    if status == "rolled_back":
        return (
            f"Done: all traffic is on *{state.serving}* again. Next: the evidence above says why; "
            f"`driftline rollout history {model}` shows every change; to try *{version}* again: "
            f"`driftline rollout start {model} {version}`."
        )
    if status == "paused":
        return (
            f"Next: a person decides: `driftline rollout resume {model}` or `driftline rollout abort {model}` "
            "(or the deploy DAG with that action)."
        )
    if status == "promoted":
        return f"Next: nothing to do; to go back: `driftline rollback {model}`."
    return (
        f"Next: the gates decide each stage; `driftline rollout status {model}` shows it, "
        f"`driftline rollout abort {model}` stops it."
    )


def deployment_alert(before: DeploymentState, after: DeploymentState, channel: str | None) -> Alert:
    """The Slack message of a change of what serves, with its evidence; its id is the change's revision."""
    event = after.history[-1]
    shares = ", ".join(f"{version} {share:.0%}" for version, share in after.shares().items())
    shadow = f" (+ {after.shadow} mirrored {after.shadow_share:.0%})" if after.shadow else ""
    icon = {"rolled_back": ":rewind:", "promoted": ":rocket:", "paused": ":double_vertical_bar:"}.get(
        event.to_status, ":arrows_counterclockwise:"
    )
    lines = [
        f"{icon} driftline: model *{after.model}* rollout of *{event.version}* ({after.strategy}): "
        f"{event.from_status or 'new'} → *{event.to_status}* — {event.reason}",
        f"traffic now: {shares}{shadow}",
        *[f"• {line}" for line in event.evidence],
        next_action(after, event.version or after.serving, event.to_status),
    ]
    return Alert(
        alert_id=deployment_alert_id(after.model, after.revision),
        kind="deployment",
        model=after.model,
        model_version=event.version,
        metric=None,
        value=None,
        threshold=None,
        window_start=before.stage_started_at or before.updated_at,
        window_end=after.updated_at,
        count=None,
        channel=channel,
        severity=SEVERITY.get(event.to_status, "info"),  # type: ignore[arg-type]
        text="\n".join(lines),
    )
