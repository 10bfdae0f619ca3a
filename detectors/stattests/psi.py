"""Population stability index: ``Σ (c − r) · ln(c / r)`` over bins (numeric) or categories."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.binning import shares
from driftline.detectors.registry import register


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, None]:
    r, c = shares(reference_counts), shares(current_counts)
    return float(np.sum((c - r) * np.log(c / r))), None


psi_test = register(
    StatTest(
        "psi",
        ("numeric", "categorical"),
        0.1,
        "distance",
        _psi,
        "counts",
        "PSI; 0.1 is the usual 'moderate shift' line, 0.25 'major'.",
        needs=("counts",),
    )
)
