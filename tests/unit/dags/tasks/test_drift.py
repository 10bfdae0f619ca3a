from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from driftline.dags.tasks.drift import (
    EmptyWindowError,
    check_interval,
    ingest_caught_up,
    reference_profile,
    run_drift_check,
    windows_ending_in,
)
from driftline.dags.tasks.window_scan import TypeTally, scan_window, window_features
from driftline.schemas.config import MonitorConfig
from driftline.schemas.events import PredictionEvent
from driftline.schemas.records import Alert, IngestProgress
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.streams.alerts.ids import window_alert_id

HOUR = datetime(2026, 5, 1, 6, tzinfo=UTC)
WINDOW = (HOUR, HOUR + timedelta(hours=1))


def config(**drift: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "drift": drift, "retrain": {"entry_point": "pkg.mod:train"}}
    )


def test_a_window_too_small_to_judge_is_reported_and_alerted_as_insufficient(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, rng.normal(0, 1, 20).tolist())  # 20 rows, min_rows 50, nothing gross

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    assert summary.verdict == "insufficient_data" and summary.alert is False
    report_ = stored_report(storage)
    assert report_["verdict"] == "insufficient_data" and sorted(report_["insufficient_data"]) == ["city", "x"]
    [alert_id] = [a for a in state.sent_alert_ids(storage) if a.startswith("insufficient_data-")]
    alert = storage.read_record(Alert, f"alerts/sent/{alert_id}.json")
    assert alert.severity == "info" and alert.text is not None
    assert "no verdict for 2 of 2 features" in alert.text and "fewer than drift.min_rows (50)" in alert.text


def test_gross_change_in_a_window_too_small_for_the_other_tests_is_drift(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, (rng.normal(0, 1, 20) + 100).tolist())  # 20 rows, every one far beyond the reference

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    assert summary.verdict == "drift" and summary.drifted_features == ["x"] and summary.alert is True
    x = next(f for f in stored_report(storage)["features"] if f["feature"] == "x")
    assert (x["test"], x["statistic"], x["verdict"]) == ("out_of_range", 1.0, "drift")


def store(storage: Storage, offset: int, values: list[object], at: datetime = HOUR) -> str:
    """Events with feature x = each of ``values`` (and city "a"), one second apart from ``at``."""
    return store_rows(storage, at, offset, [{"x": value, "city": "a"} for value in values])


