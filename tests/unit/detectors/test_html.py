from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd

from driftline.detectors import build_reference_profile, compare_profiles, window_profile
from driftline.detectors.html import (
    _svg,
    effect_text,
    how_computed,
    render_html,
    render_models_index,
    render_report_index,
    window_alert_kinds,
)


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


def drifted_report() -> dict:
    """Two numeric features (one shifted) and a categorical one, compared at sizes where KS runs exact."""
    import pyarrow as pa

    rng = np.random.default_rng(5)
    reference = pd.DataFrame(
        {"age": rng.normal(40, 10, 2000), "score": rng.normal(size=2000), "plan": rng.choice(["a", "b", "c"], 2000)}
    )
    current = pd.DataFrame(
        {"age": rng.normal(46, 10, 800), "score": rng.normal(size=800), "plan": rng.choice(["a", "b", "c"], 800)}
    )
    profile = build_reference_profile(reference)
    report = compare_profiles(profile, window_profile(profile, iter(pa.Table.from_pandas(current).to_batches())))
    return report.to_dict()


def cells(page: str, css: str) -> list[str]:
    return re.findall(rf"<td class='{css}(?: [^']*)?'[^>]*>(.*?)</td>", page)


def test_the_effect_is_written_against_its_floor_in_words_without_a_question_mark():
    page = render_html(drifted_report())
    effects = dict(zip(re.findall(r"<tr><td>(\w+)</td>", page), cells(page, "effect"), strict=True))
    assert "?" not in "".join(effects.values())
    assert effects == {
        "age": "0.5467 ≥ 0.1, reaches the floor",  # drift
        "score": "0.05354 < 0.1, below the floor",
        "plan": "0.0205 ≥ 0.02, reaches the floor",  # but p = 0.53: no drift
    }
    assert effect_text({"effect": 0.12, "effect_floor": None}) == "0.12 (a distance test: judged by its threshold)"
    assert effect_text({"effect": None}) == "–"


def test_how_computed_names_the_test_and_what_it_ran_on():
    features = {f["feature"]: f for f in drifted_report()["features"]}
    assert how_computed(features["age"]) == (
        "Kolmogorov–Smirnov test, exact, on all 2,000 reference and 800 current values. "
        "Effect: Wasserstein distance in reference standard deviations."
    )
    assert how_computed(features["plan"]) == (
        "chi-square test of homogeneity, on the counts of each category: 2,000 reference and 800 current values. "
        "Effect: total variation: the share of the distribution that moved."
    )
    # From a profile's bins, the engine's own account of the approximation.
    binned = {**features["age"], "approximation": "binned: |D − D_exact| ≤ 0.0040"}
    assert how_computed(binned).startswith("Kolmogorov–Smirnov test, binned: |D − D_exact| ≤ 0.0040. Effect: ")
    gross = {
        "test": "out_of_range",
        "status": "ok",  # drift: every value of a window too small for KS was beyond the reference
        "approximation": "20 values (< min_rows 50): only gross change is tested; out_of_range 100.0% vs 0.1% expected",
        "effect_measure": "out_of_range excess share",
    }
    assert how_computed(gross) == (
        "20 values (< min_rows 50): only gross change is tested; out_of_range 100.0% vs 0.1% expected. "
        "Effect: the share of values outside the reference's range beyond what the reference predicts."
    )
    small = {"test": "ks", "status": "insufficient_data", "approximation": None, "current_size": 12}
    assert how_computed(small) == "Not tested: 12 values in the window are too few for Kolmogorov–Smirnov test."
    custom = {"test": "my_test", "status": "ok", "approximation": None, "reference_size": 10, "current_size": 5}
    assert how_computed(custom) == "my_test, exact, on all 10 reference and 5 current values."
    page = render_html(drifted_report())
    assert all(cells(page, "how")) and len(cells(page, "how")) == 3


def test_every_histogram_bar_is_labelled_and_the_top_bin_is_open_above():
    features = {f["feature"]: f for f in drifted_report()["features"]}
    svg = _svg(features["age"]["plot"])
    ticks = [html.unescape(tick) for tick in re.findall(r'<text class="tick"[^>]*>(.*?)</text>', svg)]
    labels = features["age"]["plot"]["labels"]
    assert len(ticks) == 20 and svg.count("<rect") == 40
    assert ticks[:-1] == labels[:-1]
    assert ticks[-1] == ">" + labels[-2].removeprefix("≤")  # not the reference's maximum: it holds values above it
    categories = re.findall(r'<text class="tick"[^>]*>(.*?)</text>', _svg(features["plan"]["plot"]))
    assert categories == features["plan"]["plot"]["labels"] and sorted(categories) == ["a", "b", "c"]


