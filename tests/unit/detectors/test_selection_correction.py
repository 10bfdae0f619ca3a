from __future__ import annotations

import pytest
from scipy import stats

from driftline.detectors.correction import corrected_threshold
from driftline.detectors.selection import select_test


@pytest.mark.parametrize(
    ("feature_type", "reference_size", "current_size", "n_unique", "expected"),
    [
        ("numeric", 5000, 500, 900, "ks"),  # effective size 455: p-values are meaningful
        ("numeric", 100_000, 1_000_000, 900, "wasserstein"),  # effective 90 909: effect size
        ("numeric", 100_000, 8, 900, "ks"),  # a tiny window is never judged by effect size alone
        ("numeric", 5000, 500, 3, "chisquare"),  # few distinct values behave like a category
        ("categorical", 5000, 500, 12, "chisquare"),
        ("categorical", 50_000, 50_000, 12, "jensen_shannon"),
        ("categorical", 5000, 60, 2, "fisher_exact"),
        ("categorical", 5000, 500, 2, "z_test"),
    ],
)
def test_selection(feature_type, reference_size, current_size, n_unique, expected):
    assert select_test(feature_type, reference_size, current_size, n_unique) == expected


def test_selection_rejects_bad_input():
    with pytest.raises(ValueError, match="feature_type must be 'numeric' or 'categorical', got 'text'"):
        select_test("text", 1, 1, 1)
    with pytest.raises(ValueError, match="non-negative"):
        select_test("numeric", -1, 1, 1)


def test_correction_matches_scipy_benjamini_hochberg():
    p_values = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    cutoff = corrected_threshold(p_values, 0.05, "fdr")
    by_scipy = stats.false_discovery_control(p_values) <= 0.05
    assert [p <= cutoff for p in p_values] == by_scipy.tolist()
    assert cutoff == pytest.approx(2 / 10 * 0.05)
    assert corrected_threshold(p_values, 0.05, "bonferroni") == pytest.approx(0.005)
    assert corrected_threshold(p_values, 0.05, "none") == 0.05
    assert corrected_threshold([0.5, 0.9], 0.05, "fdr") == pytest.approx(0.025)
    with pytest.raises(ValueError, match="correction must be 'fdr', 'bonferroni' or 'none', got 'holm'"):
        corrected_threshold(p_values, 0.05, "holm")