def store_rows(storage: Storage, at: datetime, offset: int, features: list[dict[str, object]]) -> str:
    """Events with the given features, one second apart from ``at``, as ingest writes them."""
    rows = [
        events.event_row(
            PredictionEvent(
                model="m",
                model_version="v1",
                request_id=f"{at:%Y%m%d%H}-{offset}-{i}",
                event_time=at + timedelta(seconds=offset + i),
                features=values,
                prediction=1,
                latency_ms=1.0,
            ),
            0,
            offset + i,
        )
        for i, values in enumerate(features)
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

    run_drift_check(settings, storage, cfg, *WINDOW)

    report = stored_report(storage)
    [finding] = [q for q in report["quality"] if q["check"] == "type_change" and q["feature"] == "x"]
    assert finding["value"] == 2 / 400  # 'abc' and 'n/a'; '12.5' and '7' are numbers, like the 300 floats
    assert finding["severity"] == "warning"
    assert "2 of 400 values of feature 'x' in this window are not numbers" in finding["message"]
    assert report["current_rows"] == 400


def test_windows_are_aligned_to_the_epoch_and_a_run_checks_those_ending_in_its_interval():
    day = datetime(2026, 5, 1, tzinfo=UTC)
    hourly = (day + timedelta(hours=6), day + timedelta(hours=7))
    assert windows_ending_in(*hourly, timedelta(hours=1)) == [hourly]
    quarters = windows_ending_in(*hourly, timedelta(minutes=15))
    assert [end - start for start, end in quarters] == [timedelta(minutes=15)] * 4
    assert quarters[0][0] == hourly[0] and quarters[-1][1] == hourly[1]
    assert windows_ending_in(*hourly, timedelta(days=1)) == []  # a daily window ends at midnight only
    midnight = (day - timedelta(hours=1), day)
    assert windows_ending_in(*midnight, timedelta(days=1)) == [(day - timedelta(days=1), day)]
    # An interval not on the hour (a manual run's) still checks whole, aligned windows that end in it.
    odd = (day + timedelta(hours=6, minutes=30), day + timedelta(hours=7, minutes=30))
    assert windows_ending_in(*odd, timedelta(hours=1)) == [hourly]
    # Consecutive intervals check each window once.
    three = [
        w
        for h in range(3)
        for w in windows_ending_in(day + timedelta(hours=h), day + timedelta(hours=h + 1), timedelta(minutes=40))
    ]
    assert three == windows_ending_in(day, day + timedelta(hours=3), timedelta(minutes=40))
    assert len(three) == len(set(three)) == 4  # ends at 00:40, 01:20, 02:00, 02:40


def window_values(storage: Storage, start: datetime, end: datetime) -> list[float]:
    quarantined: list[object] = []
    batches = events.window_batches(
        storage, "predictions", "m", start, end, columns=lambda c: c == "features.x", quarantined=quarantined
    )
    return sorted(v for batch in batches for v in batch.column("features.x").to_pylist())


def test_a_window_holds_exactly_the_events_of_its_half_open_interval(tmp_path):
    settings, storage, cfg, _ = setup(tmp_path)
    before = HOUR - timedelta(seconds=2)
    store(storage, 0, [1.0, 2.0], at=before)  # 05:59:58 and 05:59:59: the previous window
    store(storage, 10, [3.0] * 30, at=HOUR)  # 06:00:10 ...
    store(storage, 100, [4.0, 5.0], at=HOUR + timedelta(hours=1) - timedelta(seconds=101))  # 06:59:59, 07:00:00
    store(storage, 0, [9.0], at=datetime(2099, 1, 1, tzinfo=UTC))  # far future: another hour, never read
    assert window_values(storage, *WINDOW) == [3.0] * 30 + [4.0]
    assert window_values(storage, HOUR - timedelta(hours=1), HOUR) == [1.0, 2.0]
    reference, _ = reference_profile(settings, storage, cfg)
    scan = scan_window(storage, cfg, reference, *WINDOW)
    assert scan.rows == 31 and scan.profile.summaries["x"].count == 31 and scan.versions == ["v1"]
    with pytest.raises(EmptyWindowError, match=r"no stored predictions of model 'm' in \[2026-05-01T08:00:00"):
        run_drift_check(settings, storage, cfg, HOUR + timedelta(hours=2), HOUR + timedelta(hours=3))


def test_a_window_is_streamed_in_bounded_batches_whatever_its_files_row_groups(tmp_path):
    """One file written as a single row group of 200,000 rows is read 65,536 rows at a time."""
    storage = Storage.from_url(str(tmp_path))
    rows = 200_000
    table = pa.table(
        {
            "request_id": pa.array([f"r{i}" for i in range(rows)]),
            "model_version": pa.array(["v1"] * rows),
            "event_time": pa.array(
                pd.date_range(HOUR - timedelta(minutes=1), periods=rows, freq="20ms", tz="UTC"),
            ),
            "features.x": pa.array(np.arange(rows, dtype=float)),
        }
    )
    path = "predictions/model=m/version=v1/date=2026-05-01/hour=06/t+0+0+199999.parquet"
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=rows)
    storage.write_bytes(path, buffer.getvalue())
    sizes = [
        batch.num_rows
        for batch in events.window_batches(storage, "predictions", "m", *WINDOW, quarantined=[], batch_rows=65_536)
    ]
    # 06:00 to 07:00 at 50 rows a second: 180,000 rows; the minute before (3,000 rows) and the rows after are
    # left out, and no batch is larger than asked.
    assert sizes == [65_536 - 3000, 65_536, 180_000 - 65_536 - 62_536]


def test_an_interval_checks_each_window_and_lists_the_empty_ones(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    cfg = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"window": timedelta(minutes=30)})})
    store(storage, 0, [float(v) for v in rng.normal(0, 1, 200)])  # 06:00:00 to 06:03:19: the first half hour only
    checked = check_interval(settings, storage, cfg, *WINDOW)
    [summary] = checked.summaries
    assert (summary.window_start, summary.window_end) == (HOUR, HOUR + timedelta(minutes=30))
    assert summary.current_rows == 200
    [empty] = checked.empty_windows
    assert "[2026-05-01T06:30:00+00:00, 2026-05-01T07:00:00+00:00)" in empty
    assert [p.rsplit("/", 1)[1] for p in state.drift_reports(storage, "m")] == ["drift-20260501T063000Z.json"]


