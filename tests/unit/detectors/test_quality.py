from __future__ import annotations

import numpy as np

from driftline.detectors import build_reference_profile, compare_profiles
from tests.unit.detectors.data import frame, window


def test_quality_checks():
    rng = np.random.default_rng(6)
    reference = build_reference_profile(frame(rng, 10_000))
    current = frame(rng, 5000)
    current.loc[:999, "age"] = np.nan  # 20 % missing
    current.loc[:299, "amount"] = 1e6  # 6 % out of range
    current.loc[:499, "plan"] = "enterprise"  # 10 % unseen
    current["extra"] = 1
    profile = window(reference, current)
    report = compare_profiles(reference, profile, current_columns=list(current.columns))
    found = {(q.check, q.feature, q.severity) for q in report.quality}
    assert found == {
        ("missing_rate", "age", "warning"),
        ("out_of_range", "amount", "info"),  # distribution changes: the drift tests judge them
        ("unseen_categories", "plan", "info"),
        ("extra_column", "extra", "info"),
    }
    as_text = current.drop(columns=["age", "extra"]).assign(
        amount=current["amount"].astype(str).where(current.index % 2 == 0, "n/a")
    )
    text_report = compare_profiles(reference, window(reference, as_text), current_columns=list(as_text.columns))
    checks = {(q.check, q.feature): q.severity for q in text_report.quality}
    assert checks[("missing_column", "age")] == "critical"  # renamed or no longer sent: gone for the window
    assert checks[("type_change", "amount")] == "warning"  # half of the values still read as numbers


def test_a_feature_gone_for_the_whole_window_is_critical_and_a_partial_gap_is_a_warning():
    rng = np.random.default_rng(7)
    reference = build_reference_profile(frame(rng, 5000))
    current = frame(rng, 1000)
    current["age"] = np.nan
    current.loc[:299, "amount"] = np.nan
    report = compare_profiles(reference, window(reference, current), current_columns=list(current.columns))
    severity = {(q.check, q.feature): q.severity for q in report.quality}
    assert severity[("missing_rate", "age")] == "critical"
    assert severity[("missing_rate", "amount")] == "warning"
    all_text = frame(rng, 1000).assign(amount="n/a")
    text = compare_profiles(reference, window(reference, all_text), current_columns=list(all_text.columns))
    assert {(q.check, q.severity) for q in text.quality if q.feature == "amount"} >= {("type_change", "critical")}
