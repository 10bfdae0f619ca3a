"""Anderson–Darling k-sample test (numeric), via :func:`scipy.stats.anderson_ksamp`.

scipy caps the p-value to [0.001, 0.25]; a drift verdict at α ≤ 0.001 is
therefore never reached by this test alone.
"""

from __future__ import annotations

import warnings

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _anderson(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the p-value cap is documented above
        result = stats.anderson_ksamp([reference, current])
    return float(result.statistic), float(result.pvalue)


anderson_test = register(
    StatTest(
        "anderson_darling",
        ("numeric",),
        0.05,
        "p_value",
        _anderson,
        description="k-sample Anderson–Darling; weights the tails more than KS.",
        needs=("sample",),
    )
)