def test_a_rerun_of_a_window_overwrites_its_report_and_alerts_and_requests_a_retrain_once(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"entry_point": "pkg.mod:train"})})
    store(storage, 0, [float(v) for v in rng.normal(3, 1, 300)])  # plainly drifted
    first = run_drift_check(settings, storage, cfg, *WINDOW)
    assert first.alert and first.retrain_requested and first.alerts_delivered == ["drift-m-20260501T070000Z"]
    request = state.read_retrain_request(storage, "m")
    assert request is not None and (request.window_start, request.window_end) == WINDOW
    state.remove_retrain_request(storage, "m")  # the retrain DAG took it
    store(storage, 1000, [float(v) for v in rng.normal(3, 1, 100)])  # late events of the same window

    again = run_drift_check(settings, storage, cfg, *WINDOW)

    assert again.current_rows == 400 and again.alerts_delivered == []  # sent once
    assert stored_report(storage)["current_rows"] == 400  # the one report, rewritten with the late events
    assert not state.retrain_requested(storage, "m")  # this window asked already


def test_a_check_waits_for_ingest_to_pass_the_interval_end_and_the_lateness_but_not_forever(tmp_path):
    settings = Settings(home=str(tmp_path), allowed_lateness_seconds=30, drift_ingest_wait_seconds=600)
    storage = Storage.from_settings(settings)
    end = HOUR + timedelta(hours=1)
    done, why = ingest_caught_up(settings, storage, end, now=end + timedelta(minutes=1))
    assert not done and why.endswith("it has not caught up yet")
    topic = settings.topics.predictions
    state.write_ingest_progress(
        storage, IngestProgress(topic=topic, caught_up_at=end + timedelta(seconds=29), rows_written=5)
    )
    assert ingest_caught_up(settings, storage, end, now=end + timedelta(minutes=1))[0] is False
    state.write_ingest_progress(
        storage, IngestProgress(topic=topic, caught_up_at=end + timedelta(seconds=30), rows_written=0)
    )
    assert ingest_caught_up(settings, storage, end, now=end + timedelta(minutes=1)) == (
        True,
        f"ingest of {topic} caught up at 2026-05-01T07:00:30+00:00",
    )
    state.write_ingest_progress(storage, IngestProgress(topic=topic, caught_up_at=HOUR, rows_written=0))
    late, why = ingest_caught_up(settings, storage, end, now=end + timedelta(seconds=630))
    assert late and "checking what is stored" in why  # a stopped ingest delays checks, never stops them
    assert ingest_caught_up(settings, storage, end, now=end + timedelta(seconds=629))[0] is False


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

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

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

    again = run_drift_check(
        settings, storage, cfg, *WINDOW
    )  # the next run reads the good file only, announces nothing new
    assert again.quarantined_files == [] and again.current_rows == 300 and again.alerts_delivered == []


def test_a_feature_gone_for_the_whole_window_is_an_incident_alerted_without_a_retrain(tmp_path):
    settings, storage, cfg, _ = setup(tmp_path)
    cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"entry_point": "pkg.mod:train"})})
    store(storage, 0, [None] * 300)

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    assert summary.verdict == "quality_incident" and summary.retrain_requested is False
    assert summary.quality_findings["critical"] >= 1
    [quality_alert] = [a for a in state.sent_alert_ids(storage) if a.startswith("quality-")]
    text = storage.read_record(Alert, f"alerts/sent/{quality_alert}.json").text
    assert text is not None and "a feature is gone for the whole window" in text and "[critical] missing_rate" in text


def config_with_alerts(**alerts: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "alerts": alerts, "retrain": {"entry_point": "pkg.mod:train"}}
    )


def test_a_window_of_only_unreadable_files_is_still_announced_before_the_check_stops(tmp_path):
    settings, storage, cfg, _ = setup(tmp_path)
    relative = (
        "predictions/model=m/version=v1/date=2026-05-01/hour=06/t+0+00000000000000000000+00000000000000000009.parquet"
    )
    storage.write_bytes(relative, b"")
    with pytest.raises(LookupError, match=r"1 unreadable file\(s\) were moved to quarantine"):
        run_drift_check(settings, storage, cfg, *WINDOW)
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

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    assert summary.current_rows == 200 and len(summary.quarantined_files) == 3
    reasons = sorted(item["reason"] for item in stored_report(storage)["skipped_files"])
    assert [re.sub(r"(large_)?string|timestamp\[\w+\]", "T", reason) for reason in reasons] == [
        "not an event file: event_time is T, not a timestamp with a time zone",  # text
        "not an event file: event_time is T, not a timestamp with a time zone",  # no zone
        "not an event file: request_id is int64, not text",
    ]


