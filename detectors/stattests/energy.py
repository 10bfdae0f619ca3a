"""Energy distance (numeric), via :func:`scipy.stats.energy_distance`, on values scaled by the reference std."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register


def _energy(reference: np.ndarray, current: np.ndarray) -> tuple[float, None]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    scale = float(np.std(reference)) or 1.0
    return float(stats.energy_distance(reference / scale, current / scale)), None


energy_test = register(
    StatTest(
        "energy",
        ("numeric",),
        0.1,
        "distance",
        _energy,
        description="Energy distance between the standardized samples.",
        needs=("sample",),
    )
)
