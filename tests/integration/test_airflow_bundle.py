"""Airflow finds driftline's DAGs where driftline is installed, beside a team's own DAGs folder, through the DAG
bundle list `driftline airflow-bundle` prints: no file copied, the team's DAGs folder left as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import driftline.dags

pytestmark = pytest.mark.integration

TEAM_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="team_own_dag", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def team_own_dag():
    @task
    def hello() -> None:
        print("hello")

    hello()


team_own_dag()
"""


def command(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_airflow_lists_driftlines_dags_from_the_installed_package_beside_the_teams_own(tmp_path):
    team_dags = tmp_path / "team-dags"
    team_dags.mkdir()
    (team_dags / "team_dag.py").write_text(TEAM_DAG)
    bundles = subprocess.run(
        [command("driftline"), "airflow-bundle"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(team_dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": bundles,
    }

    def airflow(*args: str) -> str:
        done = subprocess.run(
            [command("airflow"), *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    airflow("db", "migrate")
    airflow("dags", "reserialize")
    listed = {dag["dag_id"]: dag for dag in json.loads(airflow("dags", "list", "-o", "json").splitlines()[-1])}
    package = Path(driftline.dags.__file__).parent
    assert sorted(listed) == [
        "driftline_deploy",
        "driftline_drift",
        "driftline_ingest",
        "driftline_retrain",
        "team_own_dag",
    ]
    assert {listed[d]["bundle_name"] for d in listed if d.startswith("driftline_")} == {"driftline"}
    assert all(Path(listed[d]["fileloc"]).parent == package for d in listed if d.startswith("driftline_"))
    assert listed["team_own_dag"]["bundle_name"] == "dags-folder"
    assert sorted(path.name for path in team_dags.iterdir()) == ["team_dag.py"]  # nothing copied there
