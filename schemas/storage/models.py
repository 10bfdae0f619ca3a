"""Model versions (artifact + digest), deployment state and reference profiles, as stored beside each model.

An artifact is written first, then its :class:`ModelVersion` record holding the
artifact's SHA-256; :func:`load_model` reads the bytes, checks the digest and
only then deserializes, so an artifact changed after it was stored is refused.

The trust boundary (docs/operations.md, "Model artifacts"):

* scikit-learn models are stored with skops when it is installed (``driftline[sklearn]``): loading one runs
  no code from the artifact, and a type outside skops' trusted set is refused by name;
* other models are pickled. A pickle runs code when loaded, and the digest beside it is in the same bucket:
  anyone who can write both can replace both. Set ``DRIFTLINE_MODEL_SIGNING_KEY`` (kept outside the bucket) and
  every stored version is signed with it; a version without a valid signature is then refused before its
  bytes are deserialized.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import pickle
from datetime import datetime
from typing import Any, Literal

from driftline.schemas.records import DeploymentState, ModelVersion, RecordError, ReferenceSource
from driftline.schemas.storage import layout
from driftline.schemas.storage.base import Storage, StorageError

ArtifactFormat = Literal["pickle", "skops"]
ARTIFACT_NAMES: dict[str, str] = {"pickle": "model.pkl", "skops": "model.skops"}
ARTIFACT_NAME = ARTIFACT_NAMES["pickle"]


class ArtifactIntegrityError(StorageError):
    """A stored artifact that must not be loaded: its bytes do not match the recorded digest, its record is not
    signed with the configured key, or it holds types the safe format does not trust."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(key: str, record: ModelVersion) -> str:
    """HMAC-SHA256 over what identifies the artifact: model, version, format and digest."""
    message = f"{record.model}\n{record.version}\n{record.artifact_format}\n{record.sha256}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def skops_available() -> bool:
    return importlib.util.find_spec("skops") is not None


def choose_format(model: Any) -> ArtifactFormat:
    """skops for scikit-learn models when skops is installed; pickle otherwise."""
    is_sklearn = type(model).__module__.split(".", 1)[0] == "sklearn"
    return "skops" if is_sklearn and skops_available() else "pickle"


def _dump(model: Any, artifact_format: ArtifactFormat) -> bytes:
    if artifact_format == "skops":
        import skops.io

        data: bytes = skops.io.dumps(model)
        return data
    return pickle.dumps(model)


def _untrusted(data: bytes) -> list[str]:
    import skops.io

    found: list[str] = skops.io.get_untrusted_types(data=data)
    return found


def save_model(
    storage: Storage,
    model: Any,
    *,
    name: str,
    version: str,
    artifact_format: ArtifactFormat | None = None,
    signing_key: str | None = None,
    **details: Any,
) -> ModelVersion:
    """Store ``model`` as ``version`` of model ``name``; ``details`` are the other :class:`ModelVersion` fields.

    ``artifact_format`` defaults to :func:`choose_format`. Returns the stored record, which holds the artifact's
    SHA-256 and, with a ``signing_key``, its signature.
    """
    chosen: ArtifactFormat = artifact_format or choose_format(model)
    data = _dump(model, chosen)
    if chosen == "skops" and artifact_format is None and _untrusted(data):
        # A pipeline with the user's own functions or classes: skops would refuse to load it again, so it is
        # pickled (protect it with DRIFTLINE_MODEL_SIGNING_KEY).
        chosen, data = "pickle", _dump(model, "pickle")
    record = ModelVersion(
        model=name,
        version=version,
        artifact=ARTIFACT_NAMES[chosen],
        artifact_format=chosen,
        sha256=sha256_hex(data),
        **details,
    )
    if signing_key:
        record = record.model_copy(update={"signature": sign(signing_key, record)})
    storage.write_bytes(layout.model_artifact(name, version, record.artifact), data)
    storage.write_bytes(layout.model_version_metadata(name, version), record.to_json())
    return record


def read_model_version(storage: Storage, model: str, version: str) -> ModelVersion:
    path = layout.model_version_metadata(model, version)
    if not storage.exists(path):
        raise StorageError(f"model {model!r} has no stored version {version!r} ({storage.url(path)} is missing)")
    return storage.read_record(ModelVersion, path)


