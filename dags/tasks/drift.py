"""The drift check of one model: latest window on storage vs the training reference."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from driftline.detectors import build_drift_report, infer_feature_types
from driftline.schemas import layout
from driftline.schemas.config import MonitorConfig
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.streams.alerts import deliver_with_retry, format_drift_alert, notifier_from_settings
from driftline.dags.tasks.ingest import read_events

log = logging.getLogger(__name__)


def load_table(url: str, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """A Parquet or CSV file (local path or fsspec URL) as a DataFrame."""
    lowered = url.lower()
    if lowered.endswith((".parquet", ".pq")):
        return pd.read_parquet(url, storage_options=storage_options or None)
    if lowered.endswith((".csv", ".csv.gz")):
        return pd.read_csv(url, storage_options=storage_options or None)
    raise ValueError(f"cannot read {url!r}: expected a .parquet or .csv file")


def current_window(storage: Storage, config: MonitorConfig) -> tuple[pd.DataFrame, datetime, datetime]:
    """The rows of the latest ``drift.window``, ending at the newest stored event."""
    everything = read_events(storage, "predictions", config.model)
    if everything.empty:
        raise LookupError(f"no stored predictions for model {config.model!r} under {storage.url('predictions')}; "
                          "has the ingest DAG run?")
    window_end = everything["event_time"].max()
    window_start = window_end - config.drift.window
    window = everything[everything["event_time"] > window_start].reset_index(drop=True)
    return window, window_start.to_pydatetime(), window_end.to_pydatetime()


def run_drift_check(settings: Settings, storage: Storage, config: MonitorConfig) -> dict[str, Any]:
    """Build, store and (when drifted) announce the report; request a retrain past the threshold.

    Idempotent for its window: the report, the alert and the retrain request are
    named by model and window end, and an alert already delivered is not sent again.
    """
    reference = load_table(config.reference, settings.storage_options)
    feature_types = config.features or infer_feature_types(reference, exclude=(config.label_column,))
    window, window_start, window_end = current_window(storage, config)
    current = window.rename(columns=lambda c: c.removeprefix("features."))
    report = build_drift_report(
        reference, current, feature_types, alpha=config.drift.alpha, correction=config.drift.correction,
        min_rows=config.drift.min_rows,
        metadata={
            "model": config.model,
            "model_versions": sorted(window["model_version"].unique().tolist()),
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "current_rows": len(window),
            "reference_rows": len(reference),
            "generated_at": datetime.now(timezone.utc).isoformat(),
        },
    ).to_dict()
    drifted = len(report["drifted_features"])
    report["alert"] = drifted > 0 and report["share_drifted"] > config.drift.alert_share
    report["retrain_requested"] = bool(drifted > 0 and report["share_drifted"] >= config.drift.retrain_share
                                       and config.retrain.entry_point)
    report_path = layout.drift_report(config.model, window_end)
    storage.write_json(report_path, report)
    report["report_url"] = storage.url(report_path)
    if report["retrain_requested"]:
        storage.write_json(layout.retrain_request(config.model), {
            "model": config.model, "reason": f"{drifted} drifted features: {', '.join(report['drifted_features'])}",
            "report": report["report_url"], "requested_at": datetime.now(timezone.utc).isoformat()})
    if report["alert"]:
        alert_id = f"drift-{config.model}-{window_end:%Y%m%dT%H%M%SZ}"
        if not storage.exists(layout.alert_outbox("sent", alert_id)):
            storage.write_json(layout.alert_outbox("pending", alert_id), {
                "alert_id": alert_id, "channel": config.alerts.slack_channel,
                "text": format_drift_alert(report, report["report_url"])})
    report["alerts_delivered"] = deliver_pending_alerts(settings, storage)
    return report


def deliver_pending_alerts(settings: Settings, storage: Storage, max_attempts: int = 3) -> list[str]:
    """Send every alert in the outbox; one still failing stays pending and the error propagates
    (the Airflow task retries, and the next run sends it too)."""
    notifier = notifier_from_settings(settings)
    delivered = []
    for relative in storage.list("alerts/pending"):
        alert = storage.read_json(relative)
        deliver_with_retry(notifier, alert["text"], alert.get("channel"), max_attempts=max_attempts)
        storage.write_json(layout.alert_outbox("sent", alert["alert_id"]), alert)
        storage.remove(relative)
        delivered.append(alert["alert_id"])
    return delivered
