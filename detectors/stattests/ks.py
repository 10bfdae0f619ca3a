"""Two-sample Kolmogorov–Smirnov test (numeric features), via :func:`scipy.stats.ks_2samp`."""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


ks_test = register(StatTest("ks", ("numeric",), 0.05, "p_value", _ks,
                            "Largest gap between the two empirical CDFs; p-value from the exact or asymptotic distribution."))
