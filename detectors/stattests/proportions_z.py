"""Two-proportion z-test (binary categorical), pooled variance, two-sided.

The share of the first category in the reference vs the current window; scipy
has no two-sample proportion test, so it is computed here:
``z = (p̂₁ − p̂₂) / √(p̂ (1 − p̂) (1/n₁ + 1/n₂))``, ``p = 2 · Φ(−|z|)``.
"""

from __future__ import annotations

import math

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _z_test(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    if len(reference_counts) > 2:
        raise ValueError(f"the two-proportion z-test needs a binary feature, got {len(reference_counts)} categories")
    n1, n2 = reference_counts.sum(), current_counts.sum()
    x1, x2 = reference_counts[0], current_counts[0]
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return float(z), float(2 * stats.norm.sf(abs(z)))


z_test = register(
    StatTest(
        "z_test",
        ("categorical",),
        0.05,
        "p_value",
        _z_test,
        "counts",
        "Two-proportion z-test for binary features.",
        binary_only=True,
        needs=("counts",),
    )
)
