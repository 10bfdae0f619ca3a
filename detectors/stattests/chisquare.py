"""Chi-square test of homogeneity (categorical), via :func:`scipy.stats.chi2_contingency`.

The two-sample form on the 2 × k table of counts, not a goodness-of-fit
against reference proportions: a category absent from the reference counts
instead of dividing by zero.
"""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def contingency(reference_counts: np.ndarray, current_counts: np.ndarray) -> np.ndarray:
    table = np.vstack([reference_counts, current_counts])
    return table[:, table.sum(axis=0) > 0]


def _chisquare(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    table = contingency(reference_counts, current_counts)
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can have moved
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


chisquare_test = register(
    StatTest(
        "chisquare",
        ("categorical",),
        0.05,
        "p_value",
        _chisquare,
        "counts",
        "Pearson's chi-square on the 2 × k table of category counts.",
        needs=("counts",),
    )
)
