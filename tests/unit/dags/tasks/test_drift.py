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
