"""Choosing a test for a feature: one pure function."""

from __future__ import annotations

from driftline.detectors.base import FeatureType

# A numeric column with this few distinct values behaves like a category.
MAX_CATEGORIES_FOR_NUMERIC_AS_CATEGORICAL = 5


def select_test(feature_type: FeatureType, reference_size: int, current_size: int, n_unique: int) -> str:
    """Name of the registered test to run for one feature.

    * categorical features, and numeric ones with at most five distinct values
      in the reference: ``chisquare``;
    * other numeric features: ``ks``.

    Sizes are taken so that later rules (effect sizes for very large samples)
    slot in here without changing callers.
    """
    if feature_type not in ("numeric", "categorical"):
        raise ValueError(f"feature_type must be 'numeric' or 'categorical', got {feature_type!r}")
    if reference_size < 0 or current_size < 0 or n_unique < 0:
        raise ValueError("sizes and n_unique must be non-negative")
    if feature_type == "categorical" or n_unique <= MAX_CATEGORIES_FOR_NUMERIC_AS_CATEGORICAL:
        return "chisquare"
    return "ks"