def test_airflow_pendulum_times_give_the_same_windows():
    import pendulum

    start, end = pendulum.datetime(2026, 5, 1, 6, tz="UTC"), pendulum.datetime(2026, 5, 1, 7, tz="UTC")
    assert windows_ending_in(start, end, timedelta(minutes=30)) == windows_ending_in(
        HOUR, HOUR + timedelta(hours=1), timedelta(minutes=30)
    )
    [(window_start, _), _] = windows_ending_in(start, end, timedelta(minutes=30))
    assert type(window_start) is datetime


def drifted_config(cfg: MonitorConfig, **alerts: object) -> MonitorConfig:
    return cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update=alerts)})


def test_a_cooldown_holds_back_alerts_of_the_same_kind_for_nearby_windows_before_or_after(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    cfg = drifted_config(cfg, cooldown=timedelta(hours=2))
    for hour in (0, 1, 3, -1):  # 06:00, 07:00, then 09:00 (2 h after 07:00: not within), then 05:00 (a backfill)
        store(storage, 0, [float(v) for v in rng.normal(3, 1, 200)], at=HOUR + timedelta(hours=hour))
    other = MonitorConfig.model_validate({**cfg.model_dump(), "model": "m-eu"})  # 'm-' must not match 'm-eu-'
    state.queue_alert(
        storage,
        Alert(
            alert_id=window_alert_id("drift", other.model, HOUR + timedelta(hours=4, minutes=30)),
            kind="drift",
            model=other.model,
            window_start=HOUR,
            window_end=HOUR,
        ),
    )
    summaries = [
        run_drift_check(settings, storage, cfg, HOUR + timedelta(hours=h), HOUR + timedelta(hours=h + 1))
        for h in (0, 1, 3, -1)
    ]
    assert [s.alerts_held_back for s in summaries] == [[], ["drift"], [], ["drift"]]
    # m-eu's alert (10:30) is near m's 10:00 window but another model's: it holds nothing back.
    assert [s.alerts_delivered for s in summaries] == [
        ["drift-m-20260501T070000Z", "drift-m-eu-20260501T103000Z"],
        [],
        ["drift-m-20260501T100000Z"],
        [],
    ]
    report = state.read_drift_report(storage, state.drift_reports(storage, "m")[2])
    assert report.alerts_held_back == {
        "drift": "alert drift-m-20260501T070000Z is within alerts.cooldown (2:00:00) of this window"
    }
    # Without a cooldown every window alerts.
    off = drifted_config(cfg, cooldown=timedelta(0))
    store(storage, 0, [float(v) for v in rng.normal(3, 1, 200)], at=HOUR + timedelta(hours=4))
    assert (
        run_drift_check(settings, storage, off, HOUR + timedelta(hours=4), HOUR + timedelta(hours=5)).alerts_held_back
        == []
    )


def test_the_report_index_lists_windows_newest_first_with_verdicts_and_links(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    cfg = MonitorConfig.model_validate({**cfg.model_dump(), "features": {"x": "numeric"}})  # 'city' is always 'a'
    store(storage, 0, [float(v) for v in rng.normal(0, 1, 200)], at=HOUR)
    store(storage, 0, [float(v) for v in rng.normal(3, 1, 200)], at=HOUR + timedelta(hours=1))
    run_drift_check(settings, storage, cfg, HOUR + timedelta(hours=1), HOUR + timedelta(hours=2))
    run_drift_check(settings, storage, cfg, *WINDOW)  # a backfill of the earlier window, checked second

    page = storage.read_bytes("reports/model=m/index.html").decode()
    rows = re.findall(
        r"<tr><td><a href='(drift-\w+\.html)'>.*?</a></td><td class='version'>(\w+)</td><td class='(\w+)'>([\w ]+)"
        r"</td>.*?<td class='alerts'>(.*?)</td></tr>",
        page,
    )
    assert rows == [
        ("drift-20260501T080000Z.html", "v1", "drift", "drift", "drift: sent"),  # delivered, per the outbox
        ("drift-20260501T070000Z.html", "v1", "ok", "no drift", "none"),
    ]
    assert storage.exists("reports/model=m/drift-20260501T080000Z.html")  # the link's target is beside the index
    models = storage.read_bytes("reports/index.html").decode()
    assert "<a href='model=m/index.html'>m</a>" in models and "2026-05-01T08:00:00+00:00" in models


def test_the_report_index_is_written_when_delivery_fails_and_says_the_alert_is_not_delivered(tmp_path, monkeypatch):
    from driftline.streams.alerts import outbox
    from driftline.streams.alerts.delivery import AlertDeliveryError

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise AlertDeliveryError("Slack unreachable")

    monkeypatch.setattr(outbox, "deliver_with_retry", unreachable)
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, [float(v) for v in rng.normal(3, 1, 200)])
    with pytest.raises(AlertDeliveryError):
        run_drift_check(settings, storage, cfg, *WINDOW)  # Airflow retries the task; the alert stays pending

    page = storage.read_bytes("reports/model=m/index.html").decode()
    assert "<td class='alerts'><span class='drift'>drift: not delivered yet</span></td>" in page
    assert state.outbox_alert_ids(storage, "pending") == ["drift-m-20260501T070000Z"]


def test_a_backfill_over_windows_the_serving_version_was_trained_after_requests_no_retrain(tmp_path):
    from driftline.schemas.storage import models as model_store
    from driftline.streams.rollouts import store as rollout_store

    settings, storage, cfg, rng = setup(tmp_path)
    cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"entry_point": "pkg.mod:train"})})
    model_store.save_model(
        storage, {"any": "model"}, name="m", version="v2", training_window_start=HOUR, training_window_end=WINDOW[1]
    )
    rollout_store.switch(storage, "m", "v2", reason="retrained", signing_key=None)
    store(storage, 0, [float(v) for v in rng.normal(3, 1, 300)])
    summary = run_drift_check(settings, storage, cfg, *WINDOW)
    assert summary.alert and summary.retrain_requested is False and not state.retrain_requested(storage, "m")
    assert stored_report(storage)["retrain_not_requested"] == (
        "serving_version_newer: v2 was trained on data up to 2026-05-01T07:00:00+00:00"
    )


