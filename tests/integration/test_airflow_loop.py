"""Real Airflow DAG runs over S3 storage: ingest → drift (Slack) → retrain → blue/green deploy → rollback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.infra import demo_model
from driftline.infra.airflow_services import AirflowServices
from driftline.schemas.records import Alert
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state
from driftline.schemas.storage import models as model_store
from driftline.schemas.storage.events import read_events
from driftline.streams.alerts.delivery import AlertDeliveryError
from driftline.streams.alerts.outbox import deliver_pending_alerts
from driftline.streams.producer import DriftlineProducer
from driftline.streams.rollouts import store as rollout_store
from tests.integration.conftest import AirflowOnPostgres

pytestmark = pytest.mark.integration
# Yesterday 08:00: ingest refuses events older than DRIFTLINE_MAX_EVENT_AGE_SECONDS (7 days) at receipt.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
ROWS_PER_HOUR = 1500


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "driftline.infra.cli", *args],
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ},
        timeout=240,
    )


@pytest.fixture
def loop_env(driftline_env, s3_bucket, slack, airflow_on_postgres, tmp_path, monkeypatch):
    for key, value in airflow_on_postgres.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DRIFTLINE_STORAGE_URL", f"s3://{s3_bucket}/store")
    settings = Settings.from_env()
    storage = Storage.from_settings(settings)
    rng = np.random.default_rng(2026)
    training = demo_model.sample_features(4000, rng)
    training["label"] = demo_model.true_labels(training, rng)
    buffer = io.BytesIO()
    training.to_parquet(buffer)
    storage.write_bytes("reference/churn.parquet", buffer.getvalue())  # the user's training data, not driftline's
    v1 = demo_model.train(training[demo_model.FEATURES], training["label"])
    model_store.save_model(storage, v1, name="churn", version="v1", reason="initial")
    rollout_store.switch(storage, "churn", "v1", reason="initial", signing_key=None)
    config_dir = tmp_path / "models"
    config_dir.mkdir()
    (config_dir / "churn.yaml").write_text(
        f"model: churn\nreference: s3://{s3_bucket}/store/reference/churn.parquet\n"
        "drift: {window: 1h, retrain_share: 0.2}\n"
        "retrain: {entry_point: 'driftline.infra.demo_model:train', window: 1h, min_rows: 500}\n"
    )
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(config_dir))
    return settings, storage, v1, rng


def publish_hours(
    settings: Settings, model, rng, shifted_hours: tuple[bool, ...] = (False, True), start: datetime = T0
) -> None:
    """ROWS_PER_HOUR predictions and their labels per hour from ``start``; the hours marked True are shifted."""
    with DriftlineProducer.from_settings(settings) as producer:
        for hour, shifted in enumerate(shifted_hours):
            features = demo_model.sample_features(ROWS_PER_HOUR, rng, shifted=shifted)
            labels = demo_model.true_labels(features, rng, concept_shift=shifted)
            scores = model.predict_proba(features)
            for i, record in enumerate(features.to_dict(orient="records")):
                at = start + timedelta(hours=hour, seconds=i * 3600 / ROWS_PER_HOUR)
                request_id = f"h{hour}-{i}"
                producer.log_prediction(
                    model="churn",
                    model_version="v1",
                    request_id=request_id,
                    features=record,
                    prediction=float(scores[i]),
                    latency_ms=20.0,
                    event_time=at,
                )
                producer.log_label(
                    model="churn", model_version="v1", request_id=request_id, label=int(labels[i]), event_time=at
                )
        assert producer.flush(30) == 0


def retrain_request_events(airflow: AirflowOnPostgres) -> int:
    """How many times the retrain-requests Asset was updated (each update starts a retrain run)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(airflow.database_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as db:
        count: int = db.execute(
            sqlalchemy.text(
                "SELECT count(*) FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
                "WHERE asset.name = :name"
            ),
            {"name": "driftline_retrain_requests"},
        ).scalar_one()
    engine.dispose()
    return count


def test_the_loop_through_airflow(loop_env, slack, airflow_on_postgres):
    settings, storage, v1, rng = loop_env
    requests_before = retrain_request_events(airflow_on_postgres)
    publish_hours(settings, v1, rng)

    ingest = run("dag-test", "driftline_ingest")
    assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]
    predictions = read_events(storage, "predictions", "churn")
    labels = read_events(storage, "labels", "churn")
    assert len(predictions) == len(labels) == 2 * ROWS_PER_HOUR
    assert predictions["request_id"].is_unique and labels["request_id"].is_unique

    # The unshifted hour: no drift, no retrain requested, so no retrain run is started.
    calm = run("dag-test", "driftline_drift", "--logical-date", (T0 + timedelta(hours=1)).isoformat())
    assert calm.returncode == 0, calm.stdout[-3000:] + calm.stderr[-3000:]
    assert retrain_request_events(airflow_on_postgres) == requests_before

    # A manual run triggered at T0 + 2 h checks the interval that ended then: the shifted hour, and only it.
    at = (T0 + timedelta(hours=2)).isoformat()
    drift = run("dag-test", "driftline_drift", "--logical-date", at)
    assert drift.returncode == 0, drift.stdout[-3000:] + drift.stderr[-3000:]
    [calm_path, report_path] = state.drift_reports(storage, "churn")
    assert state.read_drift_report(storage, calm_path).verdict == "no_drift"
    report = state.read_drift_report(storage, report_path).to_jsonable()
    assert (report["window_start"], report["window_end"]) == ((T0 + timedelta(hours=1)).isoformat(), at)
    assert b"<svg" in storage.read_bytes(report_path.removesuffix(".json") + ".html")
    assert report["current_rows"] == ROWS_PER_HOUR
    assert sorted(report["drifted_features"]) == ["plan", "x0", "x3"]  # exactly the shifted ones
    assert report["retrain_requested"] is True
    realized = report["performance"]["realized"]  # every prediction of the window has its label stored
    assert realized["labelled_rows"] == ROWS_PER_HOUR and 0 < realized["metrics"]["accuracy"]["value"] < 1
    assert report["performance"]["estimated"]["metric"] == "accuracy"
    [text] = slack.texts()
    assert "*churn*" in text and all(f"• {name}:" in text for name in ("plan", "x0", "x3"))
    assert "model *churn* version *v1*: 3 of " in text and "\nNext: retraining was requested" in text
    # The report on S3 is a presigned link a person opens (a button), not an s3:// path.
    blocks = slack.messages()[0]["blocks"]
    [report_link] = [b["url"] for block in blocks if block["type"] == "actions" for b in block["elements"]
                     if b["text"]["text"] == "Report"]  # fmt: skip
    assert report_link.startswith(os.environ["DRIFTLINE_S3_ENDPOINT_URL"]) and "Signature=" in report_link
    with urllib.request.urlopen(report_link, timeout=10) as page:
        assert page.status == 200 and page.read().startswith(b"<!doctype html>")
    assert "• x1:" not in text
    assert state.retrain_requested(storage, "churn")

    assert retrain_request_events(airflow_on_postgres) == requests_before + 1

    # A re-run of the same interval sends no second message and requests no second retrain.
    again = run("dag-test", "driftline_drift", "--logical-date", at)
    assert again.returncode == 0 and len(slack.texts()) == 1
    assert retrain_request_events(airflow_on_postgres) == requests_before + 1

    retrain = run("dag-test", "driftline_retrain")
    assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-3000:]
    deployed = model_store.read_deployment_state(storage, "churn")
    assert (deployed.serving, deployed.previous) == ("v2", "v1")
    metadata = model_store.read_model_version(storage, "churn", "v2")
    assert metadata.holdout_accuracy > metadata.serving_holdout_accuracy
    # Trained on the window that asked for it, not on "recent" data.
    assert (metadata.training_window_start, metadata.training_window_end) == (
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
    )
    assert model_store.load_model(storage, "churn", "v2") is not None  # its digest checks out
    # Lineage: every metric on the same holdout for both versions; the last hour of production had no labels yet.
    assert metadata.task == "classification" and metadata.reference.endswith("reference/churn.parquet")
    assert sorted(metadata.holdout_metrics) == sorted(metadata.serving_holdout_metrics)
    assert {"accuracy", "f1", "roc_auc", "log_loss"} <= set(metadata.holdout_metrics)
    assert metadata.holdout_metrics["accuracy"] == pytest.approx(metadata.holdout_accuracy, abs=1e-6)
    assert metadata.production_rows == 0 and metadata.production_metrics == {}
    assert not state.retrain_requested(storage, "churn")
    assert "stable → *promoted*" in slack.texts()[-1] and "rollout of *v2*" in slack.texts()[-1]  # announced

    rollback = run("rollback", "churn")
    assert rollback.returncode == 0, rollback.stderr
    assert "now serving v1" in rollback.stdout
    assert model_store.read_deployment_state(storage, "churn").serving == "v1"
    assert "promoted → *rolled_back*" in slack.texts()[-1] and "traffic now: v1 100%" in slack.texts()[-1]


