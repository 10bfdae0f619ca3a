"""Every alert's id, one factory per kind. Pure.

An id is stable for the same occurrence, so a rerun, a retry or a restarted worker names the same alert again
and the outbox (``alerts/sent/<id>.json``) or the worker's incident state sends it once. The formats are the ones
driftline has always written: an alert queued or sent before an upgrade keeps its id after it, and is not sent
twice. Two families:

- alerts of the DAG tasks are ``<kind>-<model>-<suffix>``: a window's (``drift``, ``quality``,
  ``insufficient_data``, ``production_drift``, ``performance``) ends in the window's end as
  ``YYYYmmddTHHMMSSZ``, which :func:`window_end_of` reads back for the cooldown; an occurrence's (a file set
  aside, an artifact refused, a task failed, a model too old) ends in 16 hex digits of its key's SHA-256;
- alerts of the stream worker are ``|``-separated: the model (and version), the window's start, what was seen.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

WindowKind = Literal["drift", "quality", "insufficient_data", "production_drift", "performance"]
OccurrenceKind = Literal["quarantine", "artifact", "pipeline", "model_age"]

WINDOW_STAMP = "%Y%m%dT%H%M%SZ"


def window_alert_id(kind: WindowKind, model: str, window_end: datetime) -> str:
    """The ``kind`` alert about ``model``'s window ending at ``window_end``: one per window.

    >>> window_alert_id("drift", "churn", datetime(2026, 5, 1, 10, 30, tzinfo=UTC))
    'drift-churn-20260501T103000Z'
    """
    return f"{kind}-{model}-{window_end.astimezone(UTC):{WINDOW_STAMP}}"


def window_end_of(alert_id: str, kind: WindowKind, model: str) -> datetime | None:
    """The window end of a :func:`window_alert_id` of ``kind`` and ``model``; ``None`` for any other id (another
    kind, or another model whose name starts with this one's and a ``-``).

    >>> window_end_of("drift-churn-20260501T103000Z", "drift", "churn")
    datetime.datetime(2026, 5, 1, 10, 30, tzinfo=datetime.timezone.utc)
    >>> window_end_of("drift-churn-eu-20260501T103000Z", "drift", "churn") is None
    True
    """
    prefix = f"{kind}-{model}-"
    if not alert_id.startswith(prefix):
        return None
    try:
        return datetime.strptime(alert_id[len(prefix) :], WINDOW_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def occurrence_alert_id(kind: OccurrenceKind, model: str, key: str) -> str:
    """The alert about one occurrence (``key`` names it: a file's path, an artifact, a task's run): one per key.

    >>> occurrence_alert_id("pipeline", "churn", "driftline_drift/check/run-1/1")
    'pipeline-churn-cb52484a059b86fa'
    """
    return f"{kind}-{model}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def breach_alert_id(model: str, model_version: str, window_start: datetime, name: str, *, escalated: bool) -> str:
    """The stream alert that opens an incident of metric ``name`` (a threshold, ``performance:<metric>``) in a
    version's window; an escalation to critical is a second alert of the same window.

    >>> breach_alert_id("churn", "v3", datetime(2026, 5, 1, 10, tzinfo=UTC), "error_rate", escalated=False)
    'churn|v3|2026-05-01T10:00:00+00:00|error_rate'
    """
    base = f"{model}|{model_version}|{window_start.isoformat()}|{name}"
    return f"{base}|critical" if escalated else base


def resolved_alert_id(opening_alert_id: str) -> str:
    """The "back within its threshold" message of the incident that ``opening_alert_id`` opened."""
    return f"{opening_alert_id}|resolved"


def prediction_drift_alert_id(model: str, model_version: str, window_start: datetime) -> str:
    """The online detector's alert on a version's predictions, at the window where it fired."""
    return f"{model}|{model_version}|{window_start.isoformat()}|prediction_drift"


def unconfigured_model_alert_id(model: str) -> str:
    """Said once per model (and worker): events of a model that has no monitor config."""
    return f"unconfigured|{model}"


def deployment_alert_id(model: str, revision: int) -> str:
    """A change of what serves ``model``: one per revision of its deployment state."""
    return f"{model}|deployment|{revision}"