def test_drift_against_the_previous_windows_of_production_is_reported_beside_the_skew(tmp_path):
    """Three hours at x ~ N(2, 1), then an hour back at N(0, 1), the training distribution: no skew on x, but a
    change against the rolling reference of the previous three windows, which alerts."""
    settings, storage, cfg, rng = setup(tmp_path)
    drift = cfg.drift.model_copy(update={"production_windows": 3, "production_alerts": True})
    cfg = cfg.model_copy(update={"drift": drift})

    def rows(mean: float) -> list[dict[str, object]]:
        return [{"x": float(v), "city": "ab"[i % 2]} for i, v in enumerate(rng.normal(mean, 1, 300))]

    for back in (3, 2, 1):
        store_rows(storage, HOUR - timedelta(hours=back), 0, rows(2.0))
    store_rows(storage, HOUR, 0, rows(0.0))

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    report = stored_report(storage)
    assert "x" not in report["drifted_features"]  # the window looks like the training data
    production = report["production_drift"]
    assert production["status"] == "ok" and production["drifted_features"] == ["x"]
    assert production["reference_windows"] == [
        "2026-05-01T06:00:00+00:00",
        "2026-05-01T05:00:00+00:00",
        "2026-05-01T04:00:00+00:00",
    ]
    assert production["reference_rows"] == 900
    # Its own kind of alert: no skew alert, and no retrain (the window looks like the training data).
    assert summary.verdict == "drift" and not summary.alert and summary.retrain_requested is False
    assert state.sent_alert_ids(storage) == [f"production_drift-m-{summary.window_end:%Y%m%dT%H%M%SZ}"]
    text = storage.read_record(Alert, f"alerts/sent/production_drift-m-{summary.window_end:%Y%m%dT%H%M%SZ}.json").text
    assert text is not None and "changed against the previous 3 window(s) of production — 1 of 2 features" in text
    assert "900 rows" in text and "• x: " in text
    # Each window's profile is stored once profiled (the three previous ones on the way), for the next check.
    stored = storage.glob("models/m/window_profiles/*/*.npz")
    assert [p.rsplit("/", 1)[1] for p in stored] == [
        "20260501T040000Z.npz",
        "20260501T050000Z.npz",
        "20260501T060000Z.npz",
        "20260501T070000Z.npz",
    ]


