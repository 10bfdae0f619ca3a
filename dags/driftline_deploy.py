"""A person's hand on a rollout, from the Airflow UI ("Trigger DAG w/ config") or the API:

    {"model": "churn", "action": "start", "version": "v4", "strategy": "canary", "stages": [0, 0.05, 0.25, 1]}
    {"model": "churn", "action": "pause" | "resume" | "advance" | "promote" | "abort" | "rollback", "reason": "..."}

Each action is one change of the model's deployment state (driftline.streams.rollouts): stored, published on the
deployments topic for the routers, and announced on Slack with who asked and why. The run's return value
(XCom) is the state after it: status, each version's share, revision.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from driftline.dags.tasks.failures import alert_task_failure

ACTIONS = ["start", "pause", "resume", "advance", "promote", "abort", "rollback"]


@dag(
    dag_id="driftline_deploy",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["driftline"],
    default_args={"on_failure_callback": alert_task_failure},
    params={
        "model": Param("", type="string", description="The model whose rollout to change"),
        "action": Param("pause", type="string", enum=ACTIONS, description="What to do"),
        "version": Param(None, type=["null", "string"], description="start: the stored version to roll out"),
        "strategy": Param(
            None,
            type=["null", "string"],
            enum=[None, "recreate", "blue_green", "canary", "ab", "shadow", "bandit"],
            description="start: overrides the monitor config's deployment.strategy",
        ),
        "stages": Param(None, type=["null", "array"], description="start (canary): the candidate's shares"),
        "reason": Param(None, type=["null", "string"], description="Why (kept in the history, sent to Slack)"),
    },
)
def driftline_deploy() -> None:
    @task
    def change_rollout() -> dict[str, Any]:
        from driftline.dags.tasks.deploy import act_from_conf
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.errors import user_errors

        context = get_current_context()
        params = dict(context["params"])
        who = (context["dag_run"].conf or {}).get("triggered_by") or "the Airflow UI"
        settings = task_settings()
        with user_errors(f"driftline_deploy {params.get('action')} {params.get('model')!r}"):
            return act_from_conf(settings, params, who=str(who))

    change_rollout()


driftline_deploy_dag = driftline_deploy()
