"""Retrain → validate → blue/green deploy, on a retrain request or by hand (conf: {"model": NAME})."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from driftline.dags.assets import RETRAIN_REQUESTS
from driftline.dags.tasks.failures import alert_task_failure


@dag(
    dag_id="driftline_retrain",
    schedule=[RETRAIN_REQUESTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["driftline"],
    default_args={"on_failure_callback": alert_task_failure},
    params={"model": Param(None, type=["null", "string"], description="Retrain this model even without a request")},
)
def driftline_retrain() -> None:
    @task
    def models_to_retrain() -> list[dict[str, Any]]:
        """The model named in the run's conf (forced), else every model with a pending request."""
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.config import scan_monitor_configs
        from driftline.schemas.errors import user_errors
        from driftline.schemas.names import NAME
        from driftline.schemas.storage import Storage, state

        settings = task_settings()
        models = scan_monitor_configs(settings.config_dir).models  # a broken one fails its own mapped task
        requested = get_current_context()["params"].get("model")
        if requested:
            if requested not in models:
                raise ValueError(f"no monitor config for model {requested!r}; configured: {models}")
            return [{"model": requested, "force": True}]
        with user_errors("retrain requests"):
            storage = Storage.from_settings(settings)
            # A label that is not a model name (a broken file's name) can have no request.
            named = [m for m in models if NAME.fullmatch(m)]
            return [{"model": m, "force": False} for m in named if state.retrain_requested(storage, m)]

    @task(map_index_template="{{ task.op_kwargs['job']['model'] }}")
    def retrain(job: dict[str, Any]) -> dict[str, Any]:
        """Train on recent labelled data, validate on a holdout, deploy if not worse."""
        from driftline.dags.tasks.configs import task_config
        from driftline.dags.tasks.retrain import run_retrain
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.errors import user_errors
        from driftline.schemas.storage import Storage

        settings = task_settings()
        with user_errors(f"model {job['model']!r}"):
            config = task_config(settings, job["model"])  # fails for good, without retries, if it does not hold
            return run_retrain(settings, Storage.from_settings(settings), config, force=job["force"])

    retrain.expand(job=models_to_retrain())


driftline_retrain_dag = driftline_retrain()
