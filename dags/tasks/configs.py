"""A model's monitor config as a DAG task needs it: loaded, checked, and failed for good when it does not hold."""

from __future__ import annotations

from driftline.schemas.config import MonitorConfig, scan_monitor_configs
from driftline.schemas.errors import ConfigProblem, checked
from driftline.schemas.settings import Settings


def task_config(settings: Settings, model: str, *, entry_point: bool = True) -> MonitorConfig:
    """The checked config of ``model``. Only its own file counts: another model's broken config does not stop it.
    A config that does not hold (invalid, gone, configured twice, naming an unreadable reference
    or an entry point that does not import) fails the task at once with its one line: no retry can fix it, so
    Airflow is told not to try (``AirflowFailException``). A network failure while checking propagates, and the
    task's retries take it. ``entry_point=False`` (the drift check) leaves the retrain entry point unchecked: a
    missing training package must not stop monitoring."""
    from driftline.dags.tasks.airflow_api import AirflowFailException

    scan = scan_monitor_configs(settings.config_dir)
    try:
        if model in scan.broken:
            raise ConfigProblem(f"model {model!r}: {scan.broken[model]}")
        if model not in scan.configs:
            found = scan.models
            raise ConfigProblem(f"model {model!r}: no monitor config in {settings.config_dir} (configured: {found})")
        return checked(scan.configs[model], settings.storage_options, entry_point=entry_point)
    except ConfigProblem as exc:
        raise AirflowFailException(" ".join(str(exc).split())) from None
