"""Mann–Whitney U test (numeric, two-sided), via :func:`scipy.stats.mannwhitneyu`."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _mann_whitney(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    result = stats.mannwhitneyu(reference, current, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


mann_whitney_test = register(
    StatTest(
        "mann_whitney",
        ("numeric",),
        0.05,
        "p_value",
        _mann_whitney,
        description="Rank-sum test for a location shift; blind to changes of spread.",
        needs=("sample",),
    )
)
