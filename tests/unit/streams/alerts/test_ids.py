from __future__ import annotations

import doctest
import hashlib
from datetime import UTC, datetime

from driftline.streams.alerts import ids

T0 = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)


def test_the_examples_in_the_docstrings_hold():
    assert doctest.testmod(ids).failed == 0


def test_each_kind_keeps_the_id_format_alerts_sent_before_an_upgrade_have():
    """An alert queued or sent by an older driftline must be recognised after an upgrade, not sent twice."""
    assert ids.window_alert_id("drift", "m", T0) == "drift-m-20260501T103000Z"
    assert (
        ids.occurrence_alert_id("quarantine", "m", "a@b") == "quarantine-m-" + hashlib.sha256(b"a@b").hexdigest()[:16]
    )
    assert ids.breach_alert_id("m", "v1", T0, "error_rate", escalated=True) == (
        "m|v1|2026-05-01T10:30:00+00:00|error_rate|critical"
    )
    assert ids.resolved_alert_id("m|v1|x|error_rate") == "m|v1|x|error_rate|resolved"
    assert ids.prediction_drift_alert_id("m", "v1", T0) == "m|v1|2026-05-01T10:30:00+00:00|prediction_drift"
    assert ids.unconfigured_model_alert_id("m") == "unconfigured|m"
    assert ids.deployment_alert_id("m", 7) == "m|deployment|7"


def test_a_window_alert_id_reads_back_as_its_window_end_in_utc():
    assert ids.window_end_of(ids.window_alert_id("drift", "m", T0), "drift", "m") == T0
    assert ids.window_end_of("drift-m-not-a-stamp", "drift", "m") is None
    assert ids.window_end_of("quality-m-20260501T103000Z", "drift", "m") is None
