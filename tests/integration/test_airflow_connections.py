"""Configuration the Airflow way: a real DAG run configured only by Airflow Connections and Variables."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from driftline.infra import demo_model
from driftline.infra.local_stack import airflow_environment
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state
from driftline.streams.producer import DriftlineProducer

pytestmark = pytest.mark.integration
HOUR = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def airflow(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), *args], env=env, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return completed.stdout


CONNECTIONS = ("driftline_kafka", "driftline_s3", "driftline_slack")
VARIABLES = ("driftline_storage_url", "driftline_config_dir", "driftline_topic_prefix", "driftline_fast_group_timeouts")


@pytest.fixture
def clean_airflow_config(airflow_home):
    """The session's Airflow database shared by every test: the Connections and Variables set here override the
    environment of the other tests' runs, so they are removed again whatever happens (in one transaction on the
    metadata database: an `airflow ... delete` per name started Airflow's CLI six times, 15 s)."""
    env = {**os.environ, **airflow_environment(airflow_home)}
    yield env
    with closing(sqlite3.connect(airflow_home / "airflow.db", timeout=60)) as db, db:
        db.executemany("delete from connection where conn_id = ?", [(conn_id,) for conn_id in CONNECTIONS])
        db.executemany("delete from variable where key = ?", [(name,) for name in VARIABLES])


def test_a_run_configured_by_connections_and_variables_needs_no_driftline_environment(
    driftline_env, s3_bucket, s3_server, slack, airflow_home, clean_airflow_config, tmp_path
):
    settings = Settings.from_env()  # this test process publishes with the environment the fixtures set
    storage = Storage.from_settings(replace(settings, storage_url=f"s3://{s3_bucket}/s"))
    rng = np.random.default_rng(11)
    reference = demo_model.sample_features(3000, rng)
    buffer = io.BytesIO()
    reference.to_parquet(buffer)
    storage.write_bytes("reference.parquet", buffer.getvalue())
    configs = tmp_path / "models"
    configs.mkdir()
    (configs / "churn.yaml").write_text(
        f"model: churn\nreference: s3://{s3_bucket}/s/reference.parquet\ndrift: {{window: 1h, min_rows: 100}}\n"
    )
    with DriftlineProducer.from_settings(settings) as producer:
        shifted = demo_model.sample_features(600, rng, shifted=True)
        for i, features in enumerate(shifted.to_dict(orient="records")):
            producer.log_prediction(
                model="churn",
                model_version="v1",
                request_id=f"r{i}",
                features=features,
                prediction=0.5,
                latency_ms=10.0,
                event_time=HOUR + timedelta(seconds=5 * i),
            )
        assert producer.flush(30) == 0

    # A clean environment: no DRIFTLINE_* and no AWS_* variable; only what Airflow itself needs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "AWS_"))}
    env.update(airflow_environment(airflow_home))
    host, port = settings.bootstrap_servers.rsplit(":", 1)
    kafka_extra = {"security.protocol": "PLAINTEXT", "client.id": "driftline-airflow"}
    # Stored in the metadata database by Airflow's CLI, one import for the Connections and one for the Variables
    # (an `airflow ... add` per name started the CLI seven times, 18 s).
    connections = {
        "driftline_kafka": {"conn_type": "generic", "host": host, "port": int(port), "extra": kafka_extra},
        "driftline_s3": {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing-secret-42",
            "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
        },
        "driftline_slack": {
            "conn_type": "generic",
            "password": "xoxb-connection-token",
            "extra": {"channel": "#from-connection", "base_url": slack.base_url},
        },
    }
    connections_file = tmp_path / "connections.json"
    connections_file.write_text(
        json.dumps({conn_id: {**c, "extra": json.dumps(c["extra"])} for conn_id, c in connections.items()})
    )
    imported = airflow(env, "connections", "import", str(connections_file))
    assert [line for line in imported.splitlines() if line.startswith("Imported connection")] == [
        f"Imported connection {conn_id}" for conn_id in CONNECTIONS
    ], imported
    variables_file = tmp_path / "variables.json"
    variables_file.write_text(
        json.dumps(
            {
                "driftline_storage_url": f"s3://{s3_bucket}/s",
                "driftline_config_dir": str(configs),
                "driftline_topic_prefix": settings.topic_prefix,
                "driftline_fast_group_timeouts": "1",
            }
        )
    )
    imported = airflow(env, "variables", "import", str(variables_file))
    assert f"{len(VARIABLES)} of {len(VARIABLES)} variables successfully updated" in imported, imported

    def dag_test(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "driftline.infra.cli", "dag-test", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    ingest = dag_test("driftline_ingest")
    assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]
    drift = dag_test("driftline_drift", "--logical-date", (HOUR + timedelta(hours=1)).isoformat())
    output = drift.stdout + drift.stderr
    assert drift.returncode == 0, output[-3000:]

    [path] = state.drift_reports(storage, "churn")
    report = state.read_drift_report(storage, path).to_jsonable()
    assert report["current_rows"] == 600 and set(report["drifted_features"]) >= {"x0", "x3"}
    [message] = slack.messages()
    assert message["channel"] == "#from-connection" and message["auth"] == "Bearer xoxb-connection-token"
    for secret in ("testing-secret-42", "xoxb-connection-token"):  # masked in logs; never in a report
        assert secret not in ingest.stdout + ingest.stderr + output
        assert secret not in json.dumps(report)
