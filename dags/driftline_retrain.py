"""Retrain → validate → blue/green deploy, on a retrain request or by hand (conf: {"model": NAME})."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from driftline.dags.assets import RETRAIN_REQUESTS


@dag(
    dag_id="driftline_retrain",
    schedule=[RETRAIN_REQUESTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["driftline"],
    params={"model": Param(None, type=["null", "string"], description="Retrain this model even without a request")},
)
def driftline_retrain() -> None:
    @task
    def models_to_retrain() -> list[dict[str, Any]]:
        """The model named in the run's conf (forced), else every model with a pending request."""
        from driftline.schemas.config import load_monitor_configs
        from driftline.schemas.errors import user_errors
        from driftline.schemas.secrets import protect
        from driftline.schemas.settings import Settings
        from driftline.schemas.storage import Storage, state

        settings = protect(Settings.from_env())
        with user_errors(f"monitor configs in {settings.config_dir}"):
            configs = load_monitor_configs(settings.config_dir)
        requested = get_current_context()["params"].get("model")
        if requested:
            if requested not in configs:
                raise ValueError(f"no monitor config for model {requested!r}; configured: {sorted(configs)}")
            return [{"model": requested, "force": True}]
        storage = Storage.from_settings(settings)
        return [{"model": m, "force": False} for m in sorted(configs) if state.retrain_requested(storage, m)]

    @task
    def retrain(job: dict[str, Any]) -> dict[str, Any]:
        """Train on recent labelled data, validate on a holdout, deploy if not worse."""
        from driftline.dags.tasks.configs import task_config
        from driftline.dags.tasks.retrain import run_retrain
        from driftline.schemas.errors import user_errors
        from driftline.schemas.secrets import protect
        from driftline.schemas.settings import Settings
        from driftline.schemas.storage import Storage

        settings = protect(Settings.from_env())
        with user_errors(f"model {job['model']!r}"):
            config = task_config(settings, job["model"])  # fails for good, without retries, if it does not hold
            return run_retrain(Storage.from_settings(settings), config, force=job["force"], settings=settings)

    retrain.expand(job=models_to_retrain())


driftline_retrain_dag = driftline_retrain()
