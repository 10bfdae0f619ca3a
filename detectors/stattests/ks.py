"""Two-sample Kolmogorov–Smirnov test (numeric), via :func:`scipy.stats.ks_2samp`."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def ks_from_cdfs(
    reference_cdf: np.ndarray, current_cdf: np.ndarray, reference_size: int, current_size: int
) -> tuple[float, float]:
    """KS statistic as the largest gap between two CDFs evaluated at common points, with the asymptotic p-value."""
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    statistic = float(np.max(np.abs(reference_cdf - current_cdf)))
    effective = reference_size * current_size / (reference_size + current_size)
    return statistic, float(stats.kstwo.sf(statistic, max(1, round(effective))))


ks_test = register(
    StatTest(
        "ks",
        ("numeric",),
        0.05,
        "p_value",
        _ks,
        description="Largest gap between the two empirical CDFs.",
        needs=("bin_counts",),
    )
)
