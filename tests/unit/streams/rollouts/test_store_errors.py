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
        rollout_store.switch(storage, model, "v1", reason="initial", signing_key=None)
    with pytest.raises(rollout.DeployError) as typo:
        rollout_store.act(storage, "churm", "pause", reason="r")
    assert str(typo.value) == (
        f"model 'churm' has no deployment state in {tmp_path / 'store' / 'models'}; models with one there: churn, "
        "fraud; start a rollout first"
    )


class Unloadable:
    """Pickles fine; unpickling raises, as a model whose code changed underneath it would."""

    def __reduce__(self):
        return (int, ("not a number",))


def test_a_version_a_router_would_refuse_is_refused_before_any_state_changes(tmp_path):
    from driftline.schemas.storage import layout
    from driftline.streams.rollouts.state import DeploymentSettings

    storage = Storage.from_url(str(tmp_path / "store"))
    key = "k" * 32
    model_store.save_model(storage, {"answers": 1}, name="churn", version="v1", signing_key=key)
    first = rollout_store.switch(storage, "churn", "v1", reason="initial", signing_key=key)
    model_store.save_model(storage, {"answers": 2}, name="churn", version="v2")  # stored without the key
    model_store.save_model(storage, {"answers": 3}, name="churn", version="v3", signing_key=key)
    record = model_store.read_model_version(storage, "churn", "v3")
    storage.write_bytes(layout.model_artifact("churn", "v3", record.artifact), b"planted")  # changed after storing
    model_store.save_model(storage, Unloadable(), name="churn", version="v4", signing_key=key)
    canary = DeploymentSettings(strategy="canary")

    refusals = {}
    for version in ("v2", "v3", "v4", "v9"):
        with pytest.raises(rollout.DeployError) as refused:
            rollout_store.start_rollout(storage, "churn", version, canary, reason="r", signing_key=key)
        refusals[version] = str(refused.value)
    assert refusals["v2"].startswith("refusing to load model 'churn' version 'v2': its record ")
    assert refusals["v2"].endswith("has no signature for DRIFTLINE_MODEL_SIGNING_KEY; it was not stored by a "
                                   "driftline holding that key. Store the version again with the key set. Nothing "
                                   "was rolled out.")  # fmt: skip
    assert "has SHA-256 " in refusals["v3"] and "the artifact was changed or corrupted" in refusals["v3"]
    assert refusals["v4"] == (
        "refusing to roll out model 'churn' version 'v4': loading it failed (ValueError: invalid literal for int() "
        "with base 10: 'not a number'); a router could not serve it. Nothing was rolled out."
    )
    assert refusals["v9"] == "model 'churn' has no stored version 'v9'; stored: ['v1', 'v2', 'v3', 'v4']"
    assert model_store.read_deployment_state(storage, "churn") == first  # untouched by any of them
