"""`driftline doctor` against the real parts: the embedded broker, S3 over HTTP, a Slack endpoint, Airflow's DagBag;
and the one-line errors a user meets when one of them is wrong."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from driftline.infra.local_stack import airflow_environment

pytestmark = pytest.mark.integration


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline.infra.cli", "doctor", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env or {**os.environ},
        timeout=240,
    )


def lines(output: str) -> dict[str, list[str]]:
    """Each check's lines, by check name (the second column)."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] in {"ok", "warn", "FAIL"}:
            found.setdefault(parts[1], []).append(f"{parts[0]} {parts[2]}")
    return found


@pytest.fixture
def deployment(driftline_env, s3_bucket, slack, airflow_home, tmp_path, monkeypatch):
    for key, value in airflow_environment(airflow_home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DRIFTLINE_STORAGE_URL", f"s3://{s3_bucket}/store")
    reference = tmp_path / "reference.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]}).to_parquet(reference)
    configs = tmp_path / "models"
    configs.mkdir()
    (configs / "churn.yaml").write_text(f"model: churn\nreference: {reference}\n")
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(configs))
    return configs, slack


def test_a_healthy_deployment_passes_every_check(deployment):
    _, slack = deployment
    result = doctor("--send-test-alert")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    found = lines(result.stdout)
    assert found["broker"][0].startswith("ok ") and "all 8 topics" in found["broker"][0]
    assert found["storage"][0].startswith("ok s3://") and "write, read and remove work" in found["storage"][0]
    assert found["slack"] == ["ok a test message was delivered"]
    assert slack.texts() == ["driftline doctor: a test message; alerts will arrive here."]
    assert found["config"] == ["ok churn.yaml: model 'churn', reference readable"]
    import driftline.dags

    folder = os.path.dirname(driftline.dags.__file__)
    assert found["airflow"][0] == f"ok the 4 driftline DAGs import cleanly from {folder}"
    assert result.stdout.strip().splitlines()[-1].startswith("doctor: checks=")
    assert "failed=0" in result.stdout


def test_each_mistake_is_one_line_naming_what_and_what_would_be_right(deployment, tmp_path):
    configs, _ = deployment
    (configs / "fraud.yaml").write_text(
        f"model: fraud\nreference: {tmp_path}/missing.parquet\nretrain: {{entry_point: 'nosuchpkg.train:fit'}}\n"
    )
    (configs / "broken.yaml").write_text("model: ../escape\nreference: r.parquet\n")
    (configs / "churn2.yaml").write_text((configs / "churn.yaml").read_text())
    env = {**os.environ, "DRIFTLINE_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    result = doctor("--only", "broker", "--only", "storage", "--only", "config", env=env)
    assert result.returncode == 1
    found = lines(result.stdout)
    [broker] = found["broker"]
    assert broker.startswith("FAIL cannot reach the broker at 127.0.0.1:1 within 5 s")
    assert "check DRIFTLINE_BOOTSTRAP_SERVERS" in broker
    [storage] = found["storage"]
    assert storage.startswith("FAIL storage s3://") and "S3 has no usable credentials" in storage
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in storage
    config = found["config"]
    assert any(line.startswith("FAIL ") and "broken.yaml" in line and "'model'" in line for line in config)
    fraud = [line for line in config if "fraud.yaml" in line]
    assert len(fraud) == 2
    assert f"reference: {tmp_path}/missing.parquet does not exist" in fraud[0]
    assert "retrain.entry_point 'nosuchpkg.train:fit': cannot import 'nosuchpkg.train'" in fraud[1]
    assert (
        f"FAIL model 'churn' is configured in both churn.yaml and churn2.yaml in {configs}; keep one file per model"
        in config
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_broken_configs_fail_their_own_models_at_once_with_one_line_and_the_others_are_checked(
    driftline_env, airflow_home, slack, tmp_path, monkeypatch
):
    """A real drift DAG run with three configs: one names a reference that is gone, one is not valid YAML, one is
    good and has stored events. The good model is checked; each broken one fails its own task, without retries,
    and each failure is a Slack message (through slack-sdk to the local endpoint)."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from driftline.schemas.events import PredictionEvent
    from driftline.schemas.settings import Settings
    from driftline.schemas.storage import Storage, events, state

    for key, value in airflow_environment(airflow_home).items():
        monkeypatch.setenv(key, value)
    configs = tmp_path / "models"
    configs.mkdir()
    (configs / "churn.yaml").write_text(f"model: churn\nreference: {tmp_path}/gone.parquet\n")
    (configs / "broken.yaml").write_text("model: broken\nreference: [unclosed\n")
    rng = np.random.default_rng(5)
    reference = tmp_path / "fraud.parquet"
    pd.DataFrame({"x": rng.normal(0, 1, 2000)}).to_parquet(reference)
    (configs / "fraud.yaml").write_text(f"model: fraud\nreference: {reference}\ndrift: {{min_rows: 50}}\n")
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(configs))
    storage = Storage.from_settings(Settings.from_env())
    # Three hours ago: no ingest ran in this test, and a drift run waits for ingest up to an hour after its interval.
    hour = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    rows = [
        events.event_row(
            PredictionEvent(
                model="fraud",
                model_version="v1",
                request_id=f"r{i}",
                event_time=hour + timedelta(seconds=i),
                features={"x": float(value)},
                prediction=0,
                latency_ms=1.0,
            ),
            0,
            i,
        )
        for i, value in enumerate(rng.normal(0, 1, 300))
    ]
    events.write_event_file(storage, "predictions", ("fraud", "v1", hour), ("t", 0, 0, 299), rows)

    run = subprocess.run(
        [
            *(sys.executable, "-m", "driftline.infra.cli", "dag-test", "driftline_drift"),
            *("--logical-date", (hour + timedelta(hours=1)).isoformat()),  # the interval holding the stored hour
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )

    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]  # the run failed, as two of its tasks did
    line = (
        f"model 'churn': reference: {tmp_path}/gone.parquet does not exist (No such file or directory); "
        "check the path or URL in the config; it must be the model's training data as Parquet or CSV"
    )
    assert line in output
    assert f"model 'broken.yaml': {configs}/broken.yaml: not valid YAML" in output  # no name to read: the file's
    assert "up_for_retry" not in output  # no retry can fix a config: the tasks failed for good at once
    assert "no window of this run requested a retrain" in output  # the last task ran all the same, and skipped
    [report] = state.drift_reports(storage, "fraud")  # ... and the good model was checked all the same
    assert state.read_drift_report(storage, report).current_rows == 300
    assert state.drift_reports(storage, "churn") == []
    failures = sorted(text for text in slack.texts() if text.startswith(":x: driftline: task *driftline_drift."))
    assert len(failures) == 2, slack.texts()
    assert "*driftline_drift.check_model[broken.yaml]* failed for good after 1 try" in failures[0]
    assert "AirflowFailException: model 'broken.yaml':" in failures[0]
    assert "*driftline_drift.check_model[churn]* failed for good after 1 try" in failures[1]
    assert line in failures[1] and "\nLog: http" in failures[1]
