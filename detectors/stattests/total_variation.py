"""Total variation distance: ``½ Σ |r − c|`` — the largest difference in probability any event can have."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.binning import shares
from driftline.detectors.registry import register


def _total_variation(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, None]:
    return float(np.abs(shares(reference_counts, smooth=False) - shares(current_counts, smooth=False)).sum() / 2), None


total_variation_test = register(
    StatTest(
        "total_variation",
        ("numeric", "categorical"),
        0.1,
        "distance",
        _total_variation,
        "counts",
        "Total variation distance.",
        needs=("counts",),
    )
)
