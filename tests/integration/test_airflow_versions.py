"""driftline[airflow] on the oldest and the newest Airflow it claims, each in a fresh environment without the worker:
`make airflow-versions` as a test (real installs from the package index, real DAG runs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from driftline.infra.airflow_versions import DEFAULT_VERSIONS

pytestmark = pytest.mark.integration
PASSED = "dags=4 import_errors=0 drift_run=success report=1 alert=1 retrain_run=success deploy_run=success"


@pytest.mark.timeout(1500)  # two environments and six DAG runs; a guard against a hang, not a measure
def test_the_dags_run_on_the_oldest_and_the_newest_airflow_claimed(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "driftline.infra.airflow_versions"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("airflow ")]
    assert [line.split(":")[0] for line in lines] == [f"airflow {version}" for version in DEFAULT_VERSIONS]
    assert all(f": {PASSED} (" in line for line in lines), lines
    assert list(tmp_path.glob("driftline-airflow-versions-*")) == []  # its environments and databases are gone
