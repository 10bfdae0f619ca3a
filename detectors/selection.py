"""Choosing a test for a feature: one pure function.

Rules, in order (``effective = n·m/(n+m)`` for reference size n and current size m):

1. A feature is *categorical-like* when it is categorical, or numeric with at
   most ``MAX_CATEGORIES_FOR_NUMERIC`` distinct reference values.
2. When ``effective > LARGE_SAMPLE`` the verdict is on effect size, because a
   p-value at these sizes flags differences nobody would act on:
   ``wasserstein`` (in reference standard deviations) for numeric features,
   ``jensen_shannon`` for categorical-like ones; both threshold 0.1.
3. Otherwise p-value tests: ``ks`` for numeric; for categorical-like features
   ``fisher_exact`` when binary and either side has fewer than
   ``SMALL_BINARY`` rows, ``z_test`` when binary, else ``chisquare``.

How this differs from Evidently (``get_default_stattest``), deliberately:

* Evidently switches to distances when the *reference* has more than 1000
  rows, whatever the current size, so a window of 8 rows against a large
  reference is judged by Wasserstein and can be flagged. Here the switch
  depends on the effective size of *both* samples, and windows below the
  configured ``min_rows`` get "insufficient data" before any test runs.
* Binary features with few rows get Fisher's exact test, where the normal
  approximation of the z-test is poor.
"""

from __future__ import annotations

from driftline.detectors.base import FeatureType

MAX_CATEGORIES_FOR_NUMERIC = 5
LARGE_SAMPLE = 1000
SMALL_BINARY = 100


def effective_size(reference_size: int, current_size: int) -> float:
    total = reference_size + current_size
    return reference_size * current_size / total if total else 0.0


def is_categorical_like(feature_type: FeatureType, n_unique: int) -> bool:
    return feature_type == "categorical" or n_unique <= MAX_CATEGORIES_FOR_NUMERIC


def select_test(feature_type: FeatureType, reference_size: int, current_size: int, n_unique: int) -> str:
    """Name of the registered test to run for one feature (see the module docstring for the rules)."""
    if feature_type not in ("numeric", "categorical"):
        raise ValueError(f"feature_type must be 'numeric' or 'categorical', got {feature_type!r}")
    if min(reference_size, current_size, n_unique) < 0:
        raise ValueError(f"sizes and n_unique must be non-negative, got {reference_size}, {current_size}, {n_unique}")
    large = effective_size(reference_size, current_size) > LARGE_SAMPLE
    if is_categorical_like(feature_type, n_unique):
        if large:
            return "jensen_shannon"
        if n_unique <= 2:
            return "fisher_exact" if min(reference_size, current_size) < SMALL_BINARY else "z_test"
        return "chisquare"
    return "wasserstein" if large else "ks"
