"""The routing manifest: which model version serves, and the one to roll back to.

Blue/green: the new version takes all traffic in one atomic manifest write, the
old one stays stored and named as ``previous`` so a rollback is one more write.
Serving nodes read ``models/<model>/routing.json`` (see :func:`read_manifest`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from driftline.schemas import layout
from driftline.schemas.storage import Storage


class DeployError(RuntimeError):
    pass


def read_manifest(storage: Storage, model: str) -> dict[str, Any] | None:
    path = layout.routing_manifest(model)
    return storage.read_json(path) if storage.exists(path) else None


def stored_versions(storage: Storage, model: str) -> list[str]:
    folder = f"models/{model}/versions"
    return sorted((p.rsplit("/", 1)[-1] for p in storage.list(folder)), key=_version_number)


def _version_number(version: str) -> tuple[int, str]:
    digits = version.lstrip("v")
    return (int(digits), version) if digits.isdigit() else (-1, version)


def next_version(storage: Storage, model: str) -> str:
    versions = [_version_number(v)[0] for v in stored_versions(storage, model)]
    return f"v{max(versions, default=0) + 1}"


def switch(storage: Storage, model: str, version: str, *, reason: str, strategy: str = "blue_green") -> dict[str, Any]:
    """Route all traffic to ``version`` (which must be stored); the serving one becomes ``previous``."""
    if version not in stored_versions(storage, model):
        raise DeployError(
            f"model {model!r} has no stored version {version!r}; stored: {stored_versions(storage, model) or 'none'}"
        )
    current = read_manifest(storage, model)
    now = datetime.now(UTC).isoformat()
    history = list(current["history"]) if current else []
    history.append({"serving": version, "at": now, "reason": reason})
    manifest = {
        "model": model,
        "serving": version,
        "previous": current["serving"]
        if current and current["serving"] != version
        else (current or {}).get("previous"),
        "strategy": strategy,
        "updated_at": now,
        "history": history[-50:],
    }
    storage.write_json(layout.routing_manifest(model), manifest)
    return manifest


def rollback(storage: Storage, model: str) -> dict[str, Any]:
    """Route traffic back to the previous version."""
    current = read_manifest(storage, model)
    if current is None:
        raise DeployError(f"model {model!r} has no routing manifest yet; nothing to roll back")
    if not current.get("previous"):
        raise DeployError(f"model {model!r} serves {current['serving']} with no previous version to roll back to")
    return switch(
        storage, model, current["previous"], reason=f"rollback from {current['serving']}", strategy=current["strategy"]
    )
