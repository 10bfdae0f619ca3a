from __future__ import annotations

import pytest

from driftline.dags.tasks import deploy
from driftline.dags.tasks.retrain import _is_holdout, store_model
from driftline.schemas.storage import Storage


def test_blue_green_switch_and_rollback(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    with pytest.raises(deploy.DeployError, match="has no stored version 'v1'; stored: none"):
        deploy.switch(storage, "m", "v1", reason="x")
    store_model(storage, "m", "v1", {"w": 1}, {})
    store_model(storage, "m", "v2", {"w": 2}, {})
    assert deploy.next_version(storage, "m") == "v3"
    deploy.switch(storage, "m", "v1", reason="initial")
    with pytest.raises(deploy.DeployError, match="no previous version"):
        deploy.rollback(storage, "m")
    manifest = deploy.switch(storage, "m", "v2", reason="retrained")
    assert (manifest["serving"], manifest["previous"]) == ("v2", "v1")
    back = deploy.rollback(storage, "m")
    assert (back["serving"], back["previous"]) == ("v1", "v2")
    assert [h["serving"] for h in deploy.read_manifest(storage, "m")["history"]] == ["v1", "v2", "v1"]


def test_holdout_split_is_deterministic_and_about_a_fifth():
    ids = [f"req-{i}" for i in range(10_000)]
    first = [_is_holdout(r) for r in ids]
    assert first == [_is_holdout(r) for r in ids]
    assert 0.18 < sum(first) / len(ids) < 0.23


def test_version_numbers_sort_numerically(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    for version in ("v2", "v10", "v9"):
        store_model(storage, "m", version, {}, {})
    assert deploy.stored_versions(storage, "m") == ["v2", "v9", "v10"]
    assert deploy.next_version(storage, "m") == "v11"