def test_a_first_window_has_no_production_reference_and_says_so(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, [float(v) for v in rng.normal(0, 1, 300)])
    run_drift_check(settings, storage, cfg, *WINDOW)
    production = stored_report(storage)["production_drift"]
    assert production["status"] == "no_previous_windows" and production["reference_windows"] == []
    off = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"production_windows": 0})})
    run_drift_check(settings, storage, off, *WINDOW)
    assert stored_report(storage)["production_drift"]["status"] == "off"


def test_each_segment_is_tested_against_its_own_training_rows(tmp_path):
    """Training: city a has x ~ N(-2, .5), city b N(2, .5). The window swaps them: the whole is unchanged (no
    skew), each segment has drifted."""
    settings, storage, cfg, rng = setup(tmp_path)
    reference = tmp_path / "segmented.parquet"
    pd.DataFrame(
        {
            "x": np.concatenate([rng.normal(-2, 0.5, 1000), rng.normal(2, 0.5, 1000)]),
            "city": ["a"] * 1000 + ["b"] * 1000,
            "plan": ["free", "pro"] * 1000,
        }
    ).to_parquet(reference)
    cfg = cfg.model_copy(
        update={"reference": str(reference), "drift": cfg.drift.model_copy(update={"segments": ["city"]})}
    )
    plans = ("free", "pro")
    swapped = [{"x": float(v), "city": "a", "plan": plans[i % 2]} for i, v in enumerate(rng.normal(2, 0.5, 200))]
    swapped += [{"x": float(v), "city": "b", "plan": plans[i % 2]} for i, v in enumerate(rng.normal(-2, 0.5, 200))]
    store_rows(storage, HOUR, 0, [swapped[i] for i in rng.permutation(len(swapped))])

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    report = stored_report(storage)
    assert report["drifted_features"] == []
    segments = {(s["feature"], s["value"]): s for s in report["segments"]}
    assert sorted(segments) == [("city", "a"), ("city", "b")]
    for value in ("a", "b"):
        segment = segments[("city", value)]
        assert (segment["reference_rows"], segment["current_rows"]) == (1000, 200)
        assert segment["drifted_features"] == ["x"] and segment["alpha"] == 0.025  # 0.05 shared by two segments
        assert {f["feature"] for f in segment["features"]} == {"x", "plan"}  # the segment feature left out
    assert summary.verdict == "drift" and summary.alert
    assert "Segment city = a (200 rows): x drifted." in (
        storage.read_record(Alert, f"alerts/sent/drift-m-{summary.window_end:%Y%m%dT%H%M%SZ}.json").text or ""
    )
    html = storage.read_bytes("reports/model=m/drift-20260501T070000Z.html").decode()
    assert "<h2>Segments</h2>" in html and "city = b" in html


def test_a_segment_feature_must_be_a_categorical_feature_of_the_reference(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, [float(v) for v in rng.normal(0, 1, 300)])
    for segments, problem in ((["country"], "does not have as a feature"), (["x"], "a numeric feature")):
        bad = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"segments": segments})})
        with pytest.raises(ValueError, match=problem):
            run_drift_check(settings, storage, bad, *WINDOW)


