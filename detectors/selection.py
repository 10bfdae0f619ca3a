"""Choosing a test for a feature: one pure function.

Every automatically chosen test is judged by its p-value at the window's actual
sizes, so a window of any size is flagged at the rate alpha when nothing changed;
the engine then asks for an effect at least the feature's floor before it calls
a significant change drift (:mod:`driftline.detectors.engine`). Rules, in order:

1. A feature is *categorical-like* when it is categorical, or numeric with at
   most ``MAX_CATEGORIES_FOR_NUMERIC`` distinct reference values.
2. Categorical-like: ``fisher_exact`` when binary and either side has fewer
   than ``SMALL_BINARY`` rows, ``z_test`` when binary, else ``chisquare``
   (sparse categories pooled so the approximation holds: hundreds of zip codes
   are judged as validly as five plans).
3. Numeric with ties (*discrete*: one value holds at least ``ATOM_SHARE`` of the
   reference — counts, a mass of zeros and a tail): ``chisquare`` on the
   reference's bins, each repeated value its own bin. The KS p-value assumes no
   ties and is conservative with them, so a change in the share of zeros would
   go unseen.
4. Other numeric features: ``ks``.

How this differs from Evidently (``get_default_stattest``), deliberately:

* Evidently switches to distances with fixed thresholds when the reference has
  more than 1000 rows. A fixed distance threshold is blind to plain shifts in
  large windows (a binary rate 0.30 → 0.35 is a Jensen–Shannon distance of
  0.04, under its 0.1) and cries wolf for many categories at small ones (the
  sampling noise of 500 categories exceeds 0.1). Here significance is judged
  at the sizes there are and the effect floor is a separate, settable part.
* Binary features with few rows get Fisher's exact test, where the normal
  approximation of the z-test is poor.
"""

from __future__ import annotations

from driftline.detectors.base import FeatureType

MAX_CATEGORIES_FOR_NUMERIC = 5
SMALL_BINARY = 100
ATOM_SHARE = 0.01


def is_categorical_like(feature_type: FeatureType, n_unique: int) -> bool:
    return feature_type == "categorical" or n_unique <= MAX_CATEGORIES_FOR_NUMERIC


def select_test(
    feature_type: FeatureType, reference_size: int, current_size: int, n_unique: int, *, discrete: bool = False
) -> str:
    """Name of the registered test to run for one feature (see the module docstring for the rules)."""
    if feature_type not in ("numeric", "categorical"):
        raise ValueError(f"feature_type must be 'numeric' or 'categorical', got {feature_type!r}")
    if min(reference_size, current_size, n_unique) < 0:
        raise ValueError(f"sizes and n_unique must be non-negative, got {reference_size}, {current_size}, {n_unique}")
    if is_categorical_like(feature_type, n_unique):
        if n_unique <= 2:
            return "fisher_exact" if min(reference_size, current_size) < SMALL_BINARY else "z_test"
        return "chisquare"
    return "chisquare" if discrete else "ks"
