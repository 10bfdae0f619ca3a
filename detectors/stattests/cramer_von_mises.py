"""Two-sample Cramér–von Mises test (numeric), via :func:`scipy.stats.cramervonmises_2samp`."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _cvm(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    result = stats.cramervonmises_2samp(reference, current, method="asymptotic")
    return float(result.statistic), float(result.pvalue)


cvm_test = register(
    StatTest(
        "cramer_von_mises",
        ("numeric",),
        0.05,
        "p_value",
        _cvm,
        description=(
            "Integrated squared gap between the empirical CDFs; more sensitive than KS to spread-out differences."
        ),
        needs=("sample",),
    )
)
