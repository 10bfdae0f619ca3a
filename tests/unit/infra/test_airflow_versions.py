"""The verdicts of `make airflow-versions` on what Airflow printed (its runs are in the make target itself)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftline.infra.airflow_versions import (
    DAG_IDS,
    DEFAULT_VERSIONS,
    CheckFailed,
    VersionResult,
    dag_folder_verdict,
    json_output,
    write_inputs,
)
from driftline.schemas.config import load_monitor_configs
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.schemas.storage.events import read_window_events

LISTED = [{"dag_id": dag_id, "fileloc": f"/x/{dag_id}.py"} for dag_id in DAG_IDS]


def test_the_four_dags_and_no_import_error_pass():
    assert dag_folder_verdict(LISTED, []) == (4, 0, "")


def test_an_import_error_fails_the_dag_folder_with_the_file_and_the_error():
    error = {"filepath": "/site-packages/driftline/dags/driftline_drift.py", "error": "ModuleNotFoundError: nope\n"}
    dags, errors, problems = dag_folder_verdict(LISTED[:1] + LISTED[2:], [error])
    assert (dags, errors) == (3, 1)
    assert problems == (
        "driftline_drift.py: ModuleNotFoundError: nope; DAGs not found: driftline_drift "
        "(found: driftline_deploy, driftline_ingest, driftline_retrain)"
    )


def test_a_missing_dag_fails_even_without_an_import_error():
    assert dag_folder_verdict([], [])[2] == f"DAGs not found: {', '.join(DAG_IDS)} (found: none)"


def test_the_json_list_is_found_among_airflows_log_lines():
    printed = "2026-12-08T00:31:04Z [warning  ] Could not import graphviz.\n[]\n"
    assert json_output(printed) == []
    assert json_output('[info] parsing\n[{"dag_id": "a"}]\n') == [{"dag_id": "a"}]
    with pytest.raises(ValueError, match="no JSON list"):
        json_output("[error] it broke\n")


def test_one_line_per_version_says_where_it_failed():
    result = VersionResult("3.1.0", {"dags": "3", "import_errors": "1"}, install_seconds=6.2, run_seconds=14.4)
    assert result.line() == "airflow 3.1.0: dags=3 import_errors=1 (install 6 s, runs 14 s)"
    result.failure = CheckFailed("dags", "driftline_drift.py: ModuleNotFoundError")
    assert result.line() == "airflow 3.1.0: dags=3 import_errors=1 FAILED at dags (install 6 s, runs 14 s)"


def test_the_inputs_are_a_config_a_serving_model_and_an_hour_of_labelled_predictions(tmp_path):
    settings = Settings(home=str(tmp_path), storage_url=str(tmp_path / "storage"), config_dir=str(tmp_path / "models"))
    storage = Storage.from_settings(settings)
    write_inputs(settings, storage)
    [config] = load_monitor_configs(settings.config_dir).values()
    assert config.model == "churn"
    assert model_store.read_deployment_state(storage, "churn").serving == "v1"
    hour = (datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC))
    predictions, _ = read_window_events(storage, "predictions", "churn", *hour)
    labels, _ = read_window_events(storage, "labels", "churn", *hour)
    assert len(predictions) == len(labels) == 1500
    assert predictions["request_id"].is_unique and set(predictions["request_id"]) == set(labels["request_id"])


def test_the_oldest_version_checked_is_the_lower_bound_of_the_airflow_extra():
    """The claim in the metadata and the check go together: narrowing one means changing the other."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    [airflow] = [r for r in pyproject["project"]["optional-dependencies"]["airflow"] if r.startswith("apache-airflow")]
    lower, upper = airflow.removeprefix("apache-airflow").split(",")
    assert f"{lower.removeprefix('>=')}.0" == DEFAULT_VERSIONS[0] and upper == "<4"
    assert DEFAULT_VERSIONS[-1].startswith("3.")
