from __future__ import annotations

import pytest

from driftline.detectors.selection import select_test


@pytest.mark.parametrize(
    ("feature_type", "reference_size", "current_size", "n_unique", "expected"),
    [
        ("numeric", 5000, 500, 900, "ks"),
        ("numeric", 100_000, 1_000_000, 900, "ks"),  # significance at every size; the effect floor is separate
        ("numeric", 100_000, 8, 900, "ks"),
        ("numeric", 5000, 500, 3, "chisquare"),  # few distinct values behave like a category
        ("categorical", 5000, 500, 12, "chisquare"),
        ("categorical", 50_000, 50_000, 12, "chisquare"),
        ("categorical", 50_000, 50_000, 800, "chisquare"),  # hundreds of zip codes: sparse ones pooled
        ("categorical", 5000, 60, 2, "fisher_exact"),
        ("categorical", 5000, 500, 2, "z_test"),
    ],
)
def test_selection(feature_type, reference_size, current_size, n_unique, expected):
    assert select_test(feature_type, reference_size, current_size, n_unique) == expected


def test_numeric_features_with_ties_get_a_test_valid_for_discrete_data():
    assert select_test("numeric", 10_000, 5000, 40, discrete=True) == "chisquare"
    assert select_test("numeric", 10_000, 5000, 40, discrete=False) == "ks"


def test_selection_rejects_bad_input():
    with pytest.raises(ValueError, match="feature_type must be 'numeric' or 'categorical', got 'text'"):
        select_test("text", 1, 1, 1)
    with pytest.raises(ValueError, match="non-negative"):
        select_test("numeric", -1, 1, 1)
