"""The alert outbox of the DAG tasks and the CLI: alerts are queued in storage (``alerts/pending``) before they
are sent, and moved to ``alerts/sent`` once Slack took them, so a Slack outage or a crash delays an alert and
never loses it, and a rerun does not send it twice.

The stream worker delivers its alerts from the alerts topic instead (streams/agents.py) and marks them sent in
the same folder, so both paths share one record of what was sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from driftline.schemas.records import Alert, utc_now
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import state as stored_state
from driftline.streams.alerts.delivery import deliver_with_retry, notifier_from_settings
from driftline.streams.alerts.formatting import alert_blocks
from driftline.streams.alerts.ids import OccurrenceKind, WindowKind, occurrence_alert_id, window_alert_id, window_end_of


def queue_alert(storage: Storage, alert: Alert) -> bool:
    """Put ``alert`` in the outbox unless one with its id was already sent; returns whether it was queued."""
    return stored_state.queue_alert(storage, alert)


def queue_occurrence_alert(
    storage: Storage,
    *,
    kind: OccurrenceKind,
    model: str,
    key: str,
    text: str,
    at: datetime | None = None,
    channel: str | None = None,
    count: int | None = None,
    links: dict[str, str] | None = None,
) -> str:
    """Queue an alert about one occurrence (a file set aside, an artifact refused, a task failed) rather than a
    window: its window is the moment ``at`` (default now), and its id is made from ``kind``, ``model`` and ``key``,
    so the same occurrence is announced once. Returns the id."""
    moment = at or utc_now()
    alert_id = occurrence_alert_id(kind, model, key)
    stored_state.queue_alert(
        storage,
        Alert(
            alert_id=alert_id,
            kind=kind,
            model=model,
            window_start=moment,
            window_end=moment,
            count=count,
            channel=channel,
            text=text,
            links=links or {},
        ),
    )
    return alert_id


def alert_within(storage: Storage, kind: WindowKind, model: str, window_end: datetime, span: timedelta) -> str | None:
    """The id of a sent or queued ``kind`` alert about another window of ``model`` ending less than ``span`` before
    or after ``window_end``, if there is one (the cooldown); none when ``span`` is zero. Reads folder listings only.
    """
    if span <= timedelta(0):
        return None
    own = window_alert_id(kind, model, window_end)
    for folder in ("sent", "pending"):
        for alert_id in stored_state.outbox_alert_ids(storage, folder):
            other_end = window_end_of(alert_id, kind, model)
            if alert_id != own and other_end is not None and abs(other_end - window_end) < span:
                return alert_id
    return None


def deliver_pending_alerts(settings: Settings, storage: Storage, max_attempts: int = 3) -> list[str]:
    """Send every alert in the outbox; one still failing stays pending and the error propagates
    (the Airflow task retries, and the next run sends it too).

    Tasks of concurrent runs (a backfill) deliver the same outbox: each alert is claimed before it is sent, so
    exactly one of them sends it, and one already sent by another is skipped."""
    notifier = notifier_from_settings(settings)
    delivered = []
    for alert in stored_state.pending_alerts(storage):
        if not stored_state.claim_alert(storage, alert.alert_id):
            continue  # another process is sending it
        try:
            if stored_state.alert_sent(storage, alert.alert_id):  # sent by another process since our listing, or
                stored_state.mark_alert_sent(storage, alert)  # sent before a crash left the pending copy: drop it
                continue
            text = alert.text or alert.alert_id
            deliver_with_retry(notifier, text, alert.channel, blocks=alert_blocks(alert), max_attempts=max_attempts)
            stored_state.mark_alert_sent(storage, alert)
            delivered.append(alert.alert_id)
        finally:
            stored_state.release_alert_claim(storage, alert.alert_id)
    return delivered
