"""Drift reports, retrain requests, the alert outbox, ingest ledgers and the stream worker's checkpoints:
small files that carry state between runs."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from driftline.schemas.records import (
    Alert,
    IngestLedger,
    IngestProgress,
    MergerCheckpoint,
    PartitionCheckpoint,
    RetrainRequest,
    utc_now,
)
from driftline.schemas.storage import layout
from driftline.schemas.storage.base import Storage


def write_drift_report(storage: Storage, model: str, window_end: datetime, report: dict[str, Any], html: str) -> str:
    """Write the JSON report and its HTML beside it (same name, ``.html``); returns the JSON report's URL."""
    path = layout.drift_report(model, window_end)
    storage.write_json(path, report)
    storage.write_bytes(layout.drift_report_html(model, window_end), html.encode())
    return storage.url(path)


def drift_reports(storage: Storage, model: str) -> list[str]:
    """Relative paths of ``model``'s JSON drift reports, oldest window first."""
    return storage.glob(f"{layout.reports_folder(model)}/drift-*.json")


def read_drift_report(storage: Storage, relative: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(storage.read_bytes(relative))
    return report


# -- retrain requests -------------------------------------------------------------------------------
def write_retrain_request(storage: Storage, request: RetrainRequest) -> str:
    return storage.write_bytes(layout.retrain_request(request.model), request.to_json())


def request_retrain_once(storage: Storage, request: RetrainRequest) -> bool:
    """Request a retrain for the request's window unless that window already requested one (a rerun, a cleared
    run, a backfill over it); returns whether it was requested. A request without a window is always written."""
    if request.window_end is None:
        write_retrain_request(storage, request)
        return True
    made = layout.retrain_request_made(request.model, request.window_end)
    if storage.exists(made):
        return False
    write_retrain_request(storage, request)
    storage.write_bytes(made, request.to_json())  # after the request: a crash between the two asks again, once
    return True


def read_retrain_request(storage: Storage, model: str) -> RetrainRequest | None:
    path = layout.retrain_request(model)
    return storage.read_record(RetrainRequest, path) if storage.exists(path) else None


def retrain_requested(storage: Storage, model: str) -> bool:
    return storage.exists(layout.retrain_request(model))


def remove_retrain_request(storage: Storage, model: str) -> None:
    storage.remove(layout.retrain_request(model))


# -- alert outbox -------------------------------------------------------------------------------------
OccurrenceKind = Literal["quarantine", "artifact", "pipeline"]


def queue_alert(storage: Storage, alert: Alert) -> bool:
    """Put ``alert`` in the outbox unless one with its id was already sent; returns whether it was queued."""
    if storage.exists(layout.alert_outbox("sent", alert.alert_id)):
        return False
    storage.write_bytes(layout.alert_outbox("pending", alert.alert_id), alert.to_json())
    return True


def queue_occurrence_alert(
    storage: Storage,
    *,
    kind: OccurrenceKind,
    model: str,
    key: str,
    text: str,
    at: datetime | None = None,
    channel: str | None = None,
    count: int | None = None,
) -> str:
    """Queue an alert about one occurrence (a file set aside, an artifact refused, a task failed) rather than a
    window: its window is the moment ``at`` (default now), and its id is made from ``kind``, ``model`` and ``key``,
    so the same occurrence is announced once. Returns the id."""
    moment = at or utc_now()
    alert_id = f"{kind}-{model}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    queue_alert(
        storage,
        Alert(
            alert_id=alert_id,
            kind=kind,
            model=model,
            window_start=moment,
            window_end=moment,
            count=count,
            channel=channel,
            text=text,
        ),
    )
    return alert_id


def pending_alerts(storage: Storage) -> list[Alert]:
    return [storage.read_record(Alert, path) for path in storage.list(layout.alert_outbox_folder("pending"))]


def alert_sent(storage: Storage, alert_id: str) -> bool:
    return storage.exists(layout.alert_outbox("sent", alert_id))


def sent_alert_ids(storage: Storage) -> list[str]:
    return [path.rsplit("/", 1)[-1].removesuffix(".json") for path in storage.list(layout.alert_outbox_folder("sent"))]


def mark_alert_sent(storage: Storage, alert: Alert) -> None:
    """Record delivery first, then drop the pending copy: a crash in between cannot send it twice."""
    storage.write_bytes(layout.alert_outbox("sent", alert.alert_id), alert.to_json())
    storage.remove(layout.alert_outbox("pending", alert.alert_id))


# -- ingest ledgers -----------------------------------------------------------------------------------
def read_ingest_ledger(storage: Storage, topic: str, partition: int, first_offset: int) -> IngestLedger | None:
    path = layout.ingest_ledger(topic, partition, first_offset)
    return storage.read_record(IngestLedger, path) if storage.exists(path) else None


def write_ingest_ledger(storage: Storage, ledger: IngestLedger, start_offset: int) -> str:
    """Keyed by the committed offset the run started from, so the next run finds it there."""
    return storage.write_bytes(layout.ingest_ledger(ledger.topic, ledger.partition, start_offset), ledger.to_json())


def remove_ingest_ledger(storage: Storage, topic: str, partition: int, start_offset: int) -> None:
    storage.remove(layout.ingest_ledger(topic, partition, start_offset))


# -- stream worker checkpoints ------------------------------------------------------------------------
def write_ingest_progress(storage: Storage, progress: IngestProgress) -> str:
    return storage.write_bytes(layout.ingest_progress(progress.topic), progress.to_json())


def read_ingest_progress(storage: Storage, topic: str) -> IngestProgress | None:
    path = layout.ingest_progress(topic)
    return storage.read_record(IngestProgress, path) if storage.exists(path) else None


def read_partition_checkpoint(storage: Storage, group: str, topic: str, partition: int) -> PartitionCheckpoint | None:
    path = layout.partition_checkpoint(group, topic, partition)
    return storage.read_record(PartitionCheckpoint, path) if storage.exists(path) else None


def write_partition_checkpoint(storage: Storage, group: str, checkpoint: PartitionCheckpoint) -> str:
    path = layout.partition_checkpoint(group, checkpoint.topic, checkpoint.partition)
    return storage.write_bytes(path, checkpoint.to_json())


def read_merger_checkpoint(storage: Storage, group: str) -> MergerCheckpoint | None:
    path = layout.merger_checkpoint(group)
    return storage.read_record(MergerCheckpoint, path) if storage.exists(path) else None


def write_merger_checkpoint(storage: Storage, group: str, checkpoint: MergerCheckpoint) -> str:
    return storage.write_bytes(layout.merger_checkpoint(group), checkpoint.to_json())


def forget_worker_state(storage: Storage) -> int:
    """Remove every stream-worker checkpoint; returns how many. Only for a broker whose topics start again
    from offset 0 (the embedded broker's memory storage after a restart): checkpoints hold offsets."""
    files = storage.glob(f"{layout.WORKER_FOLDER}/*/*.json")
    for relative in files:
        storage.remove(relative)
    return len(files)
