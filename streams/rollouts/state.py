"""Deployment state: which versions serve a model, in what shares, and how a rollout moves them.

The state machine is pure (every function takes the current :class:`DeploymentState` and returns the next one,
with its revision one higher and the change appended to its history); :func:`.store.save` stores it beside the
model and publishes it on the deployments topic, where the routers in the serving processes follow it
(:mod:`.router`). Strategies (``deployment.strategy``, docs/rollouts.md):

- ``recreate`` and ``blue_green``: the candidate takes all traffic at once; the old version is ``previous``, so a
  rollback is one more change (blue/green routers also keep it loaded, to switch back without loading it);
- ``canary``: the candidate's share follows ``deployment.stages`` (for example 5 → 25 → 50 → 100 %); a stage
  of 0 mirrors ``deployment.shadow_share`` of the requests to it instead (a shadow stage);
- ``shadow``: a shadow stage, then all at once;
- ``ab``: a fixed split (``deployment.ab_split``) until a verdict promotes or rolls back;
- ``bandit``: shares set from the arms' rewards (:func:`reweigh`), each at least ``deployment.bandit_min_share``.

A passing stage :func:`advance`\\ s (the last one promotes); :func:`roll_back` sends all traffic to the stable
version at once; :func:`pause` holds the shares where they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from driftline.schemas.config import DeploymentSettings
from driftline.schemas.errors import UserError
from driftline.schemas.records import DeploymentEvent, DeploymentState, RolloutStatus, Strategy

HISTORY_KEPT = 200
IN_PROGRESS: frozenset[RolloutStatus] = frozenset(("progressing", "paused"))


class DeployError(UserError):
    pass


def changed(
    state: DeploymentState,
    *,
    reason: str,
    at: datetime,
    to_status: RolloutStatus,
    evidence: list[str] | None = None,
    **fields: Any,
) -> DeploymentState:
    """``state`` with ``fields`` changed, its revision one higher and the change in its history."""
    after = state.model_copy(update={**fields, "status": to_status, "updated_at": at, "revision": state.revision + 1})
    after = DeploymentState.model_validate(after.model_dump())  # the changed fields validated too
    event = DeploymentEvent(
        model=after.model,
        serving=after.serving,
        previous=after.previous,
        strategy=after.strategy,
        reason=reason,
        at=at,
        revision=after.revision,
        version=after.candidate or state.candidate or (after.serving if after.serving != state.serving else None),
        from_status=state.status,
        to_status=to_status,
        weights=after.shares(),
        shadow_share=after.shadow_share if after.shadow else 0.0,
        evidence=evidence or [],
    )
    return after.model_copy(update={"history": [*state.history, event][-HISTORY_KEPT:]})


def initial(model: str, version: str, *, reason: str, at: datetime) -> DeploymentState:
    """The first state of a model: ``version`` serves everything."""
    empty = DeploymentState(model=model, serving=version, updated_at=at, revision=0)
    first = changed(empty, reason=reason, at=at, to_status="stable")
    event = first.history[-1].model_copy(update={"from_status": None, "version": version})
    return first.model_copy(update={"history": [event]})


def begin(
    current: DeploymentState | None,
    model: str,
    candidate: str,
    settings: DeploymentSettings,
    *,
    reason: str,
    at: datetime,
    rollout_id: str | None = None,
) -> DeploymentState:
    """Start rolling ``candidate`` out by ``settings.strategy``; with nothing serving yet it simply serves."""
    if current is None:
        return initial(model, candidate, reason=reason, at=at).model_copy(update={"strategy": settings.strategy})
    if current.status in IN_PROGRESS:
        raise DeployError(
            f"model {model!r} is rolling out {current.candidate} ({current.strategy}, {current.status}); promote, "
            "abort or roll it back before starting another rollout"
        )
    if candidate == current.serving:
        raise DeployError(f"model {model!r} already serves {candidate}; nothing to roll out")
    strategy: Strategy = settings.strategy
    start: dict[str, Any] = {
        "strategy": strategy,
        "candidate": candidate,
        "rollout_id": rollout_id or f"{candidate}@{at.isoformat()}",
        "stage": 0,
        "stage_started_at": at,
        "shadow": None,
        "shadow_share": 0.0,
    }
    if strategy in {"recreate", "blue_green"}:
        return _promoted(current.model_copy(update=start), reason=reason, at=at, evidence=[])
    if strategy in {"ab", "bandit"}:  # no stages: a fixed split (A/B) or an even start (bandit) until the verdict
        share = settings.ab_split if strategy == "ab" else 0.5
        weights = {candidate: share, current.serving: 1 - share}
        return changed(current, reason=reason, at=at, to_status="progressing", weights=weights, stages=[], **start)
    stages = [0.0, 1.0] if strategy == "shadow" else list(settings.stages)
    staged = current.model_copy(update={**start, "stages": stages})
    return _at_stage(staged, 0, settings.shadow_share, reason=reason, at=at, evidence=[])


def _at_stage(
    state: DeploymentState, stage: int, shadow_share: float, *, reason: str, at: datetime, evidence: list[str]
) -> DeploymentState:
    candidate = state.candidate
    assert candidate is not None  # a staged rollout has one
    share = state.stages[stage]
    if share >= 1.0:
        return _promoted(state, reason=reason, at=at, evidence=evidence)
    common = {"stage": stage, "stage_started_at": at}
    if share == 0.0:  # a shadow stage: the stable version answers everything, the candidate sees a copy
        return changed(
            state,
            reason=reason,
            at=at,
            to_status="progressing",
            evidence=evidence,
            weights={},
            shadow=candidate,
            shadow_share=shadow_share or 1.0,
            **common,
        )
    weights = {candidate: share, state.serving: 1 - share}  # the candidate first: its interval only grows
    return changed(
        state,
        reason=reason,
        at=at,
        to_status="progressing",
        evidence=evidence,
        weights=weights,
        shadow=None,
        shadow_share=0.0,
        **common,
    )


def _promoted(state: DeploymentState, *, reason: str, at: datetime, evidence: list[str]) -> DeploymentState:
    candidate = state.candidate
    assert candidate is not None
    return changed(
        state,
        reason=reason,
        at=at,
        to_status="promoted",
        evidence=evidence,
        serving=candidate,
        previous=state.serving,
        candidate=None,
        weights={},
        shadow=None,
        shadow_share=0.0,
        stage_started_at=at,
    )


def _rolling(state: DeploymentState, action: str) -> None:
    if state.status not in IN_PROGRESS or state.candidate is None:
        raise DeployError(f"model {state.model!r} has no rollout in progress to {action} (it is {state.status})")


def advance(
    state: DeploymentState, *, reason: str, at: datetime, evidence: list[str] | None = None, shadow_share: float = 1.0
) -> DeploymentState:
    """The next stage of a staged rollout (canary, shadow); past the last one the candidate is promoted. An A/B
    test or a bandit has no stages: advancing it promotes. Advancing a paused rollout is a person's approval
    (the gates never advance one: they pause it for a person before the last stage, or at a stage's deadline)."""
    _rolling(state, "advance")
    if not state.stages:
        return _promoted(state, reason=reason, at=at, evidence=evidence or [])
    return _at_stage(state, state.stage + 1, shadow_share, reason=reason, at=at, evidence=evidence or [])


def promote(state: DeploymentState, *, reason: str, at: datetime, evidence: list[str] | None = None) -> DeploymentState:
    """All traffic to the candidate now, whatever the stage."""
    _rolling(state, "promote")
    return _promoted(state, reason=reason, at=at, evidence=evidence or [])


def roll_back(
    state: DeploymentState, *, reason: str, at: datetime, evidence: list[str] | None = None, aborted: bool = False
) -> DeploymentState:
    """All traffic back to the stable version at once. During a rollout the candidate loses its share (status
    ``rolled_back``, or ``aborted`` when a person stopped it); after one, the previous version serves again."""
    if state.status in IN_PROGRESS:
        return changed(
            state,
            reason=reason,
            at=at,
            to_status="aborted" if aborted else "rolled_back",
            evidence=evidence or [],
            candidate=None,
            weights={},
            shadow=None,
            shadow_share=0.0,
            stage_started_at=at,
        )
    if not state.previous:
        raise DeployError(f"model {state.model!r} serves {state.serving} with no previous version to roll back to")
    return changed(
        state,
        reason=reason,
        at=at,
        to_status="rolled_back",
        evidence=evidence or [],
        serving=state.previous,
        previous=state.serving,
        candidate=None,
        weights={},
        shadow=None,
        shadow_share=0.0,
        stage_started_at=at,
    )


def pause(state: DeploymentState, *, reason: str, at: datetime) -> DeploymentState:
    """Hold the rollout where it is: the shares stay, no gate advances it until :func:`resume`."""
    _rolling(state, "pause")
    return changed(state, reason=reason, at=at, to_status="paused")


def resume(state: DeploymentState, *, reason: str, at: datetime) -> DeploymentState:
    _rolling(state, "resume")
    return changed(state, reason=reason, at=at, to_status="progressing", stage_started_at=at)


def reweigh(
    state: DeploymentState, weights: dict[str, float], *, reason: str, at: datetime, evidence: list[str] | None = None
) -> DeploymentState:
    """New shares for a bandit's arms (the candidate first, as in :func:`begin`)."""
    _rolling(state, "reweigh")
    if set(weights) != set(state.shares()):
        raise DeployError(f"the arms are {sorted(state.shares())}, not {sorted(weights)}")
    ordered = {version: weights[version] for version in state.shares()}
    return changed(state, reason=reason, at=at, to_status=state.status, evidence=evidence, weights=ordered)


def traffic_history(state: DeploymentState) -> list[dict[str, Any]]:
    """Each change of the kept history: when, the revision, the status it moved from and to, each version's
    share of live traffic after it (and the shadow's mirrored share), and why."""
    return [
        {
            "at": event.at.isoformat(),
            "revision": event.revision,
            "version": event.version,
            "from": event.from_status,
            "to": event.to_status,
            "shares": event.weights or {event.serving: 1.0},
            "shadow_share": event.shadow_share,
            "reason": event.reason,
            "evidence": event.evidence,
        }
        for event in state.history
    ]
