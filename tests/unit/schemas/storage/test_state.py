from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.schemas.records import Alert, IngestLedger, RetrainRequest
from driftline.schemas.reports import DriftReport
from driftline.schemas.storage import Storage, StorageError, layout, state
from tests.unit.schemas.report_data import report_fields

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def test_an_alert_already_sent_is_not_queued_again(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    alert = Alert(alert_id="drift-m-1", kind="drift", model="m", window_start=T0, window_end=T0, text="t")
    assert state.queue_alert(storage, alert)
    assert state.pending_alerts(storage) == [alert]
    state.mark_alert_sent(storage, alert)
    assert state.pending_alerts(storage) == [] and state.sent_alert_ids(storage) == ["drift-m-1"]
    assert not state.queue_alert(storage, alert)
    assert state.pending_alerts(storage) == []


def test_retrain_requests_and_ledgers_round_trip(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    assert state.read_retrain_request(storage, "m") is None and not state.retrain_requested(storage, "m")
    request = RetrainRequest(model="m", reason="drift", report="s3://b/r.json", requested_at=T0)
    state.write_retrain_request(storage, request)
    assert state.read_retrain_request(storage, "m") == request
    state.remove_retrain_request(storage, "m")
    assert not state.retrain_requested(storage, "m")
    ledger = IngestLedger(topic="t", partition=2, first_offset=10, last_offset=19)
    state.write_ingest_ledger(storage, ledger, start_offset=10)
    assert state.read_ingest_ledger(storage, "t", 2, 10) == ledger
    assert state.read_ingest_ledger(storage, "t", 2, 20) is None


def test_a_record_of_another_shape_names_the_file_and_the_field(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    storage.write_json(layout.retrain_request("m"), {"model": "m", "reason": "r"})
    with pytest.raises(StorageError) as error:
        state.read_retrain_request(storage, "m")
    assert "retrain/requests/m.json: retrain_request record: field 'report' is missing" in str(error.value)


def test_reports_are_written_beside_their_html_and_listed_oldest_first(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    written = {}
    for hour in (11, 10):
        fields = report_fields([], 1) | {"window_end": T0.replace(hour=hour).isoformat()}
        written[hour] = DriftReport.parse(fields)
        state.write_drift_report(storage, written[hour], "<html></html>")
    reports = state.drift_reports(storage, "m")
    assert reports == ["reports/model=m/drift-20260501T100000Z.json", "reports/model=m/drift-20260501T110000Z.json"]
    assert state.read_drift_report(storage, reports[-1]) == written[11]
    storage.write_json(reports[0], {**report_fields([], 1), "owner": "x"})
    with pytest.raises(
        StorageError, match=r"drift-20260501T100000Z.json: drift_report record: field 'owner' is unknown"
    ):
        state.read_drift_report(storage, reports[0])
    assert storage.exists("reports/model=m/drift-20260501T110000Z.html")


def test_one_sender_holds_an_alert_claim_and_a_crashed_senders_claim_expires(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    assert state.claim_alert(storage, "drift-m-1", now=T0)
    assert not state.claim_alert(storage, "drift-m-1", now=T0 + timedelta(minutes=9))  # another process: wait
    assert state.claim_alert(storage, "drift-m-1", now=T0 + timedelta(minutes=10))  # the first one died
    state.release_alert_claim(storage, "drift-m-1")
    assert state.claim_alert(storage, "drift-m-1", now=T0)
    assert storage.create_exclusive("x/once", b"a") and not storage.create_exclusive("x/once", b"b")
    assert storage.read_bytes("x/once") == b"a"


def request(window_end: datetime) -> RetrainRequest:
    return RetrainRequest(model="m", reason="r", report="p", window_start=window_end, window_end=window_end)


def test_a_retrain_is_requested_once_per_window_and_never_over_a_later_windows_request(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    later, earlier = T0 + timedelta(hours=2), T0
    assert state.request_retrain_once(storage, request(later)) == "requested"
    assert state.request_retrain_once(storage, request(later)) == "asked_before"
    assert state.request_retrain_once(storage, request(earlier)) == "newer_pending"  # a backfill of the past
    taken = state.read_retrain_request(storage, "m")
    assert taken is not None and taken.window_end == later
    newer = request(later + timedelta(hours=1))
    assert state.request_retrain_once(storage, newer) == "requested"  # written while a retrain ran on `taken`
    assert not state.remove_retrain_request_if_unchanged(storage, taken)  # the retrain leaves the newer one
    assert state.read_retrain_request(storage, "m") == newer
    assert state.remove_retrain_request_if_unchanged(storage, newer) and not state.retrain_requested(storage, "m")
    assert state.request_retrain_once(storage, request(earlier)) == "requested"  # nothing newer waits any more
