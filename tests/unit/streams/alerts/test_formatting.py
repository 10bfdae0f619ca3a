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
        ":rotating_light: driftline: model *churn* version *v3*: p95 latency was 81.23 ms, over its limit of 50 ms, "
        "in the window 2026-05-01 10:00 → 10:05 UTC (500 requests).\n"
        "Next: if *v3* is new, `driftline rollout status churn` shows whether it is rolling out and "
        "`driftline rollback churn` routes traffic back; otherwise look at what changed around the service. A window "
        "back within the limit resolves this here."
    )
    rates = alert.model_copy(update={"metric": "error_rate", "value": 0.0712, "threshold": 0.05})
    assert "error rate was 7.1%, over its limit of 5.0%," in format_threshold_alert(rates)


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
    # The severity once (the header), the window once (here: the text does not say it).
    assert context["elements"][0]["text"] == (
        "window 2026-05-01T10:00:00+00:00 → 2026-05-01T11:00:00+00:00 · 1,500 events · "
        "id `drift-churn-20260501T110000Z`"
    )
    said = alert.model_copy(update={"text": "drift in the window 2026-05-01T10:00:00+00:00 …, 1,500 rows"})
    assert alert_blocks(said)[2]["elements"][0]["text"] == "id `drift-churn-20260501T110000Z`"
    in_words = alert.model_copy(update={"text": "in the window 2026-05-01 10:00 → 11:00 UTC (1,500 rows)"})
    assert alert_blocks(in_words)[2]["elements"][0]["text"] == "id `drift-churn-20260501T110000Z`"
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
