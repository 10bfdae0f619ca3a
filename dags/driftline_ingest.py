"""Kafka → Parquet on storage, every 15 minutes; safe to retry and to re-run from the UI."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from driftline.dags.tasks.failures import alert_task_failure


@dag(
    dag_id="driftline_ingest",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # each run takes everything new since the committed offsets; past intervals add nothing
    max_active_runs=1,  # one consumer-group member at a time owns the offsets
    tags=["driftline"],
    default_args={
        "on_failure_callback": alert_task_failure,
        "retries": 3,
        "retry_delay": pendulum.duration(seconds=30),
    },
)
def driftline_ingest() -> None:
    @task
    def ingest_predictions() -> dict[str, Any]:
        """Write new prediction events to Parquet, then commit their offsets."""
        from driftline.dags.tasks.ingest import ingest_topic
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.errors import user_errors
        from driftline.schemas.storage import Storage

        settings = task_settings()
        with user_errors(f"ingest of {settings.topics.predictions}"):
            storage = Storage.from_settings(settings)
            result = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions")
        return result.to_dict()

    @task
    def ingest_labels() -> dict[str, Any]:
        """Write new label events to Parquet, then commit their offsets."""
        from driftline.dags.tasks.ingest import ingest_topic
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.errors import user_errors
        from driftline.schemas.storage import Storage

        settings = task_settings()
        with user_errors(f"ingest of {settings.topics.labels}"):
            storage = Storage.from_settings(settings)
            result = ingest_topic(settings, storage, settings.topics.labels, kind="labels")
        return result.to_dict()

    ingest_predictions()
    ingest_labels()


driftline_ingest_dag = driftline_ingest()