def test_a_slack_outage_delays_drift_alerts_and_never_drops_them(s3_bucket, slack, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_STORAGE_URL", f"s3://{s3_bucket}/outbox")
    settings = Settings.from_env()
    storage = Storage.from_settings(settings)
    state.queue_alert(
        storage,
        Alert(
            alert_id="drift-churn-1", kind="drift", model="churn", window_start=T0, window_end=T0, text="drift on churn"
        ),
    )
    slack.fail_next = 100
    with pytest.raises(AlertDeliveryError, match="Slack answered HTTP 503"):
        deliver_pending_alerts(settings, storage, max_attempts=2)
    assert state.pending_alerts(storage) and slack.texts() == []
    slack.fail_next = 0
    assert deliver_pending_alerts(settings, storage) == ["drift-churn-1"]
    assert slack.texts() == ["drift on churn"]
    assert state.pending_alerts(storage) == [] and deliver_pending_alerts(settings, storage) == []


def test_a_backfill_checks_each_interval_and_a_cleared_run_rewrites_its_report_without_a_second_alert(
    loop_env, slack, airflow_on_postgres, tmp_path
):
    """Airflow's own backfill, run by its scheduler: one run per past interval, each checking its own window."""
    settings, storage, v1, rng = loop_env
    t1 = T0 - timedelta(days=1)  # intervals no other test's runs (in the session's Airflow database) have used
    publish_hours(settings, v1, rng, shifted_hours=(False, False, True), start=t1)
    ingest = run("dag-test", "driftline_ingest")
    assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]

    airflow = AirflowServices(
        airflow_on_postgres.home,
        dict(os.environ),
        tmp_path / "airflow-logs",
        database_url=airflow_on_postgres.database_url,
    )
    with airflow:
        runs = airflow.backfill("driftline_drift", t1, t1 + timedelta(hours=2))
        assert [(r.run_type, r.state) for r in runs] == [("backfill", "success")] * 3, runs
        intervals = [(r.data_interval_start, r.data_interval_end) for r in runs]
        assert intervals == [(t1 + timedelta(hours=h), t1 + timedelta(hours=h + 1)) for h in range(3)]
        reports = [
            state.read_drift_report(storage, path).to_jsonable() for path in state.drift_reports(storage, "churn")
        ]
        assert [(r["window_start"], r["window_end"]) for r in reports] == [
            (start.isoformat(), end.isoformat()) for start, end in intervals
        ]
        assert [r["current_rows"] for r in reports] == [ROWS_PER_HOUR] * 3
        assert [bool(r["drifted_features"]) for r in reports] == [False, False, True]
        [alert] = slack.texts()
        assert "*churn*" in alert
        [message] = slack.messages()  # Block Kit: severity and kind, a button to the report and the task's log
        assert message["blocks"][0]["text"]["text"] == "WARNING · data drift · churn"
        report_button, log_button = message["blocks"][3]["elements"]  # the S3 report as a presigned link
        assert report_button["text"]["text"] == "Report" and "Signature=" in report_button["url"]
        assert log_button["text"]["text"] == "Airflow task log" and log_button["url"].startswith("http")
        assert len(message["blocks"]) == 4  # no line of links that are not web addresses
        index = storage.read_bytes("reports/model=churn/index.html").decode()
        assert index.count("<tr><td><a href='drift-") == 3
        assert state.retrain_requested(storage, "churn")
        state.remove_retrain_request(storage, "churn")  # as the retrain DAG would, once it took the request

        # Clearing the drifted interval's run (the UI's Clear) checks the same rows again.
        last = state.drift_reports(storage, "churn")[-1]
        again = airflow.clear("driftline_drift", runs[-1])
        assert again.state == "success"
        rewritten = state.read_drift_report(storage, last).to_jsonable()
        assert rewritten["generated_at"] > reports[-1]["generated_at"]  # overwritten, the same name
        changed = {"generated_at", "retrain_requested", "retrain_not_requested"}
        assert {k: v for k, v in rewritten.items() if k not in changed} == {
            k: v for k, v in reports[-1].items() if k not in changed
        }
        assert (rewritten["retrain_requested"], rewritten["retrain_not_requested"]) == (False, "asked_before")
        assert len(state.drift_reports(storage, "churn")) == 3
        assert slack.texts() == [alert]  # no second alert
        assert not state.retrain_requested(storage, "churn")  # the window asked once


