"""Jensen–Shannon distance, via :func:`scipy.spatial.distance.jensenshannon` (natural log)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import distance

from driftline.detectors.base import StatTest
from driftline.detectors.binning import shares
from driftline.detectors.registry import register


def _jensen_shannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, None]:
    return float(
        distance.jensenshannon(shares(reference_counts, smooth=False), shares(current_counts, smooth=False))
    ), None


jensen_shannon_test = register(
    StatTest(
        "jensen_shannon",
        ("numeric", "categorical"),
        0.1,
        "distance",
        _jensen_shannon,
        "counts",
        "Square root of the JS divergence; symmetric, bounded by √ln 2.",
        needs=("counts",),
    )
)
