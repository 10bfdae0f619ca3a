"""Chi-square test of homogeneity (categorical), via :func:`scipy.stats.chi2_contingency`.

The two-sample form on the 2 × k table of counts, not a goodness-of-fit
against reference proportions: a category absent from the reference counts
instead of dividing by zero.

Sparse categories are pooled first: the approximation needs an expected count
of at least ``MIN_EXPECTED`` in every cell, and hundreds of rare categories
(zip codes) break it — the statistic then flags nearly every window that did
not change. Categories whose pooled total gives a smaller expected count in the
smaller sample are merged, rarest first, into groups that reach it. The
grouping reads only the pooled totals (the statistic's sufficient margin under
no drift), never which side a count came from, so the test stays valid — for
categories, which are what they are whichever side a row fell on. Bins a
reference's own quantiles defined are not: there the totals tell where the
window was sparse, so the engine groups them by reference mass and calls
:func:`homogeneity` with ``pool=False``.
"""

from __future__ import annotations

import numpy as np

from driftline.detectors.base import StatTest
from driftline.detectors.registry import register

MIN_EXPECTED = 5.0


def contingency(reference_counts: np.ndarray, current_counts: np.ndarray) -> np.ndarray:
    table = np.vstack([reference_counts, current_counts])
    return table[:, table.sum(axis=0) > 0]


def pool_sparse(table: np.ndarray, min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """Columns whose expected count in the smaller row is below ``min_expected`` merged, rarest first, into
    groups that reach it (a last short group joins the previous one); other columns stay as they are."""
    totals = table.sum(axis=0)
    grand, smaller = float(totals.sum()), float(table.sum(axis=1).min())
    if grand == 0 or smaller == 0:
        return table
    needed = min_expected * grand / smaller  # the pooled total a column needs
    sparse = np.flatnonzero(totals < needed)
    if sparse.size <= 1 and (sparse.size == 0 or table.shape[1] == 1):
        return table
    order = sparse[np.argsort(totals[sparse], kind="stable")]
    groups: list[np.ndarray] = []
    running, start = 0.0, 0
    for position, column in enumerate(order):
        running += totals[column]
        if running >= needed:
            groups.append(order[start : position + 1])
            running, start = 0.0, position + 1
    leftover = order[start:]
    kept = [table[:, np.flatnonzero(totals >= needed)]]
    pooled = [table[:, group].sum(axis=1, keepdims=True) for group in groups]
    if leftover.size:
        if pooled:
            pooled[-1] = pooled[-1] + table[:, leftover].sum(axis=1, keepdims=True)
        elif kept[0].shape[1]:
            # No full group: the short one joins the smallest column that had enough.
            dense = kept[0]
            smallest = int(np.argmin(dense.sum(axis=0)))
            dense = dense.copy()
            dense[:, smallest] += table[:, leftover].sum(axis=1)
            kept = [dense]
        else:
            pooled = [table[:, leftover].sum(axis=1, keepdims=True)]
    return np.hstack(kept + pooled)


def homogeneity(reference_counts: np.ndarray, current_counts: np.ndarray, *, pool: bool = True) -> tuple[float, float]:
    """``(statistic, p_value)`` of the 2 × k table; sparse columns pooled first unless ``pool`` is false (bins
    the reference itself defined: their totals tell which side was sparse, see the engine's numeric groups)."""
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    table = contingency(reference_counts, current_counts)
    if pool:
        table = pool_sparse(table)
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can have moved
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


chisquare_test = register(
    StatTest(
        "chisquare",
        ("categorical", "numeric"),
        0.05,
        "p_value",
        homogeneity,
        "counts",
        "Pearson's chi-square on the 2 × k table of category (or, for numeric features with ties, bin) counts.",
        needs=("counts",),
    )
)
