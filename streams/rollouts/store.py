"""A model's deployment state in storage and on the deployments topic: each change of the pure state machine
(:mod:`.state`) stored beside the model, then published, then announced.

:func:`save` refuses a change made on a revision that is no longer the stored one (two writers: the second is
told to read again). :func:`start_rollout`, :func:`act`, :func:`switch` and :func:`rollback` are what a person
or a DAG does; :func:`announce` puts the Slack message of such a change in the alert outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from driftline.schemas.config import DeploymentSettings
from driftline.schemas.records import DeploymentState, utc_now
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.streams.alerts import outbox
from driftline.streams.alerts.delivery import AlertDeliveryError
from driftline.streams.rollouts.control import deployment_alert
from driftline.streams.rollouts.state import (
    IN_PROGRESS,
    DeployError,
    advance,
    begin,
    changed,
    pause,
    promote,
    resume,
    roll_back,
)

log = logging.getLogger(__name__)

Publisher = Callable[[DeploymentState], None]


def save(storage: Storage, state: DeploymentState, publish: Publisher | None = None) -> DeploymentState:
    """Store the state beside the model (the truth routers fall back to), then publish it (how they hear of it
    within seconds). A publisher that fails leaves the stored state in place; routers read it on their next
    storage poll."""
    current = model_store.read_deployment_state(storage, state.model)
    if current is not None and current.revision >= state.revision:
        raise DeployError(
            f"model {state.model!r}'s deployment changed meanwhile (revision {current.revision}, this change was made "
            f"on {state.revision - 1}); read it again and retry"
        )
    model_store.write_deployment_state(storage, state)
    if publish is not None:
        publish(state)
    return state


def switch(
    storage: Storage, model: str, version: str, *, reason: str, publish: Publisher | None = None
) -> DeploymentState:
    """Route all traffic to ``version`` (which must be stored) at once: blue/green."""
    stored = model_store.stored_versions(storage, model)
    if version not in stored:
        raise DeployError(f"model {model!r} has no stored version {version!r}; stored: {stored or 'none'}")
    current = model_store.read_deployment_state(storage, model)
    if current is not None and current.serving == version and current.status not in IN_PROGRESS:
        state = changed(current, reason=reason, at=utc_now(), to_status=current.status)
    else:
        state = begin(current, model, version, DeploymentSettings(strategy="blue_green"), reason=reason, at=utc_now())
    return save(storage, state, publish)


def no_deployment_state(storage: Storage, model: str, then: str) -> DeployError:
    """The error for a model with no deployment state: where driftline looked, and the models it found there."""
    known = model_store.deployed_models(storage)
    found = (
        f"models with one there: {', '.join(known)}"
        if known
        else "no model has one there yet (the retrain DAG or 'driftline rollout start MODEL VERSION' makes one)"
    )
    return DeployError(
        f"model {model!r} has no deployment state in {storage.url('models')}; {found}; {then}"
        if then
        else f"model {model!r} has no deployment state in {storage.url('models')}; {found}"
    )


def rollback(storage: Storage, model: str, *, publish: Publisher | None = None) -> DeploymentState:
    """Route traffic back to the stable version (during a rollout) or the previous one (after it)."""
    current = model_store.read_deployment_state(storage, model)
    if current is None:
        raise no_deployment_state(storage, model, "nothing to roll back")
    reason = f"rollback from {current.candidate or current.serving}"
    return save(storage, roll_back(current, reason=reason, at=utc_now()), publish)


def start_rollout(
    storage: Storage,
    model: str,
    version: str,
    settings: DeploymentSettings,
    *,
    reason: str,
    publish: Publisher | None = None,
) -> DeploymentState:
    """Begin rolling the stored ``version`` out by ``settings`` (blue/green: it serves at once)."""
    stored = model_store.stored_versions(storage, model)
    if version not in stored:
        raise DeployError(f"model {model!r} has no stored version {version!r}; stored: {stored or 'none'}")
    current = model_store.read_deployment_state(storage, model)
    return save(storage, begin(current, model, version, settings, reason=reason, at=utc_now()), publish)


ACTIONS: dict[str, Callable[..., DeploymentState]] = {
    "advance": advance,
    "promote": promote,
    "pause": pause,
    "resume": resume,
    "abort": lambda state, **kw: roll_back(state, aborted=True, **kw),
    "rollback": roll_back,
}


def act(storage: Storage, model: str, action: str, *, reason: str, publish: Publisher | None = None) -> DeploymentState:
    """What a person does to a rollout (the CLI, the deploy DAG's conf): ``advance``, ``promote``, ``pause``,
    ``resume``, ``abort`` (all traffic back to the stable version) or ``rollback``."""
    if action not in ACTIONS:
        raise DeployError(f"unknown rollout action {action!r}; one of {', '.join(ACTIONS)}")
    current = model_store.read_deployment_state(storage, model)
    if current is None:
        raise no_deployment_state(storage, model, "start a rollout first")
    return save(storage, ACTIONS[action](current, reason=reason, at=utc_now()), publish)


def announce(
    settings: Settings, storage: Storage, before: DeploymentState | None, after: DeploymentState, channel: str | None
) -> None:
    """The Slack message of a change made outside the stream worker (a person, the retrain DAG), through the
    alert outbox: a Slack outage leaves it queued for the next delivery, and the change stands."""
    outbox.queue_alert(storage, deployment_alert(before or after, after, channel))
    try:
        outbox.deliver_pending_alerts(settings, storage)
    except AlertDeliveryError as exc:  # the change is made: a retry must not make it twice; the alert waits
        log.warning("the deployment change is made; its Slack message stays queued for the next delivery: %s", exc)
