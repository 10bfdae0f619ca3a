from __future__ import annotations

import json

import numpy as np
import pandas as pd

from driftline.detectors import build_reference_profile, compare_profiles, window_profile
from driftline.detectors.html import render_html


def fifty_feature_report() -> dict:
    rng = np.random.default_rng(12)
    reference = pd.DataFrame(
        {f"n{i}": rng.normal(size=5000) for i in range(40)}
        | {f"c{i}": rng.choice([f"level_{k}" for k in range(30)], 5000) for i in range(10)}
    )
    current = reference.sample(frac=1, random_state=1).reset_index(drop=True)
    current["n0"] += 1.0
    profile = build_reference_profile(reference)
    import pyarrow as pa

    report = compare_profiles(profile, window_profile(profile, iter(pa.Table.from_pandas(current).to_batches())))
    return report.to_dict()


def test_html_report_is_self_contained_sorted_and_under_a_megabyte():
    report = fifty_feature_report()
    page = render_html(report)
    assert len(page.encode()) < 1_000_000
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 50
    first_row = page.index("<tr><td>")
    assert page[first_row : first_row + 14] == "<tr><td>n0</td"  # the drifted feature leads the table
    assert json.loads(json.dumps(report))["report_version"] == 2  # JSON-serializable as it is
