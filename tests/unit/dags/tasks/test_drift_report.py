"""The pure part of a drift check: what a report asks for (decide), the alerts a window sends, the report as a
typed record read back from its JSON."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from driftline.dags.tasks.drift_report import decide, window_alerts
from driftline.schemas.config import MonitorConfig
from driftline.schemas.records import RecordError
from driftline.schemas.reports import DriftReport
from driftline.schemas.write_jsonschema import record_schemas
from tests.unit.schemas.report_data import report_fields


def config(**drift: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "drift": drift, "retrain": {"entry_point": "pkg.mod:train"}}
    )


def config_with_alerts(**alerts: object) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "alerts": alerts, "retrain": {"entry_point": "pkg.mod:train"}}
    )


def report(drifted: list[str], features: int, **sections: Any) -> DriftReport:
    return DriftReport.parse({**report_fields(drifted, features), **sections})


def finding(check: str, severity: str) -> dict[str, Any]:
    return {"check": check, "feature": "x", "value": None, "threshold": None, "message": check, "severity": severity}


def test_alert_above_the_alert_share_and_retrain_at_the_retrain_share():
    assert decide(report([], 10), config()) == decide(report([], 10), config(alert_share=0.0))
    nothing = decide(report([], 10), config())
    assert (nothing.alert, nothing.retrain) == (False, False)
    one = decide(report(["a"], 10), config(alert_share=0.0, retrain_share=0.2))
    assert (one.alert, one.retrain, one.drifted_features) == (True, False, ["a"])
    two = decide(report(["a", "b"], 10), config(alert_share=0.0, retrain_share=0.2))
    assert (two.alert, two.retrain) == (True, True)
    quiet = decide(report(["a", "b"], 10), config(alert_share=0.2, retrain_share=0.2))
    assert (quiet.alert, quiet.retrain) == (False, True)  # alert needs strictly more than alert_share


def test_a_joint_shift_alerts_and_a_window_it_could_not_judge_is_insufficient_never_no_drift():
    joint = decide(report([], 10, multivariate={"status": "ok", "drifted": True}), config())
    assert (joint.alert, joint.verdict, joint.retrain) == (True, "drift", False)
    blind = decide(report([], 10, insufficient_data=["x"]), config())
    assert (blind.alert, blind.verdict, blind.insufficient_alert) == (False, "insufficient_data", True)
    muted = MonitorConfig.model_validate(
        {"model": "m", "reference": "r.parquet", "alerts": {"insufficient_data": False}}
    )
    assert decide(report([], 10, insufficient_data=["x"]), muted).insufficient_alert is False
    # Drift found in what could be judged is drift, whatever else was too small.
    assert decide(report(["a"], 10, insufficient_data=["x"]), config()).verdict == "drift"


def test_no_retrain_without_an_entry_point():
    no_entry = MonitorConfig.model_validate({"model": "m", "reference": "r.parquet"})
    assert decide(report(["a", "b", "c"], 3), no_entry).retrain is False


def test_the_quality_severity_floor_decides_which_findings_are_announced():
    findings = [finding("out_of_range", "warning"), finding("extra_column", "info")]
    quiet = report([], 10, quality=findings)
    warning = decide(quiet, config())
    assert (warning.verdict, warning.quality_alert) == ("no_drift", True)
    assert [f.check for f in warning.announced_findings] == ["out_of_range"]
    critical_only = decide(quiet, config_with_alerts(quality_severity="critical"))
    assert critical_only.quality_alert is False
    announced = decide(quiet, config_with_alerts(quality_severity="info")).announced_findings
    assert [f.check for f in announced] == ["out_of_range", "extra_column"]
    moved = {"path": "p", "moved_to": "q", "reason": "r", "size_bytes": 1}
    skipped = report([], 10, quality=findings, skipped_files=[moved])
    assert decide(skipped, config_with_alerts(quality_severity="critical")).quality_alert is True
    assert decide(skipped, config_with_alerts(quality_severity="off")).quality_alert is False


def test_drift_against_the_previous_windows_alerts_only_when_asked_to():
    production = {"status": "ok", "drifted_features": ["x"], "share_drifted": 0.5, "reference_windows": ["e"]}
    changed = report([], 10, production_drift=production)
    quiet = decide(changed, config())
    assert (quiet.verdict, quiet.alert, quiet.production_alert) == ("no_drift", False, False)
    loud = decide(changed, config(production_alerts=True))
    assert (loud.verdict, loud.alert, loud.production_alert, loud.retrain) == ("drift", False, True, False)


def test_a_window_sends_one_alert_per_kind_it_asks_for_but_those_the_cooldown_held_back():
    drifted = report(["a", "b"], 4, quality=[finding("missing_rate", "critical")])
    decision = decide(drifted, config(alert_share=0.0))
    sent = window_alerts(config(alert_share=0.0), drifted, decision, "https://r/x.html", {"Log": "https://l"})
    assert [(a.alert_id, a.severity) for a in sent] == [
        ("drift-m-20260501T070000Z", "warning"),
        ("quality-m-20260501T070000Z", "critical"),
    ]
    assert sent[0].links == {"Report": "https://r/x.html", "Log": "https://l"} and sent[0].count == 500
    held = drifted.model_copy(update={"alerts_held_back": {"drift": "alert drift-m-… is within alerts.cooldown"}})
    assert [a.kind for a in window_alerts(config(alert_share=0.0), held, decision, "u")] == ["quality"]


def test_the_report_round_trips_through_its_json_and_its_schema_accepts_it():
    written = report(["a"], 2)
    assert DriftReport.parse(written.to_json()) == written
    assert json.loads(written.to_json())["window_start"] == "2026-05-01T06:00:00+00:00"  # as reports always had it
    jsonschema.validate(json.loads(written.to_json()), record_schemas()["drift_report.v4.json"])


def test_a_report_of_another_shape_names_the_field():
    with pytest.raises(RecordError, match=r"^drift_report record: field 'owner' is unknown to this driftline"):
        DriftReport.parse({**report_fields([], 1), "owner": "x"})
    fields = report_fields([], 1)
    del fields["segments"]
    with pytest.raises(RecordError, match=r"^drift_report record: field 'segments' is missing \(written by an older"):
        DriftReport.parse(fields)
    with pytest.raises(RecordError, match=r"field 'production_drift.status': Input should be 'ok', 'off'"):
        DriftReport.parse({**report_fields([], 1), "production_drift": {"status": "later"}})


def test_version_2_and_3_reports_written_before_are_read_with_no_excluded_column():
    fields = report_fields(["a"], 2)
    fields.pop("excluded_columns", None)  # not in versions 2 and 3
    assert DriftReport.parse({"report_version": 2, **fields}) == report(["a"], 2)
    assert DriftReport.parse({**fields, "schema_version": 3}) == report(["a"], 2)
    assert report(["a"], 2).excluded_columns == []
    with pytest.raises(RecordError, match="field 'schema_version': this driftline reads version 4, got 5"):
        DriftReport.parse({**report_fields([], 1), "schema_version": 5})


def test_the_task_log_says_each_window_in_one_line():
    from datetime import UTC, datetime

    from driftline.dags.tasks.drift_report import verdict_line
    from driftline.schemas.records import DriftSummary

    summary = DriftSummary(
        model="churn",
        window_start=datetime(2026, 12, 8, 1, 30, tzinfo=UTC),
        window_end=datetime(2026, 12, 8, 2, tzinfo=UTC),
        current_rows=3000,
        drifted_features=["plan", "x0"],
        share_drifted=0.2,
        alert=True,
        retrain_requested=True,
        report_url="s3://b/reports/model=churn/drift-20261208T020000Z.json",
        alerts_delivered=["drift-churn-20261208T020000Z"],
        verdict="drift",
    )
    assert verdict_line(summary) == (
        "churn, window 2026-12-08 01:30 → 02:00 UTC (3,000 rows): DRIFT: plan, x0; alerts sent: "
        "drift-churn-20261208T020000Z; retrain requested; report s3://b/reports/model=churn/drift-20261208T020000Z.html"
    )
    calm = summary.model_copy(update={"drifted_features": [], "verdict": "no_drift", "alerts_delivered": [],
                                      "retrain_requested": False})  # fmt: skip
    assert verdict_line(calm).startswith("churn, window 2026-12-08 01:30 → 02:00 UTC (3,000 rows): NO DRIFT; no alert")
