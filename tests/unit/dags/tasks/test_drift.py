from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from driftline.dags.tasks.drift import current_window, decide, drift_alert_id, run_drift_check
from driftline.schemas.config import MonitorConfig
from driftline.schemas.events import PredictionEvent
from driftline.schemas.records import Alert
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state

HOUR = datetime(2026, 5, 1, 6, tzinfo=UTC)


def config(**drift: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "drift": drift, "retrain": {"entry_point": "pkg.mod:train"}}
    )


def report(drifted: list[str], features: int) -> dict[str, object]:
    return {"drifted_features": drifted, "share_drifted": len(drifted) / features}


def test_alert_above_the_alert_share_and_retrain_at_the_retrain_share():
    assert decide(report([], 10), config()) == decide(report([], 10), config(alert_share=0.0))
    nothing = decide(report([], 10), config())
    assert (nothing.alert, nothing.retrain) == (False, False)
    one = decide(report(["a"], 10), config(alert_share=0.0, retrain_share=0.2))
    assert (one.alert, one.retrain, one.drifted_features) == (True, False, ["a"])
    two = decide(report(["a", "b"], 10), config(alert_share=0.0, retrain_share=0.2))
    assert (two.alert, two.retrain) == (True, True)
    quiet = decide(report(["a", "b"], 10), config(alert_share=0.2, retrain_share=0.2))
    assert (quiet.alert, quiet.retrain) == (False, True)  # alert needs strictly more than alert_share


def test_no_retrain_without_an_entry_point():
    no_entry = MonitorConfig.model_validate({"model": "m", "reference": "r.parquet"})
    assert decide(report(["a", "b", "c"], 3), no_entry).retrain is False


def test_the_alert_id_names_the_model_and_the_window_end_in_utc():
    assert drift_alert_id("m", datetime(2026, 5, 1, 10, 30, tzinfo=UTC)) == "drift-m-20260501T103000Z"


def store(storage: Storage, offset: int, values: list[object], at: datetime = HOUR) -> str:
    """Events with feature x = each of ``values``, one second apart from ``at``, as ingest writes them."""
    rows = [
        events.event_row(
            PredictionEvent(
                model="m",
                model_version="v1",
                request_id=f"{at:%Y}-{offset}-{i}",
                event_time=at + timedelta(seconds=offset + i),
                features={"x": value, "city": "a"},
                prediction=1,
                latency_ms=1.0,
            ),
            0,
            offset + i,
        )
        for i, value in enumerate(values)
    ]
    return events.write_event_file(
        storage, "predictions", ("m", "v1", at), ("t", 0, offset, offset + len(rows) - 1), rows
    )


def setup(tmp_path, seed: int = 3) -> tuple[Settings, Storage, MonitorConfig, np.random.Generator]:
    rng = np.random.default_rng(seed)
    reference = tmp_path / "reference.parquet"
    pd.DataFrame({"x": rng.normal(0, 1, 2000), "city": rng.choice(["a", "b"], 2000)}).to_parquet(reference)
    settings = Settings(home=str(tmp_path / "home"))
    cfg = MonitorConfig.model_validate({"model": "m", "reference": str(reference), "drift": {"min_rows": 50}})
    return settings, Storage.from_settings(settings), cfg, rng


def stored_report(storage: Storage) -> dict[str, object]:
    [path] = [p for p in storage.list("reports/model=m") if p.endswith(".json")]
    return json.loads(storage.read_bytes(path))


def test_a_column_whose_type_changed_mid_window_is_read_against_the_reference_and_reported(tmp_path):
    """Floats in one file, text in another, for the same feature and window: the check runs and says so."""
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, [float(v) for v in rng.normal(0, 1, 300)])
    store(storage, 1000, ["12.5", "abc", "n/a", *(["7"] * 97)])  # a producer switched to text mid-window

    run_drift_check(settings, storage, cfg)

    report = stored_report(storage)
    [finding] = [q for q in report["quality"] if q["check"] == "type_change" and q["feature"] == "x"]
    assert finding["value"] == 2 / 400  # 'abc' and 'n/a'; '12.5' and '7' are numbers, like the 300 floats
    assert finding["severity"] == "warning"
    assert "2 of 400 values of feature 'x' in this window are not numbers" in finding["message"]
    assert report["current_rows"] == 400


