"""Fisher's exact test (binary categorical, small samples), via :func:`scipy.stats.fisher_exact`."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _fisher(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    if len(reference_counts) > 2:
        raise ValueError(f"Fisher's exact test here needs a binary feature, got {len(reference_counts)} categories")
    table = np.vstack([reference_counts, current_counts])
    if table.shape[1] == 1:
        return 1.0, 1.0
    result = stats.fisher_exact(table)
    return float(result.statistic), float(result.pvalue)


fisher_test = register(
    StatTest(
        "fisher_exact",
        ("categorical",),
        0.05,
        "p_value",
        _fisher,
        "counts",
        "Exact test on the 2 × 2 table; for binary features with few rows.",
        binary_only=True,
        needs=("counts",),
    )
)
