"""G-test (log-likelihood ratio) of homogeneity (categorical), via ``chi2_contingency(lambda_="log-likelihood")``."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register
from driftline.detectors.stattests.chisquare import contingency


def _g_test(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    table = contingency(reference_counts, current_counts)
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    return float(result.statistic), float(result.pvalue)


g_test = register(
    StatTest(
        "g_test",
        ("categorical",),
        0.05,
        "p_value",
        _g_test,
        "counts",
        "Likelihood-ratio test on the 2 × k table.",
        needs=("counts",),
    )
)
