from __future__ import annotations

from datetime import UTC, datetime

import pytest

from driftline.dags.tasks import deploy
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def test_blue_green_switch_and_rollback(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    with pytest.raises(deploy.DeployError, match="has no stored version 'v1'; stored: none"):
        deploy.switch(storage, "m", "v1", reason="x")
    model_store.save_model(storage, {"w": 1}, name="m", version="v1")
    model_store.save_model(storage, {"w": 2}, name="m", version="v2")
    deploy.switch(storage, "m", "v1", reason="initial")
    with pytest.raises(deploy.DeployError, match="no previous version"):
        deploy.rollback(storage, "m")
    state = deploy.switch(storage, "m", "v2", reason="retrained")
    assert (state.serving, state.previous) == ("v2", "v1")
    back = deploy.rollback(storage, "m")
    assert (back.serving, back.previous) == ("v1", "v2")
    stored = model_store.read_deployment_state(storage, "m")
    assert stored == back
    assert [(h.serving, h.reason) for h in stored.history] == [
        ("v1", "initial"),
        ("v2", "retrained"),
        ("v1", "rollback from v2"),
    ]


def test_next_state_is_pure_and_keeps_a_bounded_history():
    state = None
    for i in range(deploy.HISTORY_KEPT + 5):
        state = deploy.next_state(state, "m", f"v{i % 2 + 1}", reason=str(i), at=T0)
    assert len(state.history) == deploy.HISTORY_KEPT and state.history[-1].reason == str(deploy.HISTORY_KEPT + 4)
    same = deploy.next_state(state, "m", state.serving, reason="again", at=T0)
    assert same.previous == state.previous  # re-deploying what serves keeps the rollback target
