"""Online drift detection on each model version's prediction stream, window by window. Pure.

The window merger feeds every published window of a model version to that version's detector
(:mod:`driftline.detectors.online`), one value per window:

- numeric predictions (scores, regression outputs): the window's **mean prediction**;
- class predictions (text, booleans): the window's **share of the class** that was commonest in the first window
  the detector saw.

One value per window rather than per event: the merger sees windows, not events, and a window's statistic
already averages its events, so the detector watches how the prediction distribution moves from window to
window against the spread it showed while warming up (CUSUM's warm-up sets the mean and standard deviation of
the window statistic itself, which includes the normal window-to-window variation a per-event test would call
drift in large windows). Windows with fewer than ``metrics.min_count`` events are not fed.

``metrics.prediction_drift`` chooses the detector: ``cusum`` (default: warm-up of
``metrics.prediction_drift_warmup`` windows, k = 0.5, h = 8 standard deviations), ``adwin`` (variance-based, no
warm-up) or ``off``. A detection is a ``prediction_drift`` alert naming the window, the value and the
warm-up's mean and spread; the detector then starts again (a new level becomes the baseline after its warm-up).

The detectors' state is part of the merger's checkpoint, so it survives restarts and moves with the merger
between workers; a replay from the checkpoint decides the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from driftline.detectors.online import Adwin, Cusum, DriftDetector
from driftline.schemas.config import MetricSettings, MonitorConfig
from driftline.schemas.records import Alert, WindowMetrics
from driftline.streams.alerts.ids import prediction_drift_alert_id

CUSUM_K = 0.5
CUSUM_H = 8.0


@dataclass
class PredictionMonitor:
    """One model version's detector and what it watches."""

    kind: str  # "cusum" or "adwin"
    detector: DriftDetector
    tracked_class: str | None = None  # for class predictions: the share of this class is watched
    windows: int = 0  # windows fed

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tracked_class": self.tracked_class,
            "windows": self.windows,
            "detector": self.detector.state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PredictionMonitor:
        detector_type = Cusum if state["kind"] == "cusum" else Adwin
        return cls(state["kind"], detector_type.from_state(state["detector"]), state["tracked_class"], state["windows"])


def new_monitor(limits: MetricSettings) -> PredictionMonitor | None:
    if limits.prediction_drift == "cusum":
        return PredictionMonitor("cusum", Cusum(warmup=limits.prediction_drift_warmup, k=CUSUM_K, h=CUSUM_H))
    if limits.prediction_drift == "adwin":
        return PredictionMonitor("adwin", Adwin(clock=1, min_part=limits.prediction_drift_warmup // 2 or 1))
    return None


def window_statistic(metrics: WindowMetrics, monitor: PredictionMonitor) -> tuple[str, float] | None:
    """What the monitor watches in this window: (its name, its value), or ``None`` when the window has none."""
    sketch = metrics.predictions
    if sketch is None:
        return None
    if sketch.numeric:
        return "mean prediction", sketch.total / sketch.numeric
    classified = sum(sketch.classes.values()) + sketch.other_classes
    if not classified:
        return None
    if monitor.tracked_class is None:
        monitor.tracked_class = min(sketch.classes, key=lambda c: (-sketch.classes[c], c))
    return f"share of class {monitor.tracked_class!r}", sketch.classes.get(monitor.tracked_class, 0) / classified


@dataclass
class PredictionMonitors:
    """Every model version's monitor (module docstring)."""

    monitors: dict[str, PredictionMonitor] = field(default_factory=dict)
    detections: int = 0

    def judge(self, metrics: WindowMetrics, config: MonitorConfig | None) -> list[Alert]:
        limits = config.metrics if config else MetricSettings()
        if metrics.count < limits.min_count:
            return []
        monitor = self.monitors.get(metrics.key)
        if monitor is None or monitor.kind != limits.prediction_drift:
            monitor = new_monitor(limits)
            if monitor is None:
                self.monitors.pop(metrics.key, None)
                return []
            self.monitors[metrics.key] = monitor
        watched = window_statistic(metrics, monitor)
        if watched is None or not math.isfinite(watched[1]):
            return []
        baseline = _baseline(monitor.detector)  # before the update: a detection resets the detector
        monitor.windows += 1
        if not monitor.detector.update(watched[1]).drift_detected:
            return []
        self.detections += 1
        name, value = watched
        windows, monitor.windows = monitor.windows, 0
        against = (
            f"against {baseline[0]:.4g} ± {baseline[1]:.2g} (mean ± sd of the warm-up windows)" if baseline else ""
        )
        return [
            Alert(
                alert_id=prediction_drift_alert_id(metrics.model, metrics.model_version, metrics.window_start),
                kind="prediction_drift",
                model=metrics.model,
                model_version=metrics.model_version,
                metric=name,
                value=value,
                window_start=metrics.window_start,
                window_end=metrics.window_end,
                count=metrics.count,
                channel=config.alerts.slack_channel if config else None,
                text=(
                    f":chart_with_upwards_trend: driftline: the predictions of model *{metrics.model}* version "
                    f"*{metrics.model_version}* changed: {name} {value:.4g} in window "
                    f"{metrics.window_start.isoformat()} → {metrics.window_end.isoformat()} ({metrics.count} events) "
                    f"{against}; the online {monitor.kind.upper()} detector found a sustained shift after "
                    f"{windows} window(s). It watches again from here."
                ),
            )
        ]

    def state(self) -> dict[str, dict[str, Any]]:
        return {key: self.monitors[key].state() for key in sorted(self.monitors)}

    def restore(self, state: dict[str, dict[str, Any]]) -> None:
        self.monitors = {key: PredictionMonitor.from_state(saved) for key, saved in state.items()}


def _baseline(detector: DriftDetector) -> tuple[float, float] | None:
    if isinstance(detector, Cusum) and detector.n >= 2:
        return detector.mean, math.sqrt(detector.m2 / (detector.n - 1))
    return None
