"""Model versions (artifact + digest), deployment state and reference profiles, as stored beside each model.

An artifact is written first, then its :class:`ModelVersion` record holding the
artifact's SHA-256; :func:`load_model` reads the bytes, checks the digest and
only then unpickles, so an artifact changed after it was stored is refused.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

from driftline.schemas.records import DeploymentState, ModelVersion, RecordError, ReferenceSource
from driftline.schemas.storage import layout
from driftline.schemas.storage.base import Storage, StorageError

ARTIFACT_NAME = "model.pkl"


class ArtifactIntegrityError(StorageError):
    """A stored artifact whose bytes do not match the digest recorded when it was stored."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(storage: Storage, model: Any, *, name: str, version: str, **details: Any) -> ModelVersion:
    """Store ``model`` as ``version`` of model ``name``; ``details`` are the other :class:`ModelVersion` fields.

    Returns the stored record, which holds the artifact's SHA-256.
    """
    data = pickle.dumps(model)
    record = ModelVersion(model=name, version=version, artifact=ARTIFACT_NAME, sha256=sha256_hex(data), **details)
    storage.write_bytes(layout.model_artifact(name, version, record.artifact), data)
    storage.write_bytes(layout.model_version_metadata(name, version), record.to_json())
    return record


def read_model_version(storage: Storage, model: str, version: str) -> ModelVersion:
    path = layout.model_version_metadata(model, version)
    if not storage.exists(path):
        raise StorageError(f"model {model!r} has no stored version {version!r} ({storage.url(path)} is missing)")
    return storage.read_record(ModelVersion, path)


def load_model(storage: Storage, model: str, version: str) -> Any:
    """Unpickle a stored version after checking its artifact against the recorded SHA-256."""
    record = read_model_version(storage, model, version)
    path = layout.model_artifact(model, version, record.artifact)
    data = storage.read_bytes(path)
    actual = sha256_hex(data)
    if actual != record.sha256:
        raise ArtifactIntegrityError(
            f"refusing to load model {model!r} version {version!r}: {storage.url(path)} has SHA-256 {actual}, "
            f"but {record.sha256} was recorded when it was stored; the artifact was changed or corrupted. "
            "Restore it or store the version again."
        )
    return pickle.loads(data)  # noqa: S301 - the digest above proves these are the bytes driftline stored


def stored_versions(storage: Storage, model: str) -> list[str]:
    """Versions with a metadata record, oldest first (``v1``, ``v2``, ... by number)."""
    folder = layout.model_versions_folder(model)
    versions = [path.rsplit("/", 1)[-1] for path in storage.list(folder)]
    return sorted((v for v in versions if storage.exists(layout.model_version_metadata(model, v))), key=_version_key)


def _version_key(version: str) -> tuple[int, str]:
    digits = version.lstrip("v")
    return (int(digits), version) if digits.isdigit() else (-1, version)


def next_version(storage: Storage, model: str) -> str:
    numbers = [_version_key(v)[0] for v in stored_versions(storage, model)]
    return f"v{max(numbers, default=0) + 1}"


def read_deployment_state(storage: Storage, model: str) -> DeploymentState | None:
    path = layout.deployment_state(model)
    if not storage.exists(path):
        return None
    return storage.read_record(DeploymentState, path)


def write_deployment_state(storage: Storage, state: DeploymentState) -> str:
    return storage.write_bytes(layout.deployment_state(state.model), state.to_json())


def read_reference_profile(storage: Storage, model: str, reference: str) -> bytes | None:
    """The stored profile bytes if they were built from ``reference``; ``None`` when missing or stale."""
    profile_path, source_path = layout.reference_profile(model), layout.reference_profile_source(model)
    if not (storage.exists(profile_path) and storage.exists(source_path)):
        return None
    try:
        source = ReferenceSource.parse(storage.read_bytes(source_path))
    except RecordError:
        return None  # written by another release: rebuild
    return storage.read_bytes(profile_path) if source.reference == reference else None


def write_reference_profile(storage: Storage, model: str, reference: str, profile: bytes) -> str:
    path = storage.write_bytes(layout.reference_profile(model), profile)
    storage.write_bytes(layout.reference_profile_source(model), ReferenceSource(reference=reference).to_json())
    return path
