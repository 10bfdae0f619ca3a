"""Every registered test: figures equal scipy's (or the textbook formula) on seeded data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from driftline.detectors import available_tests, get_test
from driftline.detectors.binning import EMPTY_BIN_SHARE, bin_counts, quantile_edges

RNG = np.random.default_rng(20261121)
REFERENCE = RNG.normal(0, 1, 700)
CURRENT = RNG.normal(0.25, 1.2, 450)
CAT_REFERENCE = RNG.choice(["a", "b", "c", "d"], 900, p=[0.4, 0.3, 0.2, 0.1])
CAT_CURRENT = RNG.choice(["a", "b", "c", "d", "e"], 600, p=[0.3, 0.3, 0.2, 0.1, 0.1])
BIN_REFERENCE = RNG.choice(["yes", "no"], 80, p=[0.3, 0.7])
BIN_CURRENT = RNG.choice(["yes", "no"], 60, p=[0.6, 0.4])


def binned(reference, current, bins=10):
    edges = quantile_edges(reference, bins)
    return bin_counts(reference, edges), bin_counts(current, edges)


def smoothed(counts):
    shares = counts / counts.sum()
    return np.where(counts == 0, EMPTY_BIN_SHARE, shares)


def test_all_fifteen_tests_are_registered_with_type_threshold_and_direction():
    tests = available_tests()
    assert sorted(tests) == sorted(
        [
            "ks",
            "cramer_von_mises",
            "anderson_darling",
            "mann_whitney",
            "wasserstein",
            "energy",
            "psi",
            "kl_divergence",
            "jensen_shannon",
            "hellinger",
            "total_variation",
            "chisquare",
            "g_test",
            "z_test",
            "fisher_exact",
        ]
    )
    for test in tests.values():
        assert test.direction in ("p_value", "distance") and test.feature_types and test.default_threshold > 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ks", lambda r, c: (stats.ks_2samp(r, c).statistic, stats.ks_2samp(r, c).pvalue)),
        (
            "cramer_von_mises",
            lambda r, c: (stats.cramervonmises_2samp(r, c).statistic, stats.cramervonmises_2samp(r, c).pvalue),
        ),
        (
            "anderson_darling",
            lambda r, c: (stats.anderson_ksamp([r, c]).statistic, stats.anderson_ksamp([r, c]).pvalue),
        ),
        ("mann_whitney", lambda r, c: (stats.mannwhitneyu(r, c).statistic, stats.mannwhitneyu(r, c).pvalue)),
        ("wasserstein", lambda r, c: (stats.wasserstein_distance(r, c) / np.std(r), None)),
        ("energy", lambda r, c: (stats.energy_distance(r / np.std(r), c / np.std(r)), None)),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_value_tests_equal_scipy(name, expected):
    result = get_test(name).run(REFERENCE, CURRENT)
    statistic, p_value = expected(REFERENCE, CURRENT)
    assert result.statistic == pytest.approx(statistic, abs=1e-9)
    if p_value is None:
        assert result.p_value is None
    else:
        assert result.p_value == pytest.approx(p_value, abs=1e-9)
    assert (result.reference_size, result.current_size) == (700, 450)


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("psi", lambda r, c: float(np.sum((smoothed(c) - smoothed(r)) * np.log(smoothed(c) / smoothed(r))))),
        ("kl_divergence", lambda r, c: float(stats.entropy(smoothed(r), smoothed(c)))),
        ("jensen_shannon", lambda r, c: float(distance.jensenshannon(r / r.sum(), c / c.sum()))),
        ("hellinger", lambda r, c: float(np.sqrt(np.sum((np.sqrt(r / r.sum()) - np.sqrt(c / c.sum())) ** 2) / 2))),
        ("total_variation", lambda r, c: float(np.abs(r / r.sum() - c / c.sum()).sum() / 2)),
    ],
)
@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_distance_tests_on_bins_and_categories(name, formula, kind):
    if kind == "numeric":
        reference_values, current_values = REFERENCE, CURRENT
        reference_counts, current_counts = binned(REFERENCE, CURRENT)
    else:
        reference_values, current_values = CAT_REFERENCE, CAT_CURRENT
        reference_counts = np.array([(k == CAT_REFERENCE).sum() for k in "abcde"])
        current_counts = np.array([(k == CAT_CURRENT).sum() for k in "abcde"])
    result = get_test(name).run(reference_values, current_values)
    assert result.statistic == pytest.approx(formula(reference_counts, current_counts), abs=1e-9)
    assert result.p_value is None and result.direction == "distance"
    assert get_test(name).run_counts(reference_counts, current_counts).statistic == result.statistic


def test_chisquare_and_g_test_equal_scipy_on_the_count_table():
    table = np.array([[(k == CAT_REFERENCE).sum() for k in "abcde"], [(k == CAT_CURRENT).sum() for k in "abcde"]])
    pearson = stats.chi2_contingency(table, correction=False)
    likelihood = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    chisquare = get_test("chisquare").run(CAT_REFERENCE, CAT_CURRENT)
    g_test = get_test("g_test").run(CAT_REFERENCE, CAT_CURRENT)
    assert (chisquare.statistic, chisquare.p_value) == pytest.approx((pearson.statistic, pearson.pvalue), abs=1e-9)
    assert (g_test.statistic, g_test.p_value) == pytest.approx((likelihood.statistic, likelihood.pvalue), abs=1e-9)


def test_binary_tests():
    table = np.array(
        [[(k == BIN_REFERENCE).sum() for k in ("no", "yes")], [(k == BIN_CURRENT).sum() for k in ("no", "yes")]]
    )
    fisher = get_test("fisher_exact").run(BIN_REFERENCE, BIN_CURRENT)
    expected = stats.fisher_exact(table)
    assert (fisher.statistic, fisher.p_value) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-9)
    z = get_test("z_test").run(BIN_REFERENCE, BIN_CURRENT)
    n1, n2, x1, x2 = table[0].sum(), table[1].sum(), table[0, 0], table[1, 0]
    pooled = (x1 + x2) / (n1 + n2)
    z_expected = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert z.statistic == pytest.approx(z_expected, abs=1e-12)
    assert z.p_value == pytest.approx(2 * stats.norm.sf(abs(z_expected)), abs=1e-12)
    assert z.drifted is True and fisher.drifted is True
    with pytest.raises(ValueError, match="needs a binary feature, got 5 categories"):
        get_test("z_test").run(CAT_REFERENCE, CAT_CURRENT)


def test_verdict_direction():
    ks = get_test("ks").run(REFERENCE, CURRENT, threshold=0.01)
    assert ks.drifted is (ks.p_value <= 0.01)
    psi = get_test("psi").run(REFERENCE, CURRENT)
    assert psi.drifted is (psi.statistic >= 0.1)
    assert get_test("psi").run(REFERENCE, CURRENT, threshold=10.0).drifted is False


def test_unknown_names_and_bad_options_are_explained():
    with pytest.raises(ValueError, match="unknown drift test 'kss'; valid names: anderson_darling, chisquare"):
        get_test("kss")
    with pytest.raises(ValueError, match="must both be non-empty"):
        get_test("ks").run(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="a p-value threshold must be in \\(0, 1\\), got 5"):
        get_test("ks").run(REFERENCE, CURRENT, threshold=5)
    with pytest.raises(ValueError, match="counts must be aligned"):
        get_test("psi").run_counts(np.array([1, 2]), np.array([1, 2, 3]))
