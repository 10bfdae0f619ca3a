"""The run order: the longest tests first.

`make test` runs the suite on two pytest-xdist workers with work stealing (``--dist worksteal``): each worker
starts on its half of the collected tests and a worker that runs out takes tests from the end of the other's
queue. With the long integration tests at the front they start at once, one per worker, and the short ones fill
in behind them, so neither worker is left with a long test at the end.
"""

from __future__ import annotations

import pytest

# Wall time of one run of each file's tests on an idle 2-core machine (2026-12-08), longest first. A file not
# listed keeps its place after these; the order only decides when a test starts, never whether it runs.
LONGEST_FIRST = (
    "tests/integration/test_airflow_versions.py",  # 143 s (two Airflow installs and their DAG runs)
    "tests/integration/test_chaos.py",  # 114 s
    "tests/integration/test_airflow_loop.py",  # 143 s in 4 tests
    "tests/integration/test_airflow_ui.py",  # 55 s (a demo run, Airflow's UI in Chromium, a backfill from it)
    "tests/integration/test_worker_observability.py",  # 41 s
    "tests/integration/test_airflow_connections.py",  # 30 s
    "tests/integration/test_ingest_dag.py",  # 28 s
    "tests/integration/test_worker.py",  # 57 s in 3 tests
    "tests/integration/test_ingest_s3.py",  # 28 s in 3 tests
    "tests/integration/test_fuzz.py",  # 24 s
    "tests/integration/test_producer_broker_restart.py",  # 21 s
    "tests/integration/test_doctor.py",  # 20 s in 3 tests
    "tests/integration/test_report_pages.py",  # 17 s (a drift DAG run, its pages and check --html in Chromium)
    "tests/integration/test_rollout.py",  # 17 s
    "tests/integration/test_airflow_bundle.py",  # 7 s idle, 21 s with the other worker busy
    "tests/integration/test_examples.py",  # 9 s
    "tests/integration/test_router.py",  # 8 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(LONGEST_FIRST)))
