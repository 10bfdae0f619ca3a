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
    found = {(q.check, q.feature) for q in report.quality}
    assert found == {
        ("missing_rate", "age"),
        ("out_of_range", "amount"),
        ("unseen_categories", "plan"),
        ("extra_column", "extra"),
    }
    as_text = current.drop(columns=["age", "extra"]).assign(
        amount=current["amount"].astype(str).where(current.index % 2 == 0, "n/a")
    )
    text_report = compare_profiles(reference, window(reference, as_text), current_columns=list(as_text.columns))
    checks = {(q.check, q.feature) for q in text_report.quality}
    assert ("missing_column", "age") in checks and ("type_change", "amount") in checks
