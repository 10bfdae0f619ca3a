from __future__ import annotations

import pytest
from scipy import stats

from driftline.detectors.correction import corrected_threshold


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
