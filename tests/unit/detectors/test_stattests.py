from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftline.detectors import available_tests, build_drift_report, get_test, infer_feature_types
from driftline.detectors.correction import corrected_threshold
from driftline.detectors.selection import select_test


def test_ks_equals_scipy():
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=800), rng.normal(0.2, size=500)
    result = get_test("ks").run(reference, current)
    expected = stats.ks_2samp(reference, current)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert result.drifted is bool(expected.pvalue <= 0.05) is True
    assert (result.reference_size, result.current_size, result.threshold) == (800, 500, 0.05)


def test_chisquare_equals_scipy_on_the_count_table():
    rng = np.random.default_rng(12)
    reference = rng.choice(["a", "b", "c"], size=1000, p=[0.5, 0.3, 0.2])
    current = rng.choice(["a", "b", "c", "d"], size=600, p=[0.4, 0.3, 0.2, 0.1])
    table = np.array([[(reference == c).sum() for c in "abcd"], [(current == c).sum() for c in "abcd"]])
    expected = stats.chi2_contingency(table, correction=False)
    result = get_test("chisquare").run(reference, current)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_unknown_test_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown drift test 'kss'; valid names: chisquare, ks"):
        get_test("kss")
    assert {"ks", "chisquare"} <= set(available_tests())


def test_empty_input_is_rejected_up_front():
    with pytest.raises(ValueError, match="must both be non-empty"):
        get_test("ks").run(np.array([]), np.array([1.0]))


@pytest.mark.parametrize(("feature_type", "n_unique", "expected"),
                         [("numeric", 100, "ks"), ("numeric", 3, "chisquare"), ("categorical", 40, "chisquare")])
def test_selection(feature_type, n_unique, expected):
    assert select_test(feature_type, 1000, 1000, n_unique) == expected


def test_correction_matches_scipy_benjamini_hochberg():
    p_values = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    cutoff = corrected_threshold(p_values, 0.05, "fdr")
    by_scipy = stats.false_discovery_control(p_values) <= 0.05
    assert [p <= cutoff for p in p_values] == by_scipy.tolist()
    assert cutoff == pytest.approx(2 / 10 * 0.05)
    assert corrected_threshold(p_values, 0.05, "bonferroni") == pytest.approx(0.005)
    assert corrected_threshold([0.5, 0.9], 0.05, "fdr") == pytest.approx(0.025)
    with pytest.raises(ValueError, match="correction must be 'fdr', 'bonferroni' or 'none', got 'holm'"):
        corrected_threshold(p_values, 0.05, "holm")


def test_report_flags_shifted_features_only_and_refuses_tiny_windows():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000), "c": rng.choice(list("xyz"), 3000)})
    current = pd.DataFrame({"a": rng.normal(0.5, size=2000), "b": rng.normal(size=2000),
                            "c": rng.choice(list("xyz"), 2000, p=[0.6, 0.2, 0.2])})
    types = infer_feature_types(reference)
    assert types == {"a": "numeric", "b": "numeric", "c": "categorical"}
    report = build_drift_report(reference, current, types)
    assert report.drifted_features == ["a", "c"]
    tiny = build_drift_report(reference, current.head(8), types)
    assert all(f.result.status == "insufficient_data" and f.result.drifted is None for f in tiny.features)
    assert tiny.drifted_features == [] and tiny.share_drifted == 0.0
    with pytest.raises(ValueError, match="features missing from the data: 'd' \\(reference\\), 'd' \\(current\\)"):
        build_drift_report(reference, current, {"d": "numeric"})
