"""Pipeline failures are alerts too: a task that failed for good (after its retries, or at once) tells Slack.

The DAG files import this module when Airflow parses them, so it imports nothing heavy until a task fails.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def failure_text(dag_id: str, task: str, run_id: str, *, tries: int, error: BaseException | None, log_url: str) -> str:
    """The message: which task of which run failed, after how many tries, its one line, and where its log is."""
    from driftline.schemas.secrets import redact

    line = " ".join(str(error).split()) if error is not None else "no exception was recorded"
    kind = f"{type(error).__name__}: " if error is not None and type(error).__name__ != "UserError" else ""
    return redact(
        f":x: driftline: task *{dag_id}.{task}* failed for good after {tries} tr{'y' if tries == 1 else 'ies'} "
        f"(run {run_id}): {kind}{line[:600]}\nLog: {log_url}"
    )


def alert_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every driftline task: queue a ``pipeline`` alert (once per task try of a run)
    and deliver the outbox. Never raises: a failing callback must not hide the task's own failure."""
    try:
        from driftline.dags.tasks.settings import task_settings
        from driftline.schemas.storage import Storage
        from driftline.streams.alerts import outbox

        ti = context["ti"]
        mapped = ti.map_index not in (None, -1)  # a mapped task is named by its label (its model), else its index
        task = f"{ti.task_id}[{getattr(ti, 'rendered_map_index', None) or ti.map_index}]" if mapped else ti.task_id
        settings = task_settings()
        storage = Storage.from_settings(settings)
        error = context.get("exception")
        outbox.queue_occurrence_alert(
            storage,
            kind="pipeline",
            model=ti.dag_id,
            key=f"{task}|{ti.run_id}|{ti.try_number}",
            text=failure_text(ti.dag_id, task, ti.run_id, tries=ti.try_number, error=error, log_url=ti.log_url),
            links={"Task log": ti.log_url},
        )
        outbox.deliver_pending_alerts(settings, storage)
    except Exception:
        log.exception("could not alert the failure of a driftline task")