def test_a_file_that_fails_midway_is_quarantined_and_the_window_read_again_without_it(tmp_path):
    """The footer is fine, the last row group is not: rows already read from it must not count."""
    settings, storage, cfg, rng = setup(tmp_path)
    store(storage, 0, [float(v) for v in rng.normal(0, 1, 300)])
    table = pa.table(
        {
            "request_id": [f"late-{i}" for i in range(3000)],
            "model_version": ["v1"] * 3000,
            "event_time": pa.array(pd.date_range(HOUR, periods=3000, freq="1s", tz="UTC")),
            "features.x": rng.normal(0, 1, 3000),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=1000, compression="zstd")
    data = bytearray(buffer.getvalue())
    last = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(2).column(3)
    start = last.data_page_offset
    data[start + 20 : start + 400] = bytes(380)  # zeros over the last row group's compressed values
    broken = f"predictions/model=m/version=v1/date=2026-05-01/hour=06/t+9+{0:020d}+{2999:020d}.parquet"
    storage.write_bytes(broken, bytes(data))

    summary = run_drift_check(settings, storage, cfg, *WINDOW)

    assert summary.quarantined_files == [broken] and summary.current_rows == 300
    assert storage.exists(f"quarantine/{broken}")


class _FailingReads:
    """A file handle whose reads fail after the first ``good`` ones, as a network drop would."""

    def __init__(self, handle: Any, good: int) -> None:
        self.handle, self.good = handle, good

    def read(self, size: int = -1) -> bytes:
        self.good -= 1
        if self.good < 0:
            raise ConnectionError("connection reset by peer")
        data: bytes = self.handle.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> _FailingReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def test_a_storage_error_while_streaming_propagates_and_quarantines_nothing(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    written = store(storage, 0, [float(v) for v in rng.normal(0, 1, 300)])

    class DroppingFileSystem(LocalFileSystem):
        def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            handle = super().open(path, mode, **kwargs)
            return _FailingReads(handle, good=1) if "predictions/" in str(path) else handle

    flaky = Storage(fs=DroppingFileSystem(skip_instance_cache=True), root=storage.root)
    with pytest.raises(ConnectionError, match="connection reset by peer"):
        run_drift_check(settings, flaky, cfg, *WINDOW)
    assert storage.exists(storage.relative(written)) and events.quarantined_files(storage) == []


def test_files_stamped_in_seconds_or_milliseconds_are_read_exactly_against_bounds_with_microseconds(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    times = pd.to_datetime(
        ["2026-05-01T06:00:00", "2026-05-01T06:00:01", "2026-05-01T06:59:59", "2026-05-01T07:00:00"], utc=True
    )
    for unit in ("s", "ms"):
        table = pa.table(
            {
                "request_id": [f"{unit}{i}" for i in range(4)],
                "model_version": ["v1"] * 4,
                "event_time": pa.array(times, type=pa.timestamp(unit, tz="UTC")),
                "label": [1.0, 2.0, 3.0, 4.0],
            }
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        storage.write_bytes(
            f"labels/model=m/version=v1/date=2026-05-01/hour=06/{unit}+0+{0:020d}+{3:020d}.parquet", buffer.getvalue()
        )
    quarantined: list[object] = []
    start = HOUR + timedelta(microseconds=500_000)  # 06:00:00.5: the 06:00:00 events are before it
    end = HOUR + timedelta(hours=1, microseconds=1)  # 07:00:00.000001: the 07:00:00 events are inside
    labels = [
        v
        for batch in events.window_batches(storage, "labels", "m", start, end, quarantined=quarantined)
        for v in batch.column("label").to_pylist()
    ]
    assert quarantined == [] and labels == [2.0, 3.0, 4.0] * 2


def test_booleans_for_a_numeric_feature_are_read_as_zero_and_one_and_a_file_without_a_feature_as_missing(tmp_path):
    settings, storage, cfg, _ = setup(tmp_path)
    reference, _ = reference_profile(settings, storage, cfg)
    tally, seen = TypeTally(), set[str]()
    batch = pa.record_batch({"features.x": pa.array([True, False, None]), "model_version": ["v1"] * 3})
    features = window_features(batch, reference, tally, seen)
    assert features.column(features.schema.get_field_index("x")).to_pylist() == [1.0, 0.0, None]
    assert features.column(features.schema.get_field_index("city")).null_count == 3  # not in this file
    assert tally.findings() == [] and seen == {"x"}


def test_a_numeric_feature_never_set_in_a_segment_is_left_out_of_that_segment(tmp_path):
    settings, storage, cfg, rng = setup(tmp_path)
    reference = tmp_path / "tenure.parquet"
    pd.DataFrame(
        {
            "x": rng.normal(0, 1, 2000),
            "plan": ["free", "pro"] * 1000,
            "tenure": [None, 3.0] * 1000,  # free accounts have no tenure
        }
    ).to_parquet(reference)
    cfg = cfg.model_copy(
        update={"reference": str(reference), "drift": cfg.drift.model_copy(update={"segments": ["plan"]})}
    )
    rows = [
        {"x": float(v), "plan": ("free", "pro")[i % 2], "tenure": (None, 3.0)[i % 2]}
        for i, v in enumerate(rng.normal(0, 1, 300))
    ]
    store_rows(storage, HOUR, 0, rows)

    run_drift_check(settings, storage, cfg, *WINDOW)

    segments = {s["value"]: s for s in stored_report(storage)["segments"]}
    assert {f["feature"] for f in segments["free"]["features"]} == {"x"}
    assert {f["feature"] for f in segments["pro"]["features"]} == {"x", "tenure"}
