"""Drift check per configured model, one run per data interval: scheduled, backfilled or rerun alike.

Each run checks the windows of each model that end in its data interval (``[data_interval_start,
data_interval_end)``, see ``dags/tasks/drift.py``), so ``airflow backfill create`` and backfills from the UI
create one run per past interval and each checks its own window; a cleared run checks the same rows again,
overwrites its report and sends no alert twice. The schedule is ``DRIFTLINE_DRIFT_SCHEDULE`` (cron, default
hourly), read when Airflow parses this file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pendulum
from airflow.sdk import PokeReturnValue, dag, get_current_context, task

from driftline.dags.assets import RETRAIN_REQUESTS
from driftline.dags.tasks.airflow_api import CronDataIntervalTimetable
from driftline.dags.tasks.failures import alert_task_failure
from driftline.schemas.settings import Settings


def data_interval() -> tuple[datetime, datetime]:
    """The running task's data interval."""
    context = get_current_context()
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start is None or end is None:  # a run triggered without a logical date (REST API logical_date: null)
        from driftline.dags.tasks.airflow_api import AirflowFailException

        raise AirflowFailException(
            "this drift run has no data interval, so there is no window to check: trigger it with a logical date, "
            "or backfill the interval"
        )
    from driftline.dags.tasks.drift import plain_utc

    return plain_utc(start), plain_utc(end)


@dag(
    dag_id="driftline_drift",
    schedule=CronDataIntervalTimetable(Settings.from_env().drift_schedule, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # the past is checked on request: a backfill from the UI or 'airflow backfill create'
    tags=["driftline"],
    default_args={
        "on_failure_callback": alert_task_failure,  # failed for good: Slack hears of it
        "retries": 3,
        "retry_delay": pendulum.duration(minutes=1),
    },
)
def driftline_drift() -> None:
    # Releases its worker slot between pokes; never times out in practice, since ingest_caught_up says yes
    # DRIFTLINE_DRIFT_INGEST_WAIT_SECONDS after the interval whatever ingest did.
    @task.sensor(poke_interval=60, timeout=7 * 24 * 3600, mode="reschedule")
    def ingest_caught_up() -> PokeReturnValue:
        """Wait until ingest has stored the interval's events (up to its end plus the allowed lateness)."""
        from driftline.dags.tasks.drift import ingest_caught_up
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.errors import user_errors
        from driftline.schemas.storage import Storage

        settings = task_settings()
        with user_errors("waiting for ingest"):
            done, why = ingest_caught_up(settings, Storage.from_settings(settings), data_interval()[1])
        print(why)
        return PokeReturnValue(is_done=done, xcom_value=why)

    @task
    def configured_models() -> list[str]:
        """Every model with a monitor config file, broken ones included: a broken config fails its own mapped
        task with the reason, and every other model is still checked."""
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.config import scan_monitor_configs

        return scan_monitor_configs(task_settings().config_dir).models

    # Each mapped task is labelled by its model in the UI and in failure alerts.
    @task(map_index_template="{{ task.op_kwargs['model'] }}")
    def check_model(model: str) -> dict[str, Any]:
        """The model's windows of this interval vs the training reference; reports, alerts, retrain request."""
        from driftline.dags.tasks.airflow_api import AirflowSkipException
        from driftline.dags.tasks.configs import task_config
        from driftline.dags.tasks.drift import check_interval
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.errors import user_errors
        from driftline.schemas.storage import Storage

        settings = task_settings()
        start, end = data_interval()
        with user_errors(f"model {model!r}"):
            # Fails for good, without retries, when the config does not hold; the entry point is retrain's business.
            config = task_config(settings, model, entry_point=False)
            links = {"Airflow task log": get_current_context()["ti"].log_url}
            checked = check_interval(settings, Storage.from_settings(settings), config, start, end, links=links)
        from driftline.dags.tasks.drift_report import verdict_line

        for summary in checked.summaries:
            print(verdict_line(summary))  # the line to read in the task's log; the return value has the rest
        if not checked.summaries:
            why = "; ".join(checked.empty_windows) or f"no {config.drift.window} window of {model!r} ends in it"
            raise AirflowSkipException(f"nothing to check in [{start.isoformat()}, {end.isoformat()}): {why}")
        return checked.to_jsonable()

    # After every model's check, whichever failed or had nothing to check: one model's broken config must not hold
    # back another's retrain.
    @task(outlets=[RETRAIN_REQUESTS], trigger_rule="all_done")
    def request_retrains(checked: list[dict[str, Any] | None]) -> list[str]:
        """Update the retrain-requests Asset (which starts driftline_retrain) when, and only when, a window of this
        run requested a retrain; skipped otherwise, and a skipped task updates no Asset."""
        from driftline.dags.tasks.airflow_api import AirflowSkipException

        models = sorted(
            {run["model"] for run in checked if run and any(window["retrain_requested"] for window in run["windows"])}
        )
        if not models:
            raise AirflowSkipException("no window of this run requested a retrain")
        print(f"retrain requested for {', '.join(models)}")
        return models

    # A run's state follows its last tasks: with request_retrains last (and skipped), a run whose checks failed
    # would end "success". This one fails the run then (each failed check has alerted already, so it does not).
    @task(trigger_rule="one_failed", retries=0, on_failure_callback=None)
    def fail_if_a_check_failed() -> None:
        from driftline.dags.tasks.airflow_api import AirflowFailException

        raise AirflowFailException("a model's drift check failed in this run: its task's log and alert say why")

    checks = check_model.expand(model=configured_models())
    ingest_caught_up() >> checks
    request_retrains(checks)  # type: ignore[arg-type]  # the mapped results, resolved by Airflow at run time
    checks >> fail_if_a_check_failed()


driftline_drift_dag = driftline_drift()
