"""The ingest DAG, run by Airflow (``airflow dags test``): an empty topic is a successful run that stores
nothing; a run after events were published stores each of them once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from driftline.infra.local_stack import airflow_environment
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage.events import read_events
from driftline.streams.producer import DriftlineProducer

pytestmark = pytest.mark.integration


def ingest() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline.infra.cli", "dag-test", "driftline_ingest"],
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ},
        timeout=300,
    )


def test_an_ingest_run_on_an_empty_topic_succeeds_and_the_next_stores_what_was_published(
    driftline_env, airflow_home, monkeypatch
):
    for key, value in airflow_environment(airflow_home).items():
        monkeypatch.setenv(key, value)
    storage = Storage.from_settings(Settings.from_env())

    empty = ingest()
    assert empty.returncode == 0, empty.stdout[-3000:] + empty.stderr[-3000:]
    assert len(read_events(storage, "predictions", "churn")) == 0

    with DriftlineProducer.from_settings(Settings.from_env()) as producer:
        for i in range(20):
            producer.log_prediction(
                model="churn", model_version="v1", request_id=f"r{i}", features={"x": i}, prediction=0, latency_ms=1.0
            )
    stored = ingest()
    assert stored.returncode == 0, stored.stdout[-3000:] + stored.stderr[-3000:]
    assert sorted(read_events(storage, "predictions", "churn")["request_id"]) == sorted(f"r{i}" for i in range(20))
