"""Deployment state: which model version serves, and the one to roll back to.

Blue/green: the new version takes all traffic in one atomic write of the
model's :class:`DeploymentState`, the old one stays stored and named as
``previous`` so a rollback is one more write. :func:`next_state` is the pure
decision; :func:`switch` and :func:`rollback` read and write it.
"""

from __future__ import annotations

from datetime import datetime

from driftline.schemas.errors import UserError
from driftline.schemas.records import DeploymentEvent, DeploymentState, utc_now
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store

HISTORY_KEPT = 50


class DeployError(UserError):
    pass


def next_state(
    current: DeploymentState | None, model: str, version: str, *, reason: str, at: datetime
) -> DeploymentState:
    """The state after routing all traffic of ``model`` to ``version``; the serving one becomes ``previous``."""
    if current is None:
        previous = None
    elif current.serving != version:
        previous = current.serving
    else:
        previous = current.previous
    event = DeploymentEvent(model=model, serving=version, previous=previous, reason=reason, at=at)
    history = [*(current.history if current else []), event][-HISTORY_KEPT:]
    return DeploymentState(model=model, serving=version, previous=previous, updated_at=at, history=history)


def switch(storage: Storage, model: str, version: str, *, reason: str) -> DeploymentState:
    """Route all traffic to ``version`` (which must be stored)."""
    stored = model_store.stored_versions(storage, model)
    if version not in stored:
        raise DeployError(f"model {model!r} has no stored version {version!r}; stored: {stored or 'none'}")
    state = next_state(model_store.read_deployment_state(storage, model), model, version, reason=reason, at=utc_now())
    model_store.write_deployment_state(storage, state)
    return state


def rollback(storage: Storage, model: str) -> DeploymentState:
    """Route traffic back to the previous version."""
    current = model_store.read_deployment_state(storage, model)
    if current is None:
        raise DeployError(f"model {model!r} has no deployment state yet; nothing to roll back")
    if not current.previous:
        raise DeployError(f"model {model!r} serves {current.serving} with no previous version to roll back to")
    return switch(storage, model, current.previous, reason=f"rollback from {current.serving}")
