"""Turning raw values into aligned counts for the counts-based tests."""

from __future__ import annotations

import numpy as np

DEFAULT_NUMERIC_BINS = 10
# Empty bins get this share before distances that take logarithms or ratios
# (the same smoothing Evidently applies), so one empty bin does not make PSI infinite.
EMPTY_BIN_SHARE = 1e-4


def is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iuf"


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges at the reference's quantiles, duplicates removed (discrete data gives fewer bins)."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts in ``len(inner_edges) + 1`` bins: (-inf, e0], (e0, e1], …, (e_last, inf)."""
    return np.bincount(np.searchsorted(inner_edges, values, side="left"), minlength=len(inner_edges) + 1)


def category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts over the union of categories (sorted), and the categories."""
    categories, inverse = np.unique(np.concatenate([reference.astype(str), current.astype(str)]), return_inverse=True)
    reference_counts = np.bincount(inverse[: len(reference)], minlength=len(categories))
    current_counts = np.bincount(inverse[len(reference):], minlength=len(categories))
    return reference_counts, current_counts, categories


def counts_for(reference: np.ndarray, current: np.ndarray, bins: int = DEFAULT_NUMERIC_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Numeric values: counts in reference-quantile bins; anything else: category counts."""
    if is_numeric(reference) and is_numeric(current):
        edges = quantile_edges(reference.astype(float), bins)
        return bin_counts(reference, edges), bin_counts(current, edges)
    reference_counts, current_counts, _ = category_counts(reference, current)
    return reference_counts, current_counts


def shares(counts: np.ndarray, smooth: bool = True) -> np.ndarray:
    total = counts.sum()
    proportions = counts / total
    if smooth:
        proportions = np.where(counts == 0, EMPTY_BIN_SHARE, proportions)
    return proportions
