"""Normalized Wasserstein-1 distance (numeric): ``wasserstein_distance(ref, cur) / std(ref)``.

An effect size in reference standard deviations (Evidently's default for large
numeric columns, threshold 0.1). A constant reference has no scale: the raw
distance is used.
"""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def normalize(distance: float, reference_std: float) -> float:
    return distance / reference_std if reference_std > 0 else distance


def _wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, None]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    return normalize(float(stats.wasserstein_distance(reference, current)), float(np.std(reference))), None


wasserstein_test = register(
    StatTest(
        "wasserstein",
        ("numeric",),
        0.1,
        "distance",
        _wasserstein,
        description="Earth mover's distance in reference standard deviations.",
        needs=("bin_counts", "tail_excess", "moments"),
    )
)
