"""The Airflow names the DAGs use whose home moved between the releases ``driftline[airflow]`` supports
(``apache-airflow>=3.1,<4``, run on each by ``make airflow-versions``): imported from here, they work on every one.

Airflow 3.2 moved the task exceptions and the timetables into the Task SDK (``airflow.sdk``); 3.1 has them in
Airflow core only. From 3.2 on, core's exceptions are deprecated aliases of the SDK's, and core's
``CronDataIntervalTimetable`` is the scheduler's own class, not the one a DAG file should give.
"""

from __future__ import annotations

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef]
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
    )

try:  # Airflow >= 3.2
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

__all__ = ["AirflowFailException", "AirflowNotFoundException", "AirflowSkipException", "CronDataIntervalTimetable"]
