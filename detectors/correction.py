"""Multiple-testing correction across the features of one report (scipy's BH)."""

from __future__ import annotations

from typing import Literal

import numpy as np

Correction = Literal["fdr", "bonferroni", "none"]
CORRECTIONS: tuple[Correction, ...] = ("fdr", "bonferroni", "none")


def corrected_threshold(p_values: list[float], alpha: float, method: Correction = "fdr") -> float:
    """The p-value cut-off that makes a feature drifted after correction over ``len(p_values)`` tests.

    * ``"fdr"`` (Benjamini–Hochberg): the largest ``k/m · alpha`` with
      ``p_(k) <= k/m · alpha``; no p-value passes if there is none (then the
      returned cut-off is ``alpha/m``, the smallest that could have passed).
      Equivalent to ``scipy.stats.false_discovery_control(p) <= alpha``.
    * ``"bonferroni"``: ``alpha / m``.
    * ``"none"``: ``alpha``.
    """
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if method not in CORRECTIONS:
        valid = f"{', '.join(repr(c) for c in CORRECTIONS[:-1])} or {CORRECTIONS[-1]!r}"
        raise ValueError(f"correction must be {valid}, got {method!r}")
    m = len(p_values)
    if m == 0 or method == "none":
        return alpha
    if method == "bonferroni":
        return alpha / m
    adjusted = stats.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")
    passing = np.asarray(p_values)[adjusted <= alpha]
    if passing.size == 0:
        return alpha / m
    ordered = np.sort(np.asarray(p_values))
    k = int(np.searchsorted(ordered, passing.max(), side="right"))
    return k / m * alpha
