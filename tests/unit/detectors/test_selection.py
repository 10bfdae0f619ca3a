from __future__ import annotations

import pytest

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