def serving_version(storage: Storage, model: str) -> ModelVersion | None:
    """The record of the version serving ``model``; none when nothing serves it or its record is missing."""
    state = read_deployment_state(storage, model)
    if state is None:
        return None
    try:
        return read_model_version(storage, model, state.serving)
    except StorageError:  # a version stored by hand without its record
        return None


def load_model(storage: Storage, model: str, version: str, *, signing_key: str | None = None) -> Any:
    """Deserialize a stored version after checking its signature (with a ``signing_key``) and its artifact
    against the recorded SHA-256; :class:`ArtifactIntegrityError` names what failed and what would fix it."""
    record = read_model_version(storage, model, version)
    refused = f"refusing to load model {model!r} version {version!r}"
    if (record.model, record.version) != (model, version):
        raise ArtifactIntegrityError(
            f"{refused}: its record {storage.url(layout.model_version_metadata(model, version))} is that of model "
            f"{record.model!r} version {record.version!r}; a record was copied into another version's place. "
            "Store the version again."
        )
    if signing_key and not (record.signature and hmac.compare_digest(record.signature, sign(signing_key, record))):
        state = "has no signature" if not record.signature else "has a signature that does not match"
        raise ArtifactIntegrityError(
            f"{refused}: its record {storage.url(layout.model_version_metadata(model, version))} {state} for "
            "DRIFTLINE_MODEL_SIGNING_KEY; it was not stored by a driftline holding that key. Store the version "
            "again with the key set."
        )
    path = layout.model_artifact(model, version, record.artifact)
    data = storage.read_bytes(path)
    actual = sha256_hex(data)
    if actual != record.sha256:
        raise ArtifactIntegrityError(
            f"{refused}: {storage.url(path)} has SHA-256 {actual}, "
            f"but {record.sha256} was recorded when it was stored; the artifact was changed or corrupted. "
            "Restore it or store the version again."
        )
    if record.artifact_format == "skops":
        import skops.io

        untrusted = _untrusted(data)
        if untrusted:
            raise ArtifactIntegrityError(
                f"{refused}: {storage.url(path)} holds types skops does not trust ({', '.join(untrusted[:5])}); "
                "store models built from scikit-learn and numpy types only, or as pickle with a signing key"
            )
        return skops.io.loads(data)
    return pickle.loads(data)  # noqa: S301 - the digest (and signature, with a key) prove driftline stored these


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


def deployed_models(storage: Storage) -> list[str]:
    """The models that have a deployment state in ``storage``, by name."""
    models = (path.rsplit("/", 1)[-1] for path in storage.list("models"))
    return sorted(model for model in models if storage.exists(layout.deployment_state(model)))


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


def reference_key(profile: bytes) -> str:
    """A short name of a stored reference profile: derived profiles (windows, segments) are stored under it, so a
    new reference never meets profiles binned on the old one."""
    return sha256_hex(profile)[:16]


def read_window_profile(storage: Storage, model: str, key: str, window_end: datetime) -> bytes | None:
    path = layout.window_profile(model, key, window_end)
    return storage.read_bytes(path) if storage.exists(path) else None


def write_window_profile(storage: Storage, model: str, key: str, window_end: datetime, profile: bytes) -> str:
    return storage.write_bytes(layout.window_profile(model, key, window_end), profile)


def _segment_path(model: str, key: str, segment: tuple[str, str]) -> str:
    column, value = segment
    return layout.segment_reference_profile(
        model, key, sha256_hex(column.encode())[:16], sha256_hex(value.encode())[:16]
    )


def read_segment_profile(storage: Storage, model: str, key: str, segment: tuple[str, str]) -> bytes | None:
    """The stored reference profile of the rows whose feature ``segment[0]`` has the value ``segment[1]``."""
    path = _segment_path(model, key, segment)
    return storage.read_bytes(path) if storage.exists(path) else None


def write_segment_profile(storage: Storage, model: str, key: str, segment: tuple[str, str], profile: bytes) -> str:
    return storage.write_bytes(_segment_path(model, key, segment), profile)
