from __future__ import annotations

from datetime import UTC, datetime

from driftline.dags.tasks.drift import decide, drift_alert_id
from driftline.schemas.config import MonitorConfig


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


def test_a_column_whose_type_changed_mid_window_is_read_against_the_reference_and_reported(tmp_path):
    """Floats in one file, text in another, for the same feature and window: the check runs and says so."""
    import json
    from datetime import timedelta

    import numpy as np
    import pandas as pd

    from driftline.dags.tasks.drift import run_drift_check
    from driftline.schemas.events import PredictionEvent
    from driftline.schemas.settings import Settings
    from driftline.schemas.storage import Storage, events

    rng = np.random.default_rng(3)
    reference = tmp_path / "reference.parquet"
    pd.DataFrame({"x": rng.normal(0, 1, 2000), "city": rng.choice(["a", "b"], 2000)}).to_parquet(reference)
    settings = Settings(home=str(tmp_path / "home"))
    storage = Storage.from_settings(settings)
    hour = datetime(2026, 5, 1, 6, tzinfo=UTC)

    def store(offset: int, values: list[object]) -> None:
        rows = [
            events.event_row(
                PredictionEvent(
                    model="m",
                    model_version="v1",
                    request_id=f"{offset}-{i}",
                    event_time=hour + timedelta(seconds=offset + i),
                    features={"x": value, "city": "a"},
                    prediction=1,
                    latency_ms=1.0,
                ),
                0,
                offset + i,
            )
            for i, value in enumerate(values)
        ]
        events.write_event_file(
            storage, "predictions", ("m", "v1", hour), ("t", 0, offset, offset + len(rows) - 1), rows
        )

    store(0, [float(v) for v in rng.normal(0, 1, 300)])
    store(1000, ["12.5", "abc", "n/a", *(["7"] * 97)])  # a producer switched to text mid-window
    cfg = MonitorConfig.model_validate({"model": "m", "reference": str(reference), "drift": {"min_rows": 50}})

    run_drift_check(settings, storage, cfg)

    [path] = [p for p in storage.list("reports/model=m") if p.endswith(".json")]
    report = json.loads(storage.fs.cat(storage.path(path)))
    [finding] = [q for q in report["quality"] if q["check"] == "type_change" and q["feature"] == "x"]
    assert finding["value"] == 2 / 400  # 'abc' and 'n/a'; '12.5' and '7' are numbers, like the 300 floats
    assert "2 of 400 values of feature 'x' in this window are not numbers" in finding["message"]
    assert report["current_rows"] == 400


def test_an_event_stamped_in_the_future_does_not_move_the_window(tmp_path):
    from datetime import timedelta

    from driftline.dags.tasks.drift import current_window
    from driftline.schemas.events import PredictionEvent
    from driftline.schemas.storage import Storage, events

    storage = Storage.from_url(str(tmp_path))
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    for at, count in ((start, 30), (datetime(2099, 1, 1, tzinfo=UTC), 1)):
        rows = [
            events.event_row(
                PredictionEvent(
                    model="m",
                    model_version="v1",
                    request_id=f"{at:%Y}-{i}",
                    event_time=at + timedelta(minutes=i),
                    features={"x": 1.0},
                    prediction=1,
                    latency_ms=1.0,
                ),
                0,
                i,
            )
            for i in range(count)
        ]
        events.write_event_file(storage, "predictions", ("m", "v1", at), ("t", 0, 0, count - 1), rows)
    window, window_start, window_end = current_window(storage, config(window="1h"), now=start + timedelta(hours=2))
    assert window_end == start + timedelta(minutes=29) and len(window) == 30
    assert window_start == window_end - timedelta(hours=1)
