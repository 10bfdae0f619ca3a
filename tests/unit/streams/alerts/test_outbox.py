from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.schemas.records import Alert
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state
from driftline.streams.alerts import outbox
from driftline.streams.alerts.ids import window_alert_id

HOUR = datetime(2026, 5, 1, 8, tzinfo=UTC)


def queue(storage: Storage, alert_id: str) -> None:
    outbox.queue_alert(
        storage, Alert(alert_id=alert_id, kind="drift", model="m", window_start=HOUR, window_end=HOUR, text="t")
    )


def test_an_alert_claimed_by_another_sender_is_left_to_it_and_one_sent_meanwhile_is_not_sent_again(tmp_path):
    settings = Settings(home=str(tmp_path))
    storage = Storage.from_settings(settings)
    for alert_id in ("drift-m-1", "drift-m-2", "drift-m-3"):
        queue(storage, alert_id)
    assert state.claim_alert(storage, "drift-m-1")  # another task is sending it right now
    [two] = [a for a in state.pending_alerts(storage) if a.alert_id == "drift-m-2"]
    storage.write_bytes("alerts/sent/drift-m-2.json", two.to_json())  # sent by another task since we listed
    assert outbox.deliver_pending_alerts(settings, storage) == ["drift-m-3"]
    assert [a.alert_id for a in state.pending_alerts(storage)] == ["drift-m-1"]  # still the other sender's


def test_the_cooldown_finds_another_window_of_the_same_kind_and_model_only(tmp_path):
    storage = Storage.from_settings(Settings(home=str(tmp_path)))
    queue(storage, window_alert_id("drift", "m", HOUR + timedelta(minutes=30)))
    queue(storage, window_alert_id("drift", "m-eu", HOUR + timedelta(minutes=10)))  # a model named m-…
    queue(storage, window_alert_id("quality", "m", HOUR + timedelta(minutes=5)))
    state.mark_alert_sent(storage, state.pending_alerts(storage)[0])
    span = timedelta(hours=1)
    assert outbox.alert_within(storage, "drift", "m", HOUR, span) == "drift-m-20260501T083000Z"
    assert outbox.alert_within(storage, "drift", "m", HOUR + timedelta(minutes=30), span) is None  # its own
    assert outbox.alert_within(storage, "drift", "m", HOUR - timedelta(minutes=30), span) is None  # 1 h apart
    assert outbox.alert_within(storage, "drift", "m", HOUR, timedelta(0)) is None


def test_an_occurrence_is_queued_once_under_the_same_key(tmp_path):
    storage = Storage.from_settings(Settings(home=str(tmp_path)))
    first = outbox.queue_occurrence_alert(storage, kind="pipeline", model="d", key="k", text="t", at=HOUR)
    again = outbox.queue_occurrence_alert(storage, kind="pipeline", model="d", key="k", text="t2", at=HOUR)
    assert first == again and [a.text for a in state.pending_alerts(storage)] == ["t2"]