def test_a_person_steers_a_rollout_from_airflow_with_a_conf(loop_env, slack):
    """Real runs of the deploy DAG, as the Airflow UI's "Trigger DAG w/ config" makes them."""

    _, storage, v1, _ = loop_env
    model_store.save_model(storage, v1, name="churn", version="v2", reason="retrained")

    def deploy_run(**conf: object) -> subprocess.CompletedProcess:
        done = run("dag-test", "driftline_deploy", "--conf", json.dumps({"model": "churn", **conf}))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    deploy_run(action="start", version="v2", strategy="canary", stages=[0.1, 0.5, 1.0], reason="new features")
    state = model_store.read_deployment_state(storage, "churn")
    assert (state.status, state.shares()) == ("progressing", {"v2": 0.1, "v1": 0.9})
    deploy_run(action="advance")
    deploy_run(action="pause", reason="waiting for the weekend")
    state = model_store.read_deployment_state(storage, "churn")
    assert (state.status, state.shares()) == ("paused", {"v2": 0.5, "v1": 0.5})
    deploy_run(action="abort", reason="a partner reported wrong scores")
    state = model_store.read_deployment_state(storage, "churn")
    assert (state.status, state.serving, state.shares()) == ("aborted", "v1", {"v1": 1.0})
    assert [e.reason for e in state.history[-4:]] == [
        "start by the Airflow UI: new features",
        "advance by the Airflow UI",
        "pause by the Airflow UI: waiting for the weekend",
        "abort by the Airflow UI: a partner reported wrong scores",
    ]
    texts = slack.texts()
    assert len(texts) == 4 and "paused → *aborted*" in texts[-1] and "traffic now: v1 100%" in texts[-1]
    refused = run("dag-test", "driftline_deploy", "--conf", json.dumps({"model": "churn", "action": "promote"}))
    assert refused.returncode != 0  # nothing in progress: the run fails with the reason
    assert "no rollout in progress to promote" in refused.stdout + refused.stderr
