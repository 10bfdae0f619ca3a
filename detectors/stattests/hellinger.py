"""Hellinger distance: ``‖√r − √c‖₂ / √2`` (0 = identical, 1 = disjoint)."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.binning import shares
from driftline.detectors.registry import register


def _hellinger(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, None]:
    r, c = shares(reference_counts, smooth=False), shares(current_counts, smooth=False)
    return float(np.sqrt(np.sum((np.sqrt(r) - np.sqrt(c)) ** 2) / 2)), None


hellinger_test = register(
    StatTest(
        "hellinger",
        ("numeric", "categorical"),
        0.1,
        "distance",
        _hellinger,
        "counts",
        "Hellinger distance between the binned distributions.",
        needs=("counts",),
    )
)
