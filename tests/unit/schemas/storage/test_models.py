from __future__ import annotations

import hashlib
import pickle

import pytest

from driftline.schemas.storage import Storage, StorageError, layout
from driftline.schemas.storage import models as model_store


def test_a_stored_version_records_its_digest_and_loads_back(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    record = model_store.save_model(storage, {"w": [1, 2]}, name="m", version="v1", reason="initial")
    assert record.sha256 == hashlib.sha256(pickle.dumps({"w": [1, 2]})).hexdigest()
    assert model_store.read_model_version(storage, "m", "v1") == record
    assert model_store.load_model(storage, "m", "v1") == {"w": [1, 2]}


def test_a_changed_artifact_is_refused_before_it_is_unpickled(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    record = model_store.save_model(storage, {"w": 1}, name="m", version="v1")
    storage.write_bytes(layout.model_artifact("m", "v1", "model.pkl"), pickle.dumps({"w": 666}))
    with pytest.raises(model_store.ArtifactIntegrityError) as error:
        model_store.load_model(storage, "m", "v1")
    assert f"but {record.sha256} was recorded" in str(error.value) and "model 'm' version 'v1'" in str(error.value)


def test_a_version_without_its_record_is_not_a_version(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    storage.write_bytes(layout.model_artifact("m", "v1", "model.pkl"), pickle.dumps(1))
    assert model_store.stored_versions(storage, "m") == []
    with pytest.raises(StorageError, match="model 'm' has no stored version 'v1'"):
        model_store.load_model(storage, "m", "v1")


def test_version_numbers_sort_numerically(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    for version in ("v2", "v10", "v9"):
        model_store.save_model(storage, {}, name="m", version=version)
    assert model_store.stored_versions(storage, "m") == ["v2", "v9", "v10"]
    assert model_store.next_version(storage, "m") == "v11"


def test_the_reference_profile_is_reused_only_for_the_same_reference(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    assert model_store.read_reference_profile(storage, "m", "a.parquet") is None
    model_store.write_reference_profile(storage, "m", "a.parquet", b"profile-a")
    assert model_store.read_reference_profile(storage, "m", "a.parquet") == b"profile-a"
    assert model_store.read_reference_profile(storage, "m", "b.parquet") is None