def test_an_event_stamped_in_the_future_does_not_move_the_window(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    store(storage, 0, [1.0] * 30, at=HOUR)
    store(storage, 0, [1.0], at=datetime(2099, 1, 1, tzinfo=UTC))
    current = current_window(storage, config(window="1h"), now=HOUR + timedelta(hours=2))
    assert current.end == HOUR + timedelta(seconds=29) and len(current.rows) == 30
    assert current.start == current.end - timedelta(hours=1)


def test_unreadable_files_are_quarantined_announced_and_the_rest_of_the_window_is_checked(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    good = store(storage, 0, [float(v) for v in rng.normal(0, 1, 300)])
    folder = storage.relative(good).rsplit("/", 1)[0]
    bad = {
        f"{folder}/t+0+{1000:020d}+{1099:020d}.parquet": b"",  # zero bytes
        f"{folder}/t+0+{2000:020d}+{2049:020d}.parquet": b"PAR1 this is not parquet at all",
        f"{folder}/t+1+{0:020d}+{9:020d}.parquet": pd.DataFrame({"x": [1]}).to_parquet(),  # parquet, not events
    }
    for relative, data in bad.items():
        storage.write_bytes(relative, data)

    summary = run_drift_check(settings, storage, cfg)

    assert sorted(summary.quarantined_files) == sorted(bad) and summary.current_rows == 300
    report = stored_report(storage)
    assert report["skipped_events_at_most"] == 100 + 50 + 10
    reasons = {item["path"]: item["reason"] for item in report["skipped_files"]}
    assert reasons[f"{folder}/t+0+{1000:020d}+{1099:020d}.parquet"] == "the file is empty (0 bytes), not a Parquet file"
    assert "not a readable Parquet file" in reasons[f"{folder}/t+0+{2000:020d}+{2049:020d}.parquet"]
    assert (
        "not an event file: no request_id, model_version, event_time column"
        in reasons[f"{folder}/t+1+{0:020d}+{9:020d}.parquet"]
    )
    for relative, data in bad.items():  # moved aside, bytes kept, with a record of why
        assert not storage.exists(relative)
        assert storage.read_bytes(f"quarantine/{relative}") == data
    records = {record.path: record for record in events.quarantined_files(storage)}
    assert records[f"{folder}/t+0+{1000:020d}+{1099:020d}.parquet"].events_at_most == 100
    sent = state.sent_alert_ids(storage)
    assert sum(alert_id.startswith("quarantine-m-") for alert_id in sent) == 3
    assert f"quality-m-{summary.window_end:%Y%m%dT%H%M%SZ}" in sent  # the window's quality alert names them too
    assert report["quality_alert"] is True

    again = run_drift_check(settings, storage, cfg)  # the next run reads the good file only, announces nothing new
    assert again.quarantined_files == [] and again.current_rows == 300 and again.alerts_delivered == []


def test_a_feature_gone_for_the_whole_window_is_an_incident_alerted_without_a_retrain(tmp_path):
    settings, storage, cfg, _ = setup(tmp_path)
    cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"entry_point": "pkg.mod:train"})})
    store(storage, 0, [None] * 300)

    summary = run_drift_check(settings, storage, cfg)

    assert summary.verdict == "quality_incident" and summary.retrain_requested is False
    assert summary.quality_findings["critical"] >= 1
    [quality_alert] = [a for a in state.sent_alert_ids(storage) if a.startswith("quality-")]
    text = storage.read_record(Alert, f"alerts/sent/{quality_alert}.json").text
    assert text is not None and "a feature is gone for the whole window" in text and "[critical] missing_rate" in text


def test_the_quality_severity_floor_decides_which_findings_are_announced():
    findings = [
        {"check": "out_of_range", "severity": "warning"},
        {"check": "extra_column", "severity": "info"},
    ]
    report = {"drifted_features": [], "share_drifted": 0.0, "quality": findings}
    warning = decide(report, config())
    assert (warning.verdict, warning.quality_alert, warning.announced_findings) == ("no_drift", True, findings[:1])
    critical_only = decide(report, config_with_alerts(quality_severity="critical"))
    assert critical_only.quality_alert is False
    assert decide(report, config_with_alerts(quality_severity="info")).announced_findings == findings
    skipped = {**report, "skipped_files": [{"path": "p", "reason": "r"}]}
    assert decide(skipped, config_with_alerts(quality_severity="critical")).quality_alert is True
    assert decide(skipped, config_with_alerts(quality_severity="off")).quality_alert is False


def config_with_alerts(**alerts: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "alerts": alerts, "retrain": {"entry_point": "pkg.mod:train"}}
    )


def test_a_window_of_only_unreadable_files_is_still_announced_before_the_check_stops(tmp_path):
    import pytest

    settings, storage, cfg, _ = setup(tmp_path)
    relative = (
        "predictions/model=m/version=v1/date=2026-05-01/hour=06/t+0+00000000000000000000+00000000000000000009.parquet"
    )
    storage.write_bytes(relative, b"")
    with pytest.raises(LookupError, match=r"1 unreadable file\(s\) were moved to quarantine"):
        run_drift_check(settings, storage, cfg)
    [pending] = state.pending_alerts(storage)
    assert pending.kind == "quarantine" and relative in (pending.text or "")


def test_parquet_with_the_event_columns_in_the_wrong_types_is_quarantined_not_a_crash(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    good = store(storage, 0, [float(v) for v in rng.normal(0, 1, 200)])
    folder = storage.relative(good).rsplit("/", 1)[0]
    wrong = {
        "text time": pd.DataFrame({"request_id": ["a"], "model_version": ["v1"], "event_time": ["2026-05-01T06:00"]}),
        "naive time": pd.DataFrame(
            {"request_id": ["a"], "model_version": ["v1"], "event_time": [pd.Timestamp("2026-05-01T06:00")]}
        ),
        "number id": pd.DataFrame(
            {"request_id": [1], "model_version": ["v1"], "event_time": [pd.Timestamp("2026-05-01T06:00", tz="UTC")]}
        ),
    }
    for offset, frame in enumerate(wrong.values(), start=1):
        storage.write_bytes(f"{folder}/t+9+{offset:020d}+{offset:020d}.parquet", frame.to_parquet())

    summary = run_drift_check(settings, storage, cfg)

    assert summary.current_rows == 200 and len(summary.quarantined_files) == 3
    reasons = sorted(item["reason"] for item in stored_report(storage)["skipped_files"])
    assert [re.sub(r"(large_)?string|timestamp\[\w+\]", "T", reason) for reason in reasons] == [
        "not an event file: event_time is T, not a timestamp with a time zone",  # text
        "not an event file: event_time is T, not a timestamp with a time zone",  # no zone
        "not an event file: request_id is int64, not text",
    ]