def test_bins_empty_on_both_sides_are_left_out_and_long_categories_are_cut():
    plot = {"kind": "bins", "labels": ["≤0", "≤0", "≤0", "≤1", "≤5"], "reference": [0.6, 0, 0, 0.3, 0.1],
            "current": [0.5, 0, 0, 0.3, 0.2]}  # fmt: skip
    assert re.findall(r'<text class="tick"[^>]*>(.*?)</text>', _svg(plot)) == ["≤0", "≤1", "&gt;1"]
    long = {"kind": "categories", "labels": ["a very long category name"], "reference": [1.0], "current": [1.0]}
    svg = _svg(long)
    assert re.findall(r'<text class="tick"[^>]*>(.*?)</text>', svg) == ["a very long…"]
    assert "<title>a very long category name</title>" in svg


def test_the_page_shows_the_model_and_its_versions_or_the_files_compared():
    report = {**drifted_report(), "model": "churn", "model_versions": ["v1", "v2"]}
    report |= {"window_start": "2026-05-01T07:00:00+00:00", "window_end": "2026-05-01T08:00:00+00:00"}
    report |= {"alert": True, "quality_alert": False, "alerts_held_back": {}, "retrain_requested": True}
    page = render_html(report)
    assert "Model <b class='model'>churn</b> · versions <b class='version'>v1, v2</b>" in page
    assert "<a href='index.html'>every report of churn</a>" in page  # the DAG writes the index beside it
    assert "What driftline did: alert raised: drift; retrain requested.</p>" in page

    check = {**drifted_report(), "reference": "train.parquet", "current": "today.parquet", "model": "churn"}
    check |= {"reference_rows": 2000, "current_rows": 800}
    page = render_html(check)
    assert "reference <code>train.parquet</code>, current <code>today.parquet</code>" in page
    assert "version" not in page.split("</p>", 1)[0] and "index.html" not in page and "What driftline did" not in page


def index_report(end: str, **fields) -> dict:
    return {
        "window_start": "2026-05-01T06:00:00+00:00",
        "window_end": end,
        "verdict": "drift",
        "drifted_features": ["x"],
        "model_versions": ["v3"],
        "current_rows": 100,
        "alert": False,
        "quality_alert": False,
        "alerts_held_back": {},
        **fields,
    }


def test_the_index_says_for_each_alert_whether_it_was_sent_held_back_or_not_delivered():
    reports = [
        index_report("2026-05-01T10:00:00+00:00", alert=True, alerts_held_back={"drift": "alert drift-m-1 is near"}),
        index_report(
            "2026-05-01T09:00:00+00:00",
            alert=True,
            quality_alert=True,
            performance={"realized": {"status": "degraded"}},
        ),
        index_report("2026-05-01T08:00:00+00:00", alert=True),
        index_report("2026-05-01T07:00:00+00:00", verdict="insufficient_data", drifted_features=[]),
    ]
    sent = {
        "2026-05-01T09:00:00+00:00": ["drift", "quality"],
        "2026-05-01T07:00:00+00:00": ["insufficient_data"],  # known from the outbox alone
    }
    page = render_report_index("m", reports, sent=sent)
    assert cells(page, "alerts") == [
        "<span class='na' title='alert drift-m-1 is near'>drift: held back (cooldown)</span>",
        "drift: sent<br>quality: sent<br><span class='drift'>performance: not delivered yet</span>",
        "<span class='drift'>drift: not delivered yet</span>",
        "insufficient data: sent",
    ]
    assert cells(page, "version") == ["v3"] * 4
    # Without the outbox: what the reports say was raised.
    assert cells(render_report_index("m", reports[1:3]), "alerts") == [
        "drift: raised<br>quality: raised<br>performance: raised",
        "drift: raised",
    ]
    assert window_alert_kinds(reports[0]) == ["drift"]


def test_the_models_index_shows_each_models_newest_version_and_verdict():
    page = render_models_index({"churn": index_report("2026-05-01T10:00:00+00:00"), "fraud": None})
    assert re.findall(r"<tr><td><a href='(.*?)'>.*?<td class='version'>(.*?)</td><td class='(\w+)'>", page) == [
        ("model=churn/index.html", "v3", "drift"),
        ("model=fraud/index.html", "–", "na"),
    ]


def test_the_module_doctests_pass():
    import doctest

    from driftline.detectors import html as pages

    assert doctest.testmod(pages).failed == 0
