"""Retrain → validate → deploy (blue/green) for one model."""

from __future__ import annotations

import hashlib
import importlib
import logging
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from driftline.dags.tasks import deploy
from driftline.dags.tasks.ingest import read_recent_events
from driftline.schemas import layout
from driftline.schemas.config import MonitorConfig
from driftline.schemas.storage import Storage

log = logging.getLogger(__name__)


class RetrainError(RuntimeError):
    pass


def load_entry_point(spec: str) -> Callable[..., Any]:
    module_name, _, function_name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise RetrainError(
            f"retrain.entry_point {spec!r} cannot be loaded ({exc}); "
            "it must name an importable 'package.module:function'"
        ) from None


def training_frame(storage: Storage, config: MonitorConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Recent predictions joined to their labels on request id: (features, labels)."""
    predictions = read_recent_events(storage, "predictions", config.model, config.retrain.window)
    labels = read_recent_events(storage, "labels", config.model, config.retrain.window)
    if predictions.empty or labels.empty:
        raise RetrainError(
            f"model {config.model!r}: need stored predictions and labels to retrain "
            f"(have {len(predictions)} predictions, {len(labels)} labels)"
        )
    since = predictions["event_time"].max() - config.retrain.window
    recent = predictions[predictions["event_time"] > since].drop_duplicates("request_id")
    label_column = "label" if labels["label"].notna().any() else "label_class"
    joined = recent.merge(
        labels.drop_duplicates("request_id")[["request_id", label_column]], on="request_id", how="inner"
    )
    if len(joined) < config.retrain.min_rows:
        raise RetrainError(
            f"model {config.model!r}: only {len(joined)} labelled rows in the last "
            f"{config.retrain.window}; retrain.min_rows is {config.retrain.min_rows}"
        )
    feature_columns = sorted(c for c in joined.columns if c.startswith("features."))
    features = joined[feature_columns].rename(columns=lambda c: c.removeprefix("features."))
    features.index = joined["request_id"].to_numpy()
    return features, pd.Series(joined[label_column].to_numpy(), index=features.index, name="label")


def _is_holdout(request_id: str) -> bool:
    # Deterministic 20 % holdout: a retry splits the same way.
    return hashlib.sha256(request_id.encode()).digest()[0] < 52


def accuracy(model: Any, features: pd.DataFrame, labels: pd.Series) -> float:
    predicted = np.asarray(model.predict(features))
    return float(np.mean(predicted == labels.to_numpy()))


def load_model(storage: Storage, model: str, version: str) -> Any:
    with storage.fs.open(storage.path(f"{layout.model_version_dir(model, version)}/model.pkl"), "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - models are written by driftline itself


def store_model(storage: Storage, model_name: str, version: str, model: Any, metadata: dict[str, Any]) -> None:
    folder = layout.model_version_dir(model_name, version)
    storage.write_bytes(f"{folder}/model.pkl", pickle.dumps(model))
    storage.write_json(f"{folder}/metadata.json", {"model": model_name, "version": version, **metadata})


def run_retrain(storage: Storage, config: MonitorConfig, *, force: bool = False) -> dict[str, Any]:
    """Retrain if requested (or ``force``), validate on a holdout against the serving version, deploy."""
    request_path = layout.retrain_request(config.model)
    request = storage.read_json(request_path) if storage.exists(request_path) else None
    if request is None and not force:
        return {"model": config.model, "status": "skipped", "reason": "no retrain request"}
    if not config.retrain.entry_point:
        raise RetrainError(f"model {config.model!r} has no retrain.entry_point in its monitor config")
    train = load_entry_point(config.retrain.entry_point)
    features, labels = training_frame(storage, config)
    holdout = np.array([_is_holdout(r) for r in features.index])
    new_model = train(features[~holdout], labels[~holdout], config)
    new_accuracy = accuracy(new_model, features[holdout], labels[holdout])
    manifest = deploy.read_manifest(storage, config.model)
    serving_accuracy = None
    if manifest is not None:
        serving_accuracy = accuracy(
            load_model(storage, config.model, manifest["serving"]), features[holdout], labels[holdout]
        )
    version = deploy.next_version(storage, config.model)
    store_model(
        storage,
        config.model,
        version,
        new_model,
        {
            "trained_at": datetime.now(UTC).isoformat(),
            "training_rows": int((~holdout).sum()),
            "holdout_rows": int(holdout.sum()),
            "holdout_accuracy": new_accuracy,
            "serving_version": manifest["serving"] if manifest else None,
            "serving_holdout_accuracy": serving_accuracy,
            "reason": (request or {}).get("reason", "manual"),
        },
    )
    outcome = {
        "model": config.model,
        "version": version,
        "holdout_accuracy": new_accuracy,
        "serving_holdout_accuracy": serving_accuracy,
        "holdout_rows": int(holdout.sum()),
    }
    if serving_accuracy is not None and new_accuracy < serving_accuracy - config.retrain.max_accuracy_drop:
        outcome.update(
            status="rejected",
            serving=manifest["serving"] if manifest else None,
            reason=f"holdout accuracy {new_accuracy:.4f} < serving {serving_accuracy:.4f}",
        )
    else:
        manifest = deploy.switch(
            storage,
            config.model,
            version,
            reason=(request or {}).get("reason", "manual retrain"),
            strategy=config.deployment.strategy,
        )
        outcome.update(status="deployed", serving=manifest["serving"], previous=manifest["previous"])
    storage.remove(request_path)
    return outcome
