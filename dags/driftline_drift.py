"""Drift check per configured model whenever new events are stored."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from driftline.dags.assets import RETRAIN_REQUESTS, STORED_EVENTS
from driftline.dags.tasks.failures import alert_task_failure


@dag(
    dag_id="driftline_drift",
    schedule=[STORED_EVENTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["driftline"],
    default_args={
        "on_failure_callback": alert_task_failure,  # failed for good: Slack hears of it
        "retries": 3,
        "retry_delay": pendulum.duration(minutes=1),
    },
)
def driftline_drift() -> None:
    @task
    def configured_models() -> list[str]:
        """Every model with a monitor config file, broken ones included: a broken config fails its own mapped
        task with the reason, and every other model is still checked."""
        from driftline.schemas.config import scan_monitor_configs
        from driftline.schemas.secrets import protect
        from driftline.schemas.settings import Settings

        return scan_monitor_configs(protect(Settings.from_env()).config_dir).models

    # Each mapped task is labelled by its model in the UI and in failure alerts.
    @task(outlets=[RETRAIN_REQUESTS], map_index_template="{{ task.op_kwargs['model'] }}")
    def check_model(model: str) -> dict[str, Any]:
        """Latest window vs the training reference; report, alert, retrain request."""
        from driftline.dags.tasks.configs import task_config
        from driftline.dags.tasks.drift import run_drift_check
        from driftline.schemas.errors import user_errors
        from driftline.schemas.secrets import protect
        from driftline.schemas.settings import Settings
        from driftline.schemas.storage import Storage

        settings = protect(Settings.from_env())
        with user_errors(f"model {model!r}"):
            # Fails for good, without retries, when the config does not hold; the entry point is retrain's business.
            config = task_config(settings, model, entry_point=False)
            return run_drift_check(settings, Storage.from_settings(settings), config).to_jsonable()

    check_model.expand(model=configured_models())


driftline_drift_dag = driftline_drift()
