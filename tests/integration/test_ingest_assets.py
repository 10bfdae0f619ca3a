"""Only real changes trigger work: an ingest DAG run emits its stored-events Asset event only when it stored rows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from driftline.infra.local_stack import airflow_environment
from driftline.schemas.settings import Settings
from driftline.streams.producer import DriftlineProducer

pytestmark = pytest.mark.integration


def stored_events_asset_events(airflow_home) -> int:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (count,) = db.execute(
            "select count(*) from asset_event e join asset a on a.id = e.asset_id "
            "where a.name = 'driftline_stored_events'"
        ).fetchone()
    return int(count)


def ingest() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline.infra.cli", "dag-test", "driftline_ingest"],
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ},
        timeout=300,
    )


def test_an_ingest_that_stored_nothing_emits_no_asset_event_and_one_that_stored_rows_does(
    driftline_env, airflow_home, monkeypatch
):
    for key, value in airflow_environment(airflow_home).items():
        monkeypatch.setenv(key, value)
    before = stored_events_asset_events(airflow_home)

    empty = ingest()
    assert empty.returncode == 0, empty.stdout[-3000:] + empty.stderr[-3000:]
    assert "no new rows on" in empty.stdout + empty.stderr
    assert stored_events_asset_events(airflow_home) == before  # both tasks skipped: no drift run is started

    with DriftlineProducer.from_settings(Settings.from_env()) as producer:
        for i in range(20):
            producer.log_prediction(model="churn", model_version="v1", features={"x": i}, prediction=0, latency_ms=1.0)
    stored = ingest()
    assert stored.returncode == 0, stored.stdout[-3000:] + stored.stderr[-3000:]
    assert stored_events_asset_events(airflow_home) == before + 1  # predictions stored; labels skipped
