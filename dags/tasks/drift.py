"""The drift check of one model: latest window on storage vs the training reference."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from driftline.dags.tasks.ingest import read_recent_events
from driftline.detectors import Profile, build_reference_profile, compare_profiles, window_profile
from driftline.detectors.html import render_html
from driftline.detectors.sources import read_table
from driftline.schemas import layout
from driftline.schemas.config import MonitorConfig
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.streams.alerts import deliver_with_retry, format_drift_alert, notifier_from_settings

log = logging.getLogger(__name__)


def reference_profile(settings: Settings, storage: Storage, config: MonitorConfig) -> Profile:
    """The stored profile of the training data; built (once) when missing or when the reference moved."""
    path = layout.reference_profile(config.model)
    source_path = path.replace(".npz", ".source.json")
    if (
        storage.exists(path)
        and storage.exists(source_path)
        and storage.read_json(source_path) == {"reference": config.reference}
    ):
        with storage.fs.open(storage.path(path), "rb") as handle:
            return Profile.from_bytes(handle.read())
    table = read_table(config.reference, settings.storage_options)
    profile = build_reference_profile(table, config.features, exclude=(config.label_column,))
    storage.write_bytes(path, profile.to_bytes())
    storage.write_json(source_path, {"reference": config.reference})
    return profile


def current_window(storage: Storage, config: MonitorConfig) -> tuple[pd.DataFrame, datetime, datetime]:
    """The rows of the latest ``drift.window``, ending at the newest stored event."""
    recent = read_recent_events(storage, "predictions", config.model, config.drift.window)
    if recent.empty:
        raise LookupError(
            f"no stored predictions for model {config.model!r} under {storage.url('predictions')}; "
            "has the ingest DAG run?"
        )
    window_end = recent["event_time"].max()
    window_start = window_end - config.drift.window
    window = recent[recent["event_time"] > window_start].reset_index(drop=True)
    return window, window_start.to_pydatetime(), window_end.to_pydatetime()


def run_drift_check(settings: Settings, storage: Storage, config: MonitorConfig) -> dict[str, Any]:
    """Build, store and (when drifted) announce the report; request a retrain past the threshold.

    Idempotent for its window: the report, the alert and the retrain request are
    named by model and window end, and an alert already delivered is not sent again.
    """
    reference = reference_profile(settings, storage, config)
    window, window_start, window_end = current_window(storage, config)
    feature_columns = [c for c in window.columns if c.startswith("features.")]
    current_table = pa.Table.from_pandas(
        window[feature_columns].rename(columns=lambda c: c.removeprefix("features.")), preserve_index=False
    )
    report = compare_profiles(
        reference,
        window_profile(reference, iter(current_table.to_batches())),
        alpha=config.drift.alpha,
        correction=config.drift.correction,
        min_rows=config.drift.min_rows,
        tests=config.drift.tests,
        thresholds=config.drift.thresholds,
        current_columns=current_table.column_names,
        metadata={
            "model": config.model,
            "model_versions": sorted(window["model_version"].unique().tolist()),
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "current_rows": len(window),
            "reference_rows": reference.rows,
            "generated_at": datetime.now(UTC).isoformat(),
        },
    ).to_dict()
    drifted = len(report["drifted_features"])
    report["alert"] = drifted > 0 and report["share_drifted"] > config.drift.alert_share
    report["retrain_requested"] = bool(
        drifted > 0 and report["share_drifted"] >= config.drift.retrain_share and config.retrain.entry_point
    )
    report_path = layout.drift_report(config.model, window_end)
    storage.write_json(report_path, report)
    storage.write_bytes(report_path.removesuffix(".json") + ".html", render_html(report).encode())
    report["report_url"] = storage.url(report_path)
    if report["retrain_requested"]:
        storage.write_json(
            layout.retrain_request(config.model),
            {
                "model": config.model,
                "reason": f"{drifted} drifted features: {', '.join(report['drifted_features'])}",
                "report": report["report_url"],
                "requested_at": datetime.now(UTC).isoformat(),
            },
        )
    if report["alert"]:
        alert_id = f"drift-{config.model}-{window_end:%Y%m%dT%H%M%SZ}"
        if not storage.exists(layout.alert_outbox("sent", alert_id)):
            storage.write_json(
                layout.alert_outbox("pending", alert_id),
                {
                    "alert_id": alert_id,
                    "channel": config.alerts.slack_channel,
                    "text": format_drift_alert(report, report["report_url"]),
                },
            )
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
