"""Multivariate drift: a joint shift that no single feature's test sees (PCA reconstruction error).

Two features can keep their distributions while their relation changes (a
correlation that flips sign, a combination of values the model never saw);
every univariate test passes. This check reads the profiles' row samples
(``Profile.joint``, up to ``SAMPLE_SIZE`` whole rows on each side):

1. Every row is encoded from the reference's summaries alone: a numeric value
   as its reference z-score (missing: 0, the mean), a categorical one as the
   indicators of the reference's ``CATEGORY_LEVELS`` commonest categories
   that hold at least ``LEVEL_SHARE`` of it,
   centred on their reference shares and scaled so the feature's variance is 1.
   Id-like (hashed) features are left out.
2. The reference rows are split in two at random (seeded). PCA is fitted on the
   first half, keeping the fewest components that explain ``EXPLAINED`` of its
   variance (the share NannyML's reconstruction drift uses).
3. The squared reconstruction error of each row of the other half and of each
   current row is computed with that fit; since the fit never saw either set,
   the two sets of errors have one distribution when nothing changed.
4. The test is Mann–Whitney's U, one-sided (current errors larger): its p-value
   joins the report's features in the multiple-testing correction, so a
   report's false alarms stay at alpha. The effect is the relative increase of
   the mean error, ``mean(current) / mean(reference half) − 1``; drift needs it
   at least ``effect_floor`` (default ``EFFECT_FLOOR``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from driftline.detectors.profile import CategoricalSummary, NumericSummary, Profile

EXPLAINED = 0.65
CATEGORY_LEVELS = 10
LEVEL_SHARE = 0.01
EFFECT_FLOOR = 0.1
MultivariateStatus = Literal["ok", "insufficient_data", "unavailable"]


@dataclass(frozen=True)
class MultivariateDrift:
    test: str
    status: MultivariateStatus
    message: str
    statistic: float | None = None  # mean reconstruction error of the current rows over the reference half's
    p_value: float | None = None
    threshold: float | None = None  # the p-value cut-off after the report's correction
    effect: float | None = None  # statistic − 1
    effect_floor: float = EFFECT_FLOOR
    drifted: bool | None = None
    significant: bool | None = None
    components: int | None = None
    dimensions: int | None = None
    features: tuple[str, ...] = ()
    reference_rows: int = 0
    current_rows: int = 0

    @property
    def verdict(self) -> str:
        if self.status != "ok":
            return self.status
        if self.drifted:
            return "drift"
        return "minor" if self.significant else "no_drift"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features), "verdict": self.verdict}


class _Encoder:
    """Rows of a profile's joint sample as numbers, from the reference's summaries only."""

    def __init__(self, reference: Profile) -> None:
        self.numeric: dict[str, tuple[float, float]] = {}
        self.categorical: dict[str, tuple[list[str], np.ndarray, float]] = {}
        for name, summary in reference.summaries.items():
            if name not in reference.joint:
                continue
            if isinstance(summary, NumericSummary):
                if summary.count and summary.std > 0:
                    self.numeric[name] = (summary.mean, summary.std)
            elif isinstance(summary, CategoricalSummary) and summary.hashed is None and summary.count:
                ranked = sorted(summary.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:CATEGORY_LEVELS]
                # Levels rarer than LEVEL_SHARE are left out: a row at one of them would get a huge indicator
                # and reconstruction error, and a few such rows decide the mean error (2,000 ids hid a joint shift).
                ranked = [(key, count) for key, count in ranked if count >= LEVEL_SHARE * summary.count]
                shares = np.array([count for _, count in ranked], dtype=float) / summary.count
                scale = math.sqrt(float(np.sum(shares * (1 - shares))))
                if ranked and scale > 0:
                    self.categorical[name] = ([key for key, _ in ranked], shares, scale)

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    def encode(self, joint: dict[str, np.ndarray]) -> np.ndarray:
        columns: list[np.ndarray] = []
        for name, (mean, std) in self.numeric.items():
            values = (np.asarray(joint[name], dtype=np.float64) - mean) / std
            columns.append(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)[:, None])
        for name, (levels, shares, scale) in self.categorical.items():
            values = np.asarray(joint[name], dtype=object)
            indicators = np.stack([values == level for level in levels], axis=1).astype(np.float64)
            columns.append((indicators - shares) / scale)
        return np.hstack(columns) if columns else np.empty((0, 0))


def reconstruction_drift(reference: Profile, current: Profile, *, min_rows: int, seed: int = 0) -> MultivariateDrift:
    """The check of the module docstring; ``threshold`` and ``drifted`` are set by the report's correction."""
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    test = "pca_reconstruction"
    if reference.joint and current.rows == 0:
        return MultivariateDrift(test, "insufficient_data", "the window has no rows", current_rows=0)
    if not reference.joint or not current.joint:
        return MultivariateDrift(
            test,
            "unavailable",
            "the profiles hold no row sample (a profile written before December 2026): rebuild the reference with "
            "'driftline profile' for the multivariate check",
        )
    encoder = _Encoder(reference)
    features = tuple(name for name in encoder.features if name in current.joint)
    if len(features) < 2:
        return MultivariateDrift(test, "unavailable", "fewer than two features to relate", features=features)
    encoder.numeric = {k: v for k, v in encoder.numeric.items() if k in features}
    encoder.categorical = {k: v for k, v in encoder.categorical.items() if k in features}
    reference_rows = encoder.encode(reference.joint)
    current_rows = encoder.encode(current.joint)
    half = len(reference_rows) // 2
    if min(half, len(current_rows)) < min_rows:
        return MultivariateDrift(
            test,
            "insufficient_data",
            f"{len(current_rows)} current and {half} held-out reference rows; at least {min_rows} each are needed",
            features=features,
            reference_rows=half,
            current_rows=len(current_rows),
        )
    order = np.random.default_rng(seed).permutation(len(reference_rows))
    fit, held_out = reference_rows[order[:half]], reference_rows[order[half:]]
    centre = fit.mean(axis=0)
    _, singular, components = np.linalg.svd(fit - centre, full_matrices=False)
    variance = singular**2
    kept = int(np.searchsorted(np.cumsum(variance) / variance.sum(), EXPLAINED) + 1)
    basis = components[:kept]

    def errors(rows: np.ndarray) -> np.ndarray:
        centred = rows - centre
        residual = centred - (centred @ basis.T) @ basis
        return np.asarray(np.einsum("ij,ij->i", residual, residual))

    reference_errors, current_errors = errors(held_out), errors(current_rows)
    ratio = float(current_errors.mean() / reference_errors.mean()) if reference_errors.mean() > 0 else math.inf
    p_value = float(stats.mannwhitneyu(current_errors, reference_errors, alternative="greater").pvalue)
    return MultivariateDrift(
        test,
        "ok",
        f"PCA of {len(features)} features ({basis.shape[1]} dimensions) keeps {kept} components; current rows' "
        f"reconstruction error is {ratio:.3g}× the held-out reference rows'",
        statistic=ratio,
        p_value=p_value,
        effect=ratio - 1,
        components=kept,
        dimensions=basis.shape[1],
        features=features,
        reference_rows=len(held_out),
        current_rows=len(current_rows),
    )
