"""The one owner of driftline's storage layout: every read and write of events Parquet, reports, model
artifacts, deployment state, requests, the alert outbox and ingest ledgers goes through this package.

* :mod:`.layout` — the paths (pure; used only inside this package);
* :mod:`.base` — :class:`Storage`: a filesystem and its root, atomic writes, root confinement;
* :mod:`.events` — event Parquet files: write by offset range, list and read by model and time range;
* :mod:`.models` — model versions (artifact + SHA-256 checked on load), deployment state, reference profiles;
* :mod:`.state` — drift reports, retrain requests, the alert outbox and ingest ledgers.
"""

from __future__ import annotations

from driftline.schemas.storage.base import OutsideRootError, Storage, StorageError
from driftline.schemas.storage.layout import LayoutError

__all__ = ["LayoutError", "OutsideRootError", "Storage", "StorageError"]
