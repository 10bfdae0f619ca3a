"""Kullback–Leibler divergence KL(reference ‖ current), via :func:`scipy.stats.entropy` (natural log)."""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.binning import shares
from driftline.detectors.registry import register


def _kl(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, None]:
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    return float(stats.entropy(shares(reference_counts), shares(current_counts))), None


kl_test = register(
    StatTest(
        "kl_divergence",
        ("numeric", "categorical"),
        0.1,
        "distance",
        _kl,
        "counts",
        "KL(reference ‖ current) in nats.",
        needs=("counts",),
    )
)
