from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.schemas.config import MonitorConfig
from driftline.schemas.worker_state import MergerCheckpoint
from driftline.streams.merger import WindowMerger
from driftline.streams.prediction_drift import PredictionMonitors
from driftline.streams.windows import WindowAggregate

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def config(**metrics: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "metrics": {"window": "5m", **metrics}}
    )


def window(minute: int, predictions: list, version: str = "v1"):
    aggregate = WindowAggregate("m", version, T0 + timedelta(minutes=minute), T0 + timedelta(minutes=minute + 5))
    for prediction in predictions:
        aggregate.add(10.0, None, prediction=prediction)
    return aggregate.snapshot()


def scores(rng, mean: float, n: int = 200) -> list[float]:
    return [float(x) for x in rng.normal(mean, 0.1, n).clip(0, 1)]


def test_a_shift_of_the_mean_prediction_is_found_within_a_few_windows_and_not_before():
    rng = np.random.default_rng(3)
    monitors, limits = PredictionMonitors(), config()
    found = []
    for w in range(60):
        alerts = monitors.judge(window(5 * w, scores(rng, 0.30 if w < 40 else 0.34)), limits)
        found += [(w, a) for a in alerts]
    assert [w for w, _ in found] and all(40 <= w <= 43 for w, _ in found)
    w, alert = found[0]
    assert alert.kind == "prediction_drift" and alert.metric == "mean prediction"
    assert alert.alert_id == f"m|v1|{(T0 + timedelta(minutes=5 * w)).isoformat()}|prediction_drift"
    assert "against 0.3" in (alert.text or "") and "CUSUM" in (alert.text or "")


def test_stable_predictions_raise_nothing_over_a_week_of_windows():
    rng = np.random.default_rng(4)
    monitors, limits = PredictionMonitors(), config()
    alerts = [a for w in range(2_016) for a in monitors.judge(window(5 * w, scores(rng, 0.3, 100)), limits)]
    assert alerts == []  # 7 days of 5-minute windows


def test_class_predictions_are_watched_by_the_share_of_the_first_commonest_class():
    rng = np.random.default_rng(5)
    monitors, limits = PredictionMonitors(), config()
    found = []
    for w in range(40):
        share = 0.7 if w < 25 else 0.6  # 10 % of the mass moves to the other class
        labels = ["stay" if x < share else "churn" for x in rng.random(300)]
        found += [w for _ in monitors.judge(window(5 * w, labels), limits)]
    assert found and 25 <= found[0] <= 28
    assert monitors.monitors["m|v1"].tracked_class == "stay"


def test_small_windows_are_not_fed_and_off_means_off():
    monitors = PredictionMonitors()
    assert monitors.judge(window(0, [0.5] * 5), config(min_count=20)) == []
    assert "m|v1" not in monitors.monitors
    assert monitors.judge(window(0, [0.5] * 50), config(prediction_drift="off")) == []
    assert monitors.monitors == {}


def test_the_detectors_survive_the_merger_checkpoint_and_decide_the_same():
    rng = np.random.default_rng(6)
    windows = [window(5 * w, scores(rng, 0.3 if w < 30 else 0.36)) for w in range(40)]
    limits = config()
    straight = WindowMerger("reports", 1)
    for w in windows[:20]:
        straight.predictions.judge(w, limits)
    saved = MergerCheckpoint.parse(json.dumps(json.loads(straight.checkpoint().to_json())))
    restarted = WindowMerger("reports", 1)
    restarted.restore(saved)
    a = [x.alert_id for w in windows[20:] for x in straight.predictions.judge(w, limits)]
    b = [x.alert_id for w in windows[20:] for x in restarted.predictions.judge(w, limits)]
    assert a == b and a
