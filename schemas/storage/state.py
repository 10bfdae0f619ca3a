"""Drift reports, retrain requests, the alert outbox, ingest ledgers and the stream worker's checkpoints:
small files that carry state between runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

from driftline.schemas.records import Alert, IngestLedger, IngestProgress, RetrainRequest, utc_now
from driftline.schemas.reports import DriftReport
from driftline.schemas.storage import layout
from driftline.schemas.storage.base import Storage
from driftline.schemas.worker_state import MergerCheckpoint, PartitionCheckpoint


def drift_report_url(storage: Storage, model: str, window_end: datetime) -> str:
    """Where the JSON report of ``model``'s window ending at ``window_end`` is (or will be) written."""
    return storage.url(layout.drift_report(model, window_end))


def write_drift_report(storage: Storage, report: DriftReport, html: str) -> str:
    """Write the JSON report and its HTML beside it (same name, ``.html``); returns the JSON report's URL."""
    path = layout.drift_report(report.model, report.window_end)
    storage.write_bytes(path, report.to_json())
    storage.write_bytes(layout.drift_report_html(report.model, report.window_end), html.encode())
    return storage.url(path)


def write_report_index(storage: Storage, model: str | None, html: str) -> str:
    """Write the index page of ``model``'s reports (or, for ``None``, of all models); returns its URL."""
    return storage.url(storage.write_bytes(layout.report_index(model), html.encode()))


def reported_models(storage: Storage) -> list[str]:
    """Models with a report index, by name."""
    return sorted(path.split("/model=", 1)[1].split("/", 1)[0] for path in storage.glob(layout.reported_models_glob()))


def drift_reports(storage: Storage, model: str) -> list[str]:
    """Relative paths of ``model``'s JSON drift reports, oldest window first."""
    return storage.glob(f"{layout.reports_folder(model)}/drift-*.json")


def read_drift_report(storage: Storage, relative: str) -> DriftReport:
    """The report at ``relative``; a :class:`.StorageError` names the file and the field that does not fit."""
    return storage.read_record(DriftReport, relative)


# -- retrain requests -------------------------------------------------------------------------------
def write_retrain_request(storage: Storage, request: RetrainRequest) -> str:
    return storage.write_bytes(layout.retrain_request(request.model), request.to_json())


RetrainOutcome = Literal["requested", "asked_before", "newer_pending"]


def request_retrain_once(storage: Storage, request: RetrainRequest) -> RetrainOutcome:
    """Request a retrain for the request's window, unless that window already requested one (a rerun, a cleared
    run, a backfill over it: ``asked_before``) or a request for a later window is waiting (``newer_pending``: a
    backfill must not replace it with older data). A request without a window is always written."""
    if request.window_end is None:
        write_retrain_request(storage, request)
        return "requested"
    made = layout.retrain_request_made(request.model, request.window_end)
    if storage.exists(made):
        return "asked_before"
    waiting = read_retrain_request(storage, request.model)
    if waiting is not None and waiting.window_end is not None and waiting.window_end > request.window_end:
        return "newer_pending"
    write_retrain_request(storage, request)
    storage.write_bytes(made, request.to_json())  # after the request: a crash between the two asks again, once
    return "requested"


def read_retrain_request(storage: Storage, model: str) -> RetrainRequest | None:
    path = layout.retrain_request(model)
    return storage.read_record(RetrainRequest, path) if storage.exists(path) else None


def retrain_requested(storage: Storage, model: str) -> bool:
    return storage.exists(layout.retrain_request(model))


def remove_retrain_request(storage: Storage, model: str) -> None:
    storage.remove(layout.retrain_request(model))


def remove_retrain_request_if_unchanged(storage: Storage, request: RetrainRequest) -> bool:
    """Remove the pending request if it is still ``request`` (a retrain took it); one written meanwhile, for a
    newer window, stays for the next retrain. Returns whether it was removed."""
    waiting = read_retrain_request(storage, request.model)
    if waiting is None or (waiting.window_end, waiting.requested_at) != (request.window_end, request.requested_at):
        return False
    remove_retrain_request(storage, request.model)
    return True


# -- alert outbox -------------------------------------------------------------------------------------
def queue_alert(storage: Storage, alert: Alert) -> bool:
    """Put ``alert`` in the outbox unless one with its id was already sent; returns whether it was queued."""
    if storage.exists(layout.alert_outbox("sent", alert.alert_id)):
        return False
    storage.write_bytes(layout.alert_outbox("pending", alert.alert_id), alert.to_json())
    return True


def pending_alerts(storage: Storage) -> list[Alert]:
    """The alerts waiting to be sent; one sent (and removed) by another process meanwhile is left out."""
    alerts = []
    for path in storage.list(layout.alert_outbox_folder("pending")):
        try:
            alerts.append(storage.read_record(Alert, path))
        except FileNotFoundError:
            continue
    return alerts


CLAIM_EXPIRES = timedelta(minutes=10)  # far longer than a bounded delivery takes; a crashed sender's claim expires


def claim_alert(storage: Storage, alert_id: str, now: datetime | None = None) -> bool:
    """Claim the sending of ``alert_id``: only one process among those delivering the outbox at once sends an
    alert (backfill runs deliver concurrently). A claim older than ``CLAIM_EXPIRES`` (its sender crashed) is
    taken over. Returns whether this process holds the claim; release it with :func:`release_alert_claim`."""
    now = now or utc_now()
    path = layout.alert_outbox("sending", alert_id)
    stamp = json.dumps({"claimed_at": now.isoformat()}).encode()
    if storage.create_exclusive(path, stamp):
        return True
    try:
        claimed_at = datetime.fromisoformat(json.loads(storage.read_bytes(path))["claimed_at"])
    except FileNotFoundError:  # released meanwhile: the alert was sent or is pending again
        return storage.create_exclusive(path, stamp)
    if now - claimed_at < CLAIM_EXPIRES:
        return False
    storage.remove(path)
    return storage.create_exclusive(path, stamp)


def release_alert_claim(storage: Storage, alert_id: str) -> None:
    storage.remove(layout.alert_outbox("sending", alert_id))


def alert_sent(storage: Storage, alert_id: str) -> bool:
    return storage.exists(layout.alert_outbox("sent", alert_id))


def outbox_alert_ids(storage: Storage, folder: Literal["pending", "sent"]) -> list[str]:
    """The ids of the alerts in one folder of the outbox, from its listing alone."""
    return [path.rsplit("/", 1)[-1].removesuffix(".json") for path in storage.list(layout.alert_outbox_folder(folder))]


def sent_alert_ids(storage: Storage) -> list[str]:
    return outbox_alert_ids(storage, "sent")


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
