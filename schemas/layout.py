"""Storage layout: every path driftline reads or writes, relative to the storage URL.

Paths are Hive-style so that pyarrow datasets discover the partitions::

    {root}/predictions/model=M/version=V/date=YYYY-MM-DD/hour=HH/{topic}+{partition}+{first}+{last}.parquet
    {root}/reports/model=M/drift-{window_end}.json
    {root}/models/M/routing.json            # which version serves
    {root}/models/M/versions/V/model.pkl    # + metadata.json
"""

from __future__ import annotations

from datetime import datetime


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def event_partition(kind: str, model: str, model_version: str, hour: datetime) -> str:
    return f"{kind}/model={model}/version={model_version}/date={hour:%Y-%m-%d}/hour={hour:%H}"


def data_file_name(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """Named by source partition and offset range, so rewriting a range replaces the file."""
    return f"{topic}+{partition}+{first_offset:020d}+{last_offset:020d}.parquet"


def ingest_ledger(topic: str, partition: int, first_offset: int) -> str:
    return f"_ingest/{topic}/{partition}/{first_offset:020d}.json"


def drift_report(model: str, window_end: datetime) -> str:
    return f"reports/model={model}/drift-{window_end:%Y%m%dT%H%M%SZ}.json"


def routing_manifest(model: str) -> str:
    return f"models/{model}/routing.json"


def model_version_dir(model: str, version: str) -> str:
    return f"models/{model}/versions/{version}"


def reference_profile(model: str) -> str:
    """Built once from the training data, stored next to the model."""
    return f"models/{model}/reference_profile.npz"


def retrain_request(model: str) -> str:
    return f"retrain/requests/{model}.json"


def alert_outbox(state: str, alert_id: str) -> str:
    return f"alerts/{state}/{alert_id}.json"
