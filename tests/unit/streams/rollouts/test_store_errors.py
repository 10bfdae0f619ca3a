"""A model with no deployment state: the error says where driftline looked and which models it found there."""

from __future__ import annotations

import pytest

from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts import store as rollout_store


def test_a_mistyped_model_is_told_where_driftline_looked_and_what_it_found(tmp_path):
    storage = Storage.from_url(str(tmp_path / "store"))
    with pytest.raises(rollout.DeployError) as empty:
        rollout_store.rollback(storage, "churm")
    assert str(empty.value) == (
        f"model 'churm' has no deployment state in {tmp_path / 'store' / 'models'}; no model has one there yet (the "
        "retrain DAG or 'driftline rollout start MODEL VERSION' makes one); nothing to roll back"
    )
    for model in ("churn", "fraud"):
        model_store.save_model(storage, {"answers": 1}, name=model, version="v1")
        rollout_store.switch(storage, model, "v1", reason="initial")
    with pytest.raises(rollout.DeployError) as typo:
        rollout_store.act(storage, "churm", "pause", reason="r")
    assert str(typo.value) == (
        f"model 'churm' has no deployment state in {tmp_path / 'store' / 'models'}; models with one there: churn, "
        "fraud; start a rollout first"
    )
