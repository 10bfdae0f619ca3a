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


class Payload:
    """What an attacker with write access to the bucket would store: code that runs when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def replace_version_as_an_attacker(storage: Storage, marker: str) -> None:
    """Overwrite the artifact and rewrite its record with the new digest: the digest alone cannot catch this."""
    data = pickle.dumps(Payload(marker))
    storage.write_bytes(layout.model_artifact("m", "v1", "model.pkl"), data)
    record = model_store.read_model_version(storage, "m", "v1")
    forged = record.model_copy(update={"sha256": hashlib.sha256(data).hexdigest(), "signature": None})
    storage.write_bytes(layout.model_version_metadata("m", "v1"), forged.to_json())


def test_with_a_signing_key_a_version_rewritten_in_the_bucket_is_refused_before_it_runs(tmp_path):
    storage = Storage.from_url(str(tmp_path / "store"))
    record = model_store.save_model(storage, {"w": 1}, name="m", version="v1", signing_key="k" * 32)
    assert record.signature is not None and model_store.load_model(storage, "m", "v1", signing_key="k" * 32) == {"w": 1}
    with pytest.raises(model_store.ArtifactIntegrityError, match="signature that does not match"):
        model_store.load_model(storage, "m", "v1", signing_key="another key")

    marker = tmp_path / "pwned"
    replace_version_as_an_attacker(storage, str(marker))
    with pytest.raises(model_store.ArtifactIntegrityError, match="has no signature for DRIFTLINE_MODEL_SIGNING_KEY"):
        model_store.load_model(storage, "m", "v1", signing_key="k" * 32)
    assert not marker.exists()  # refused before a byte was unpickled
    model_store.load_model(storage, "m", "v1")  # without a key, the digest alone is what the bucket says it is
    assert marker.exists()  # ... which is why the trust boundary in docs/operations.md asks for the key


def test_a_scikit_learn_model_is_stored_without_pickle_and_predicts_the_same(tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    storage = Storage.from_url(str(tmp_path))
    record = model_store.save_model(storage, model, name="m", version="v1")
    assert (record.artifact_format, record.artifact) == ("skops", "model.skops")
    data = storage.read_bytes(layout.model_artifact("m", "v1", "model.skops"))
    assert data[:2] == b"PK"  # a skops zip, not a pickle stream
    loaded = model_store.load_model(storage, "m", "v1")
    assert (loaded.predict_proba(features) == model.predict_proba(features)).all()


def test_a_skops_artifact_holding_an_untrusted_type_is_refused_by_name(tmp_path):
    import skops.io

    from driftline.schemas.records import ModelVersion

    storage = Storage.from_url(str(tmp_path))
    data = skops.io.dumps({"model": Payload(str(tmp_path / "pwned"))})
    storage.write_bytes(layout.model_artifact("m", "v1", "model.skops"), data)
    record = ModelVersion(
        model="m",
        version="v1",
        artifact="model.skops",
        artifact_format="skops",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    storage.write_bytes(layout.model_version_metadata("m", "v1"), record.to_json())
    with pytest.raises(model_store.ArtifactIntegrityError, match=r"holds types skops does not trust .*Payload"):
        model_store.load_model(storage, "m", "v1")
    assert not (tmp_path / "pwned").exists()


def test_a_refused_artifact_is_alerted_once(tmp_path):
    from driftline.dags.tasks.retrain import refuse_artifact
    from driftline.schemas.records import Alert
    from driftline.schemas.settings import Settings
    from driftline.schemas.storage import state

    settings = Settings(home=str(tmp_path))
    storage = Storage.from_settings(settings)
    error = model_store.ArtifactIntegrityError("refusing to load model 'm' version 'v1': it was changed")
    refuse_artifact(settings, storage, "m", error)
    refuse_artifact(settings, storage, "m", error)
    [sent] = state.sent_alert_ids(storage)
    alert = storage.read_record(Alert, f"alerts/sent/{sent}.json")
    assert alert.kind == "artifact" and alert.text is not None and "it was changed" in alert.text


def test_a_signed_record_copied_into_another_versions_place_is_refused(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    model_store.save_model(storage, {"w": "old"}, name="m", version="v1", signing_key="k")
    for name in ("model.pkl",):
        storage.write_bytes(
            layout.model_artifact("m", "v7", name), storage.read_bytes(layout.model_artifact("m", "v1", name))
        )
    storage.write_bytes(
        layout.model_version_metadata("m", "v7"), storage.read_bytes(layout.model_version_metadata("m", "v1"))
    )
    with pytest.raises(model_store.ArtifactIntegrityError, match="is that of model 'm' version 'v1'"):
        model_store.load_model(storage, "m", "v7", signing_key="k")


def clip(values):
    return values


def test_a_scikit_learn_pipeline_with_the_users_own_function_is_pickled_not_stored_unloadable(tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(100, 2)), rng.integers(0, 2, 100)
    model = make_pipeline(FunctionTransformer(clip), LogisticRegression()).fit(features, labels)
    storage = Storage.from_url(str(tmp_path))
    record = model_store.save_model(storage, model, name="m", version="v1", signing_key="k")
    assert record.artifact_format == "pickle"
    loaded = model_store.load_model(storage, "m", "v1", signing_key="k")
    assert (loaded.predict(features) == model.predict(features)).all()
