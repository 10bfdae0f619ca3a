from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from driftline.schemas.records import Alert
from driftline.streams.alerts.formatting import alert_blocks, format_threshold_alert

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def test_threshold_alert_text_names_model_version_metric_value_threshold_and_window():
    alert = Alert(
        alert_id="a",
        kind="threshold",
        model="churn",
        model_version="v3",
        metric="latency_p95_ms",
        value=81.234,
        threshold=50.0,
        window_start=T0,
        window_end=T0.replace(minute=5),
        count=500,
    )
    assert format_threshold_alert(alert) == (
        ":rotating_light: driftline: model *churn* version *v3* — latency_p95_ms = 81.23 exceeds 50 in window "
        "2026-05-01T10:00:00+00:00 → 2026-05-01T10:05:00+00:00 (500 events)"
    )


def test_an_alert_in_block_kit_has_its_severity_its_window_and_a_button_per_web_link():
    alert = Alert(
        alert_id="drift-churn-20260501T110000Z",
        kind="drift",
        model="churn",
        window_start=T0,
        window_end=T0.replace(hour=11),
        count=1500,
        text="data drift on *churn*",
        links={"Report": "https://reports.example/churn.html", "Airflow task log": "http://127.0.0.1:8080/log"},
    )
    header, section, context, actions = alert_blocks(alert)
    assert header["text"]["text"] == "WARNING · data drift · churn"
    assert section["text"] == {"type": "mrkdwn", "text": "data drift on *churn*"}
    assert context["elements"][0]["text"] == (
        ":large_orange_circle: warning · window 2026-05-01T10:00:00+00:00 → 2026-05-01T11:00:00+00:00 · "
        "1,500 events · id `drift-churn-20260501T110000Z`"
    )
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == list(alert.links.items())


def test_a_link_that_is_not_a_web_address_is_a_line_not_a_button_and_long_text_is_cut():
    alert = Alert(
        alert_id="pipeline-x",
        kind="pipeline",
        model="driftline_drift",
        window_start=T0,
        window_end=T0,
        text="x" * 5000,
        links={"Report": "/data/reports/churn.html"},
    )
    blocks: list[dict[str, Any]] = alert_blocks(alert)
    assert blocks[0]["text"]["text"] == "CRITICAL · pipeline task failed · driftline_drift"
    assert len(blocks[1]["text"]["text"]) <= 3000 and blocks[1]["text"]["text"].endswith(
        "(cut; the full text is in the report)"
    )
    assert "at 2026-05-01T10:00:00+00:00" in blocks[2]["elements"][0]["text"]
    assert all(block["type"] != "actions" for block in blocks)
    assert blocks[-1]["elements"][0]["text"] == "Report: `/data/reports/churn.html`"
