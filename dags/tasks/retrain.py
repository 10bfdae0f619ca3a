"""Retrain → validate → deploy (blue/green) for one model."""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from driftline.dags.tasks.drift import announce_quarantined
from driftline.schemas.config import MonitorConfig
from driftline.schemas.errors import UserError
from driftline.schemas.records import RetrainRequest
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state
from driftline.schemas.storage import models as model_store
from driftline.schemas.storage.events import feature_columns, label_column, read_window_events
from driftline.streams.alerts import outbox
from driftline.streams.alerts.delivery import AlertDeliveryError
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts import store as rollout_store

log = logging.getLogger(__name__)


class RetrainError(UserError):
    pass


def load_entry_point(spec: str) -> Callable[..., Any]:
    module_name, _, function_name = spec.partition(":")
    try:
        function: Callable[..., Any] = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise RetrainError(
            f"retrain.entry_point {spec!r} cannot be loaded ({exc}); "
            "it must name an importable 'package.module:function'"
        ) from None
    return function


def training_window(request: RetrainRequest | None, config: MonitorConfig, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` of the predictions to train on: the ``retrain.window`` ending with the drift window that
    requested the retrain (so a retrain run late, or again, trains on the same rows), or ending now for a
    retrain by hand. Pure."""
    end = request.window_end if request is not None and request.window_end is not None else now
    return end - config.retrain.window, end


def training_frame(
    storage: Storage, config: MonitorConfig, window: tuple[datetime, datetime], *, min_rows: int | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """The window's predictions joined to their labels on request id: (features, labels).

    Labels come after their predictions, sometimes long after: every label stored from the window's start
    until now is joined (files of events stamped in the future are not read)."""
    start, end = window
    now = datetime.now(UTC)
    predictions, skipped = read_window_events(storage, "predictions", config.model, start, end)
    labels, skipped_labels = read_window_events(storage, "labels", config.model, start, max(end, now))
    announce_quarantined(storage, config, skipped + skipped_labels)  # delivered at the end of the run
    if predictions.empty or labels.empty:
        raise RetrainError(
            f"model {config.model!r}: need stored predictions and labels in [{start.isoformat()}, "
            f"{end.isoformat()}) to retrain (have {len(predictions)} predictions, {len(labels)} labels)"
        )
    recent = predictions.drop_duplicates("request_id")
    labels_in = label_column(labels)
    joined = recent.merge(labels.drop_duplicates("request_id")[["request_id", labels_in]], on="request_id", how="inner")
    if len(joined) < (config.retrain.min_rows if min_rows is None else min_rows):
        raise RetrainError(
            f"model {config.model!r}: only {len(joined)} labelled rows in [{start.isoformat()}, "
            f"{end.isoformat()}); retrain.min_rows is {config.retrain.min_rows}"
        )
    features = feature_columns(joined)
    features.index = joined["request_id"].to_numpy()
    return features, pd.Series(joined[labels_in].to_numpy(), index=features.index, name="label")


def _is_holdout(request_id: str) -> bool:
    # Deterministic 20 % holdout: a retry splits the same way.
    return hashlib.sha256(request_id.encode()).digest()[0] < 52


def accuracy(model: Any, features: pd.DataFrame, labels: pd.Series) -> float:
    predicted = np.asarray(model.predict(features))
    return float(np.mean(predicted == labels.to_numpy()))


# The metric a retrained version must not lose on, per task, and whether higher is better.
PRIMARY = {"classification": ("accuracy", True), "regression": ("mae", False)}


def validation_metrics(model: Any, features: pd.DataFrame, labels: pd.Series, task: str) -> dict[str, float]:
    """Every metric of ``task`` for ``model`` on these rows (detectors.performance; ROC AUC and log loss when the
    model gives probabilities); empty without rows."""
    from driftline.detectors.performance import evaluate

    if features.empty:
        return {}
    predicted = np.asarray(model.predict(features))
    scores = None
    if task == "classification" and hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(features))
        scores = probabilities[:, 1] if probabilities.ndim == 2 else probabilities
    estimates = evaluate(labels.to_numpy(), predicted, scores, task=task, n_bootstrap=1)  # type: ignore[arg-type]
    return {name: round(float(e.value), 6) for name, e in estimates.items()}


def worse(new: dict[str, float], serving: dict[str, float], task: str, tolerance: float) -> str | None:
    """Why the new version may not serve (its primary metric worse than the serving one's beyond ``tolerance``:
    accuracy points for classification, a relative MAE increase for regression); ``None`` when it may."""
    metric, higher = PRIMARY[task]
    if metric not in new or metric not in serving:
        return None
    if higher and new[metric] < serving[metric] - tolerance:
        return f"holdout {metric} {new[metric]:.4f} < serving {serving[metric]:.4f}"
    if not higher and new[metric] > serving[metric] * (1 + tolerance):
        return f"holdout {metric} {new[metric]:.4f} > serving {serving[metric]:.4f}"
    return None


def production_frame(
    storage: Storage, config: MonitorConfig, trained_on: set[str], now: datetime
) -> tuple[tuple[datetime, datetime], pd.DataFrame, pd.Series]:
    """The most recent production window (one ``drift.window`` ending now): its labelled predictions not trained
    on, for comparing the new and the serving version on what production sends now."""
    window = (now - config.drift.window, now)
    try:
        features, labels = training_frame(storage, config, window, min_rows=1)
    except RetrainError:
        return window, pd.DataFrame(), pd.Series(dtype=float)
    fresh = ~features.index.isin(list(trained_on))
    return window, features[fresh], labels[fresh]


def refuse_artifact(
    settings: Settings, storage: Storage, model: str, error: model_store.ArtifactIntegrityError
) -> None:
    """Alert that a stored artifact was refused (once per model and message), then deliver the outbox."""
    outbox.queue_occurrence_alert(
        storage, kind="artifact", model=model, key=str(error), text=f":no_entry: driftline: model *{model}* — {error}"
    )
    outbox.deliver_pending_alerts(settings, storage)


def run_retrain(settings: Settings, storage: Storage, config: MonitorConfig, *, force: bool = False) -> dict[str, Any]:
    """Retrain if requested (or ``force``), validate on a holdout against the serving version, deploy.

    New versions are signed with ``settings.model_signing_key`` (when set) and the serving version must then carry
    a valid signature; a refused artifact is alerted at once and fails the run."""
    signing_key = settings.model_signing_key
    request = state.read_retrain_request(storage, config.model)
    if request is None and not force:
        return {"model": config.model, "status": "skipped", "reason": "no retrain request"}
    if not config.retrain.entry_point:
        raise RetrainError(f"model {config.model!r} has no retrain.entry_point in its monitor config")
    train = load_entry_point(config.retrain.entry_point)
    window = training_window(request, config, datetime.now(UTC))
    features, labels = training_frame(storage, config, window)
    holdout = np.array([_is_holdout(r) for r in features.index])
    new_model = train(features[~holdout], labels[~holdout], config)
    task = config.performance.task
    new_accuracy = accuracy(new_model, features[holdout], labels[holdout]) if task == "classification" else None
    new_metrics = validation_metrics(new_model, features[holdout], labels[holdout], task)
    serving = model_store.read_deployment_state(storage, config.model)
    serving_accuracy, serving_model, serving_metrics = None, None, {}
    if serving is not None:
        try:
            serving_model = model_store.load_model(storage, config.model, serving.serving, signing_key=signing_key)
        except model_store.ArtifactIntegrityError as exc:
            refuse_artifact(settings, storage, config.model, exc)
            raise
        if task == "classification":
            serving_accuracy = accuracy(serving_model, features[holdout], labels[holdout])
        serving_metrics = validation_metrics(serving_model, features[holdout], labels[holdout], task)
    trained_on = set(features.index[~holdout])
    production, recent_features, recent_labels = production_frame(storage, config, trained_on, datetime.now(UTC))
    version = model_store.next_version(storage, config.model)
    reason = request.reason if request else "manual retrain"
    model_store.save_model(
        storage,
        new_model,
        name=config.model,
        version=version,
        signing_key=signing_key,
        reason=reason,
        training_rows=int((~holdout).sum()),
        training_window_start=window[0],
        training_window_end=window[1],
        holdout_rows=int(holdout.sum()),
        holdout_accuracy=new_accuracy,
        serving_version=serving.serving if serving else None,
        serving_holdout_accuracy=serving_accuracy,
        task=task,
        reference=config.reference,
        holdout_metrics=new_metrics,
        serving_holdout_metrics=serving_metrics,
        production_window_start=production[0],
        production_window_end=production[1],
        production_rows=len(recent_labels),
        production_metrics=validation_metrics(new_model, recent_features, recent_labels, task),
        serving_production_metrics=validation_metrics(serving_model, recent_features, recent_labels, task)
        if serving_model is not None
        else {},
    )
    outcome: dict[str, Any] = {
        "model": config.model,
        "version": version,
        "holdout_accuracy": new_accuracy,
        "serving_holdout_accuracy": serving_accuracy,
        "holdout_metrics": new_metrics,
        "serving_holdout_metrics": serving_metrics,
        "holdout_rows": int(holdout.sum()),
        "training_window": [window[0].isoformat(), window[1].isoformat()],
    }
    refused = worse(new_metrics, serving_metrics, task, config.retrain.max_accuracy_drop) if serving else None
    if refused:
        outcome.update(status="rejected", serving=serving.serving if serving else None, reason=refused)
    else:
        outcome.update(_roll_out(storage, config, version, reason, settings))
    if request is not None:
        state.remove_retrain_request_if_unchanged(storage, request)
    try:  # e.g. files the training read moved to quarantine; Slack down leaves them queued
        outcome["alerts_delivered"] = outbox.deliver_pending_alerts(settings, storage)
    except AlertDeliveryError as exc:
        log.warning("alerts stay queued for the next drift check: %s", exc)
    return outcome


def _roll_out(storage: Storage, config: MonitorConfig, version: str, reason: str, settings: Settings) -> dict[str, Any]:
    """Start the configured rollout of the new version (blue/green by default: it serves at once), stored and
    published on the deployments topic for the routers."""
    from driftline.streams.rollouts.publisher import DeploymentPublisher

    publish = DeploymentPublisher(settings, timeout=5.0)
    before = model_store.read_deployment_state(storage, config.model)
    try:
        state = rollout_store.start_rollout(
            storage,
            config.model,
            version,
            config.deployment,
            reason=reason,
            signing_key=settings.model_signing_key,
            publish=publish,
        )
    except rollout.DeployError as exc:  # a rollout in progress: this version waits for it to end
        return {"status": "not_deployed", "reason": str(exc)}
    rollout_store.announce(settings, storage, before, state, config.alerts.slack_channel)
    if state.status == "promoted":
        return {"status": "deployed", "serving": state.serving, "previous": state.previous}
    return {
        "status": "rolling_out",
        "serving": state.serving,
        "candidate": state.candidate,
        "strategy": state.strategy,
        "shares": state.shares(),
    }
