"""Chi-square test of homogeneity (categorical features), via :func:`scipy.stats.chi2_contingency`.

This is the two-sample form (reference counts vs current counts over the union
of categories), not a goodness-of-fit against reference proportions: a
category absent from the reference does not divide by zero, it simply counts.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def category_counts(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """A 2 × k table of counts over the union of categories, in sorted category order."""
    categories, inverse = np.unique(np.concatenate([reference.astype(str), current.astype(str)]), return_inverse=True)
    table = np.zeros((2, len(categories)), dtype=np.int64)
    np.add.at(table[0], inverse[: len(reference)], 1)
    np.add.at(table[1], inverse[len(reference):], 1)
    return table


def _chisquare(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    table = category_counts(reference, current)
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can have moved
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


chisquare_test = register(StatTest("chisquare", ("categorical",), 0.05, "p_value", _chisquare,
                                   "Pearson's chi-square test of homogeneity on the 2 × k table of category counts."))
