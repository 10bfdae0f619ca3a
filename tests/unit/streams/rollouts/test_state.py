from __future__ import annotations

from datetime import UTC, datetime

import pytest

from driftline.schemas.config import DeploymentSettings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts import store as rollout_store

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def test_blue_green_switch_and_rollback(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    with pytest.raises(rollout.DeployError, match="has no stored version 'v1'; stored: none"):
        rollout_store.switch(storage, "m", "v1", reason="x", signing_key=None)
    model_store.save_model(storage, {"w": 1}, name="m", version="v1")
    model_store.save_model(storage, {"w": 2}, name="m", version="v2")
    rollout_store.switch(storage, "m", "v1", reason="initial", signing_key=None)
    with pytest.raises(rollout.DeployError, match="no previous version"):
        rollout_store.rollback(storage, "m")
    state = rollout_store.switch(storage, "m", "v2", reason="retrained", signing_key=None)
    assert (state.serving, state.previous) == ("v2", "v1")
    back = rollout_store.rollback(storage, "m")
    assert (back.serving, back.previous) == ("v1", "v2")
    stored = model_store.read_deployment_state(storage, "m")
    assert stored == back
    assert [(h.serving, h.reason) for h in stored.history] == [
        ("v1", "initial"),
        ("v2", "retrained"),
        ("v1", "rollback from v2"),
    ]


def test_the_history_is_bounded_and_redeploying_what_serves_keeps_the_rollback_target(tmp_path):
    state = rollout.initial("m", "v1", reason="0", at=T0)
    for i in range(rollout.HISTORY_KEPT + 5):
        state = rollout.begin(state, "m", f"v{i % 2 + 2}", DeploymentSettings(), reason=str(i + 1), at=T0)
    assert len(state.history) == rollout.HISTORY_KEPT and state.history[-1].reason == str(rollout.HISTORY_KEPT + 5)
    assert state.revision == rollout.HISTORY_KEPT + 6
    storage = Storage.from_url(str(tmp_path))
    for version in ("v1", "v2"):
        model_store.save_model(storage, {"w": version}, name="m", version=version)
    rollout_store.switch(storage, "m", "v1", reason="initial", signing_key=None)
    rollout_store.switch(storage, "m", "v2", reason="retrained", signing_key=None)
    same = rollout_store.switch(storage, "m", "v2", reason="again", signing_key=None)
    assert (same.serving, same.previous, same.revision) == ("v2", "v1", 3)


def test_a_change_made_on_an_old_revision_is_refused(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    first = rollout_store.save(storage, rollout.initial("m", "v1", reason="initial", at=T0))
    rollout_store.save(storage, rollout.begin(first, "m", "v2", DeploymentSettings(), reason="a", at=T0))
    with pytest.raises(rollout.DeployError, match="changed meanwhile"):
        rollout_store.save(storage, rollout.begin(first, "m", "v3", DeploymentSettings(), reason="b", at=T0))
