"""The drift engine: reference profile × window profile → one report.

Every feature gets a test (chosen by :func:`~driftline.detectors.selection.select_test`
unless configured), judged by its p-value at the window's actual sizes, and an
effect size (:data:`EFFECT_FLOORS`): a significant change is *drift* when its
effect reaches the feature's floor and *minor* below it (reported, never
alarmed), so a huge window's tiny but real changes do not page anyone and a
plain shift is never missed because the window is large. Tests run from the
profiles:

* counts-based tests (PSI, KL, JS, Hellinger, TV, chi-square, G, z, Fisher)
  run on aligned counts: categories, or for numeric features ten
  equal-reference-mass bins — exactly as on raw data binned the same way;
* value-based tests run exactly (scipy) when both profiles' samples hold all
  their values (windows up to ``SAMPLE_SIZE`` rows); otherwise KS and
  Wasserstein run on the ``FINE_BINS`` reference-quantile bins, with the error
  bound in ``approximation`` (KS: ``|D − D_exact| ≤ max bin share``), and the
  others on the bounded samples.

A feature with fewer than ``min_rows`` values in the window has no verdict
(``insufficient_data``), except for gross change, which tests valid at any size
still find (:func:`gross_change`): values outside the reference's range,
categories the reference never had, a jump in the missing share.

A multivariate check (:mod:`driftline.detectors.multivariate`) relates the
features to each other. Every p-value of the report (features, gross changes,
the multivariate check) is corrected together (Benjamini–Hochberg by default),
so a report's false alarms stay at alpha; a configured distance test keeps its
own threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from driftline.detectors.base import DriftResult, FeatureType, ProfilePart, StatTest, StatTestOptions
from driftline.detectors.correction import Correction, corrected_threshold
from driftline.detectors.multivariate import MultivariateDrift, reconstruction_drift
from driftline.detectors.profile import OTHER, CategoricalSummary, NumericSummary, Profile
from driftline.detectors.quality import QualityIssue, quality_checks
from driftline.detectors.registry import get_test
from driftline.detectors.selection import ATOM_SHARE, is_categorical_like, select_test
from driftline.detectors.stattests.chisquare import MIN_EXPECTED, homogeneity
from driftline.detectors.stattests.ks import ks_from_cdfs
from driftline.detectors.stattests.wasserstein import normalize

REPORT_VERSION = 2
# The smallest effect a significant change needs to be drift, by kind: Wasserstein distance in reference standard
# deviations for numeric features, total variation (the share of the mass that moved) for categorical-like ones.
EFFECT_FLOORS: dict[FeatureType, float] = {"numeric": 0.1, "categorical": 0.02}
# A small window's gross change: the share out of range / in unseen categories / missing must exceed what the
# reference predicts by at least this much.
GROSS_SHARE = 0.1
COARSE_BINS = 10
DISCRETE_GROUPS = 50  # a numeric feature with ties is tested on bins of at least 1/50 of the reference (or one value)
PLOT_BINS = 20
PLOT_CATEGORIES = 12


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    feature_type: FeatureType
    result: DriftResult
    plot: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> float:
        """How far past its threshold (and effect floor) the feature is (> 1 drifted); −1 without a verdict."""
        r = self.result
        if r.status != "ok" or r.statistic is None:
            return -1.0
        if r.direction == "p_value":
            assert r.p_value is not None
            significance = -math.log10(max(r.p_value, 1e-300)) / -math.log10(r.threshold)
            if r.effect is None or not r.effect_floor:
                return significance
            return min(significance, r.effect / r.effect_floor)
        return r.statistic / r.threshold if r.threshold else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "feature_type": self.feature_type,
            **self.result.to_dict(),
            "severity": self.severity,
            "plot": self.plot,
        }


@dataclass
class DriftReport:
    features: list[FeatureDrift]
    alpha: float
    correction: Correction
    quality: list[QualityIssue] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    multivariate: MultivariateDrift | None = None
    excluded: dict[str, str] = field(default_factory=dict)  # columns of the reference not tested, and why

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.result.drifted]

    @property
    def minor_features(self) -> list[str]:
        return [f.feature for f in self.features if f.result.verdict == "minor"]

    @property
    def verdict(self) -> str:
        """``drift`` (a feature or the multivariate check), else ``insufficient_data`` when any feature had too few
        values to be judged (never silently "no drift"), else ``no_drift``."""
        if self.drifted_features or (self.multivariate is not None and self.multivariate.drifted):
            return "drift"
        return "insufficient_data" if self.insufficient_features else "no_drift"

    @property
    def share_drifted(self) -> float:
        judged = [f for f in self.features if f.result.drifted is not None]
        return len(self.drifted_features) / len(judged) if judged else 0.0

    @property
    def insufficient_features(self) -> list[str]:
        return [f.feature for f in self.features if f.result.status == "insufficient_data"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_version": REPORT_VERSION,
            **self.metadata,
            "alpha": self.alpha,
            "correction": self.correction,
            "verdict": self.verdict,
            "drifted_features": self.drifted_features,
            "share_drifted": self.share_drifted,
            "minor_features": self.minor_features,
            "insufficient_data": self.insufficient_features,
            "multivariate": self.multivariate.to_dict() if self.multivariate is not None else {"status": "off"},
            "features": [f.to_dict() for f in sorted(self.features, key=lambda f: -f.severity)],
            "quality": [q.to_dict() for q in self.quality],
            "excluded_columns": [{"column": name, "reason": why} for name, why in self.excluded.items()],
        }


def _accepts(test: StatTest, feature_type: FeatureType, categorical_like: bool) -> bool:
    return feature_type in test.feature_types or (categorical_like and "categorical" in test.feature_types)


def _coarse_groups(reference_bins: np.ndarray, groups: int) -> np.ndarray:
    """Group index of each fine bin so that groups hold about equal reference mass."""
    cumulative_before = np.concatenate([[0], np.cumsum(reference_bins)[:-1]]) / max(reference_bins.sum(), 1)
    return np.asarray(np.minimum((cumulative_before * groups).astype(int), groups - 1), dtype=int)


def _aligned_categories(ref: CategoricalSummary, cur: CategoricalSummary) -> tuple[list[str], np.ndarray, np.ndarray]:
    if ref.hashed is not None and cur.hashed is not None:
        keys = [f"hash bucket {i}" for i in range(len(ref.hashed))]
        return keys, ref.hashed, cur.hashed
    if ref.hashed is not None or cur.hashed is not None:
        raise ValueError("a hashed categorical summary can only be compared with a hashed one")
    pooled = OTHER in ref.counts  # a profile of before 2026-12 pooled its rare categories
    current_counts: dict[str, int] = {}
    for key, value in cur.counts.items():
        target = OTHER if pooled and key not in ref.counts else key
        current_counts[target] = current_counts.get(target, 0) + value
    keys = sorted(set(ref.counts) | set(current_counts))
    return keys, np.array([ref.counts.get(k, 0) for k in keys]), np.array([current_counts.get(k, 0) for k in keys])


def _numeric_plot(ref: NumericSummary, cur: NumericSummary) -> dict[str, Any]:
    group = _coarse_groups(ref.bin_counts, PLOT_BINS)
    reference = np.bincount(group, weights=ref.bin_counts, minlength=PLOT_BINS)
    current = np.bincount(group, weights=cur.bin_counts, minlength=PLOT_BINS)
    # Label each plotted bin by its upper edge: the edge closing its last fine bin (the maximum for the top bin).
    upper_edges = np.append(ref.inner_edges, ref.maximum)
    last_fine_bin = np.searchsorted(group, np.arange(PLOT_BINS), side="right") - 1
    upper = [float(upper_edges[max(i, 0)]) for i in last_fine_bin]
    return {
        "kind": "bins",
        "labels": [f"≤{u:.3g}" for u in upper],
        "reference": (reference / max(reference.sum(), 1)).round(5).tolist(),
        "current": (current / max(current.sum(), 1)).round(5).tolist(),
    }


def _categorical_plot(keys: list[str], reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    order = np.argsort(-(reference / max(reference.sum(), 1) + current / max(current.sum(), 1)))[:PLOT_CATEGORIES]
    return {
        "kind": "categories",
        "labels": [keys[i] for i in order],
        "reference": (reference[order] / max(reference.sum(), 1)).round(5).tolist(),
        "current": (current[order] / max(current.sum(), 1)).round(5).tolist(),
    }


def missing_profile_parts(test: StatTest, summary: NumericSummary | CategoricalSummary) -> list[ProfilePart]:
    """The parts of a feature's profile that ``test`` declares it needs and the summary does not hold."""
    numeric = isinstance(summary, NumericSummary)
    holds: dict[ProfilePart, bool] = {
        "counts": summary.bin_counts.size > 0 if isinstance(summary, NumericSummary) else True,
        "bin_counts": isinstance(summary, NumericSummary) and summary.bin_counts.size > 0,
        "sample": len(summary.sample) > 0,
        "tail_excess": numeric,
        "moments": numeric and summary.count > 0,
    }
    return [part for part in test.needs if not holds[part]]


def _check_needs(
    test: StatTest, name: str, ref: NumericSummary | CategoricalSummary, cur: NumericSummary | CategoricalSummary
) -> None:
    for side, summary in (("reference", ref), ("current", cur)):
        missing = missing_profile_parts(test, summary)
        if missing:
            raise ValueError(
                f"test {test.name!r} on feature {name!r} needs the profile's {', '.join(missing)}, which the "
                f"{side} profile does not hold; rebuild it with 'driftline profile' or choose another test"
            )


def _numeric_feature(
    test: StatTest, ref: NumericSummary, cur: NumericSummary, categorical_like: bool, options: StatTestOptions
) -> DriftResult:
    if test.input_kind == "counts":
        if categorical_like:
            keep = (ref.bin_counts + cur.bin_counts) > 0
            return test.run_counts(ref.bin_counts[keep], cur.bin_counts[keep], options)
        ref_groups, cur_groups = numeric_groups(ref, cur)
        if test.name == "chisquare":
            # The groups are the reference's own quantiles, so the pooled totals are not a margin free of the
            # split here: pooling sparse groups by them (what chisquare does for categories) would select the
            # groups where the window had few values and inflate the statistic. The groups already hold
            # enough expected values; they are tested as they are.
            statistic, p_value = homogeneity(ref_groups, cur_groups, pool=False)
            result = test.result(
                statistic,
                p_value,
                options=options,
                reference_size=ref.count,
                current_size=cur.count,
            )
        else:
            result = test.run_counts(ref_groups, cur_groups, options)
        return replace(result, approximation=f"on {len(ref_groups)} bins of the reference")
    sizes = {"reference_size": ref.count, "current_size": cur.count}
    if len(ref.sample) == ref.count and len(cur.sample) == cur.count:
        return test.run(ref.sample, cur.sample, options)
    ref_cdf = np.cumsum(ref.bin_counts)[:-1] / ref.count
    cur_cdf = np.cumsum(cur.bin_counts)[:-1] / cur.count
    bound = float(max((ref.bin_counts / ref.count).max(), (cur.bin_counts / cur.count).max()))
    if test.name == "ks":
        statistic, p_value = ks_from_cdfs(ref_cdf, cur_cdf, ref.count, cur.count)
        return test.result(
            statistic, p_value, options=options, approximation=f"binned: |D − D_exact| ≤ {bound:.4f}", **sizes
        )
    if test.name == "wasserstein":
        # Between the edges: trapezoids on the CDFs known exactly at every edge. Beyond them: the
        # exact tail areas from the mean excess over the outer edges (assuming the CDFs do not cross there).
        gaps = np.abs(ref_cdf - cur_cdf)
        inner = float(np.sum((gaps[:-1] + gaps[1:]) / 2 * np.diff(ref.inner_edges)))
        tails = abs(cur.upper_excess / cur.count - ref.upper_excess / ref.count) + abs(
            cur.lower_excess / cur.count - ref.lower_excess / ref.count
        )
        return test.result(
            normalize(inner + tails, ref.std),
            None,
            options=options,
            approximation=f"binned on {len(ref.inner_edges) + 1} reference-quantile bins",
            **sizes,
        )
    result = test.run(ref.sample, cur.sample, options)
    assert result.statistic is not None  # a test that ran has a statistic
    return test.result(
        result.statistic,
        result.p_value,
        options=options,
        approximation=f"bounded samples: {len(ref.sample)} reference vs {len(cur.sample)} current values",
        **sizes,
    )


def numeric_groups(ref: NumericSummary, cur: NumericSummary) -> tuple[np.ndarray, np.ndarray]:
    """The fine bins of a numeric feature grouped into bins of about equal reference mass, for the counts tests.

    ``DISCRETE_GROUPS`` groups for a feature with ties (a repeated value is never split), ``COARSE_BINS``
    otherwise, and never more than the smaller side fills with ``MIN_EXPECTED`` values per group under no drift;
    a group the reference gives less than that (beside an atom) joins its neighbour. Only the reference decides
    the groups, never the window.
    """
    smaller = min(ref.count, cur.count)
    wanted = DISCRETE_GROUPS if is_discrete(ref) else COARSE_BINS
    groups = int(max(2, min(wanted, smaller // MIN_EXPECTED)))
    group = _coarse_groups(ref.bin_counts, groups)
    ref_all = np.bincount(group, weights=ref.bin_counts, minlength=groups)
    cur_all = np.bincount(group, weights=cur.bin_counts, minlength=groups)
    held = (ref_all > 0) | (cur_all > 0)  # a group of no fine bins is dropped; one of window values only joins in
    refs, curs = list(ref_all[held]), list(cur_all[held])
    enough = MIN_EXPECTED * ref.count / max(smaller, 1)  # a group's reference count for MIN_EXPECTED in the smaller
    index = 0
    while index < len(refs) and len(refs) > 2:
        if refs[index] >= enough:
            index += 1
            continue
        into = index if index + 1 < len(refs) else index - 1  # the right neighbour, or the left at the end
        ref_share, cur_share = refs.pop(index), curs.pop(index)
        refs[into] += ref_share
        curs[into] += cur_share
        index = into
    return np.asarray(refs), np.asarray(curs)


def is_discrete(summary: NumericSummary) -> bool:
    """Whether one value holds at least ``ATOM_SHARE`` of the reference (ties: counts, a mass of zeros)."""
    return bool(summary.count and summary.bin_counts.size and summary.bin_counts.max() >= ATOM_SHARE * summary.count)


def _options_for(
    name: str, test: StatTest, alpha: float, tests: dict[str, str], thresholds: dict[str, float]
) -> StatTestOptions:
    """A feature's options, checked for every window (not only those with enough rows)."""
    if name in tests and name in thresholds and test.direction == "p_value":
        raise ValueError(
            f"feature {name!r}: a threshold of {thresholds[name]} was given, but its test {test.name!r} is "
            "judged by p-value at alpha; thresholds apply to distance tests (set an effect floor with effect_floors)"
        )
    # A configured distance threshold applies whenever a distance test is configured.
    options = StatTestOptions(threshold=alpha if test.direction == "p_value" else thresholds.get(name))
    try:
        options.threshold_for(test)
    except ValueError as exc:
        raise ValueError(f"feature {name!r}: {exc}") from None
    return options


def _numeric_effect(ref: NumericSummary, cur: NumericSummary) -> float:
    """Wasserstein-1 distance in reference standard deviations: exact on complete samples, else from the bins."""
    from driftline.detectors.stattests.wasserstein import wasserstein_test

    result = _numeric_feature(wasserstein_test, ref, cur, False, StatTestOptions())
    assert result.statistic is not None
    return result.statistic


def _total_variation(reference: np.ndarray, current: np.ndarray) -> float:
    return float(np.abs(reference / max(reference.sum(), 1) - current / max(current.sum(), 1)).sum() / 2)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@dataclass(frozen=True)
class GrossChange:
    check: str  # out_of_range | unseen_categories | missing_share
    share: float  # the window's share
    expected: float  # what the reference predicts
    p_value: float

    @property
    def excess(self) -> float:
        return self.share - self.expected


def gross_change(
    ref: NumericSummary | CategoricalSummary, cur: NumericSummary | CategoricalSummary
) -> list[GrossChange]:
    """Tests of gross change valid at any window size (one row is enough), for windows too small for the others:

    * ``out_of_range``: ``k`` of the window's ``m`` values outside the reference's ``[min, max]`` (of ``n``;
      only when the window counted them against this reference's range).
      When nothing changed every order of the ``n + m`` values is equally likely, so the chance that ``j``
      chosen extremes are all current values is ``C(m, j) / C(n + m, j)``; over the ``k + 1`` ways to split
      ``k`` between the two ends, ``p ≤ (k + 1) · C(m, k) / C(n + m, k)``.
    * ``unseen_categories``: ``k`` values in categories the reference never had. The chance that a new value is
      unseen is estimated by Good–Turing, ``(N₁ + 1) / (n + 1)`` with ``N₁`` the reference's categories seen
      once; ``p = P(Binomial(m, that) ≥ k)``.
    * ``missing_share``: Fisher's exact test on missing vs present, reference vs window (two-sided).
    """
    from scipy import stats  # lazy: scipy.stats costs ~80 MB to import

    found: list[GrossChange] = []
    m, n = cur.count, ref.count
    if (
        isinstance(ref, NumericSummary)
        and isinstance(cur, NumericSummary)
        and m
        and n
        # counted against this reference's range (a rolling production reference has a range of its own)
        and cur.range_checked == (ref.minimum, ref.maximum)
    ):
        k = cur.out_of_range
        log_p = math.log(k + 1) + _log_choose(m, k) - _log_choose(n + m, k)
        found.append(GrossChange("out_of_range", k / m, 2 / (n + 1), min(1.0, math.exp(log_p))))
    if (
        isinstance(ref, CategoricalSummary)
        and isinstance(cur, CategoricalSummary)
        and ref.hashed is None
        and cur.hashed is None
        and OTHER not in ref.counts
        and m
        and n
    ):
        k = sum(count for key, count in cur.counts.items() if key not in ref.counts)
        expected = (sum(1 for count in ref.counts.values() if count == 1) + 1) / (n + 1)
        found.append(GrossChange("unseen_categories", k / m, expected, float(stats.binom.sf(k - 1, m, expected))))
    ref_total, cur_total = ref.count + ref.missing, cur.count + cur.missing
    if ref_total and cur_total:
        table = [[ref.missing, ref.count], [cur.missing, cur.count]]
        p_value = float(stats.fisher_exact(table).pvalue) if ref.missing + cur.missing else 1.0
        found.append(GrossChange("missing_share", cur.missing / cur_total, ref.missing / ref_total, p_value))
    return found


def _small_window(
    test: StatTest,
    threshold: float,
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    min_rows: int,
) -> DriftResult:
    """A feature below ``min_rows``: no verdict of its test, but its gross-change checks (Bonferroni over them),
    judged with the report's other p-values."""
    changes = gross_change(ref, cur)
    if not changes:
        return DriftResult(
            test.name, None, None, threshold, test.direction, None, ref.count, cur.count, "insufficient_data"
        )
    worst = min(changes, key=lambda c: (c.p_value, -c.excess))
    p_value = min(1.0, worst.p_value * len(changes))
    return DriftResult(
        worst.check,
        worst.share,
        p_value,
        threshold,
        "p_value",
        None,
        ref.count,
        cur.count,
        "insufficient_data",
        f"{cur.count} values (< min_rows {min_rows}): only gross change is tested; {worst.check} "
        f"{worst.share:.1%} vs {worst.expected:.1%} expected",
        effect=worst.excess,
        effect_measure=f"{worst.check} excess share",
        effect_floor=GROSS_SHARE,
    )


def _feature_result(
    name: str,
    feature_type: FeatureType,
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    *,
    configured: str | None,
    options: StatTestOptions,
    floor: float,
) -> tuple[DriftResult, dict[str, Any]]:
    """The feature's test, effect and plot (a window with enough rows)."""
    test = get_test(configured) if configured else None
    if isinstance(ref, NumericSummary):
        assert isinstance(cur, NumericSummary)
        n_unique = int(np.count_nonzero(ref.bin_counts))
        categorical_like = is_categorical_like(feature_type, n_unique)
        test = test or get_test(select_test(feature_type, ref.count, cur.count, n_unique, discrete=is_discrete(ref)))
        _check_needs(test, name, ref, cur)
        result = _numeric_feature(test, ref, cur, categorical_like, options)
        if categorical_like:
            keep = (ref.bin_counts + cur.bin_counts) > 0
            effect, measure = _total_variation(ref.bin_counts[keep], cur.bin_counts[keep]), "total_variation"
        else:
            effect, measure = _numeric_effect(ref, cur), "wasserstein (reference sd)"
        plot = _numeric_plot(ref, cur)
    else:
        assert isinstance(cur, CategoricalSummary)
        keys, ref_counts, cur_counts = _aligned_categories(ref, cur)
        test = test or get_test(select_test(feature_type, ref.count, cur.count, ref.n_categories))
        if test.binary_only and len(keys) > 2:
            raise ValueError(f"test {test.name!r} needs a binary feature; {name!r} has {len(keys)} categories")
        _check_needs(test, name, ref, cur)
        result = test.run_counts(ref_counts, cur_counts, options)
        effect, measure = _total_variation(ref_counts, cur_counts), "total_variation"
        plot = _categorical_plot(keys, ref_counts, cur_counts)
    if result.direction == "distance":  # a configured distance: its threshold is the effect it asks for
        return replace(result, effect=result.statistic, effect_measure=result.test, significant=result.drifted), plot
    return replace(result, effect=effect, effect_measure=measure, effect_floor=floor), plot


def _judged(result: DriftResult, cutoff: float) -> DriftResult:
    """A p-value result with the report's corrected cut-off: significant, and drift when the effect is enough."""
    if result.direction != "p_value" or result.p_value is None:
        return result
    significant = bool(result.p_value <= cutoff)
    big_enough = result.effect is None or result.effect_floor is None or result.effect >= result.effect_floor
    if result.status == "insufficient_data":  # a small window: only gross change makes a verdict
        if significant and big_enough:
            return replace(result, threshold=cutoff, drifted=True, significant=True, status="ok")
        return replace(result, threshold=cutoff, significant=significant)
    return replace(result, threshold=cutoff, drifted=significant and big_enough, significant=significant)


def compare_profiles(
    reference: Profile,
    current: Profile,
    *,
    alpha: float = 0.05,
    correction: Correction = "fdr",
    min_rows: int = 100,
    tests: dict[str, str] | None = None,
    thresholds: dict[str, float] | None = None,
    effect_floors: dict[str, float] | None = None,
    min_effect: dict[str, float] | None = None,
    multivariate: bool = True,
    current_columns: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> DriftReport:
    """Test every reference feature; see the module docstring.

    ``effect_floors``: feature → the effect a significant change needs to be drift (instead of the default of its
    kind, :data:`EFFECT_FLOORS`, which ``min_effect`` — ``{"numeric": …, "categorical": …}`` — replaces); 0 makes
    every significant change drift.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_rows < 1:
        raise ValueError(f"min_rows must be at least 1, got {min_rows}")
    tests, thresholds, effect_floors = tests or {}, thresholds or {}, effect_floors or {}
    kind_floors: dict[str, float] = {**dict(EFFECT_FLOORS.items()), **(min_effect or {})}
    unknown = sorted((set(tests) | set(thresholds) | set(effect_floors)) - set(reference.feature_types))
    if unknown:
        raise ValueError(
            f"tests/thresholds/effect_floors name features the reference does not have: {unknown}; "
            f"features: {sorted(reference.feature_types)}"
        )
    bad = {name: value for name, value in {**kind_floors, **effect_floors}.items() if not 0 <= value < math.inf}
    if bad or set(kind_floors) - set(EFFECT_FLOORS):
        raise ValueError(
            f"effect floors must be non-negative numbers for numeric/categorical or a feature, got {bad or kind_floors}"
        )
    features: list[FeatureDrift] = []
    for name, feature_type in reference.feature_types.items():
        ref, cur = reference.summaries[name], current.summaries[name]
        if current_columns is not None and name not in current_columns and cur.count == 0:
            # A column the window does not have: every row lacks the value, as if it were all missing (an
            # all-null column is judged so too), not a window too small to judge.
            cur = replace(cur, missing=current.rows)
        if isinstance(ref, NumericSummary):
            n_unique = int(np.count_nonzero(ref.bin_counts))
            discrete = is_discrete(ref)
        else:
            n_unique, discrete = ref.n_categories, False
        categorical_like = is_categorical_like(feature_type, n_unique)
        test = get_test(tests.get(name) or select_test(feature_type, ref.count, cur.count, n_unique, discrete=discrete))
        if not _accepts(test, feature_type, categorical_like):
            raise ValueError(
                f"test {test.name!r} does not accept {feature_type} feature {name!r}; "
                f"it accepts {', '.join(test.feature_types)}"
            )
        options = _options_for(name, test, alpha, tests, thresholds)
        if cur.count < min_rows or ref.count < min_rows:
            features.append(
                FeatureDrift(name, feature_type, _small_window(test, options.threshold_for(test), ref, cur, min_rows))
            )
            continue
        floor = effect_floors.get(name, kind_floors["categorical" if categorical_like else "numeric"])
        result, plot = _feature_result(
            name, feature_type, ref, cur, configured=tests.get(name), options=options, floor=floor
        )
        features.append(FeatureDrift(name, feature_type, result, plot))

    joint = reconstruction_drift(reference, current, min_rows=min_rows) if multivariate else None
    p_values = [f.result.p_value for f in features if f.result.direction == "p_value" and f.result.p_value is not None]
    if joint is not None and joint.p_value is not None:
        p_values.append(joint.p_value)
    cutoff = corrected_threshold(p_values, alpha, correction) if p_values else alpha
    corrected = [FeatureDrift(f.feature, f.feature_type, _judged(f.result, cutoff), f.plot) for f in features]
    if joint is not None and joint.p_value is not None:
        significant = joint.p_value <= cutoff
        effect = joint.effect if joint.effect is not None else 0.0
        joint = replace(
            joint, threshold=cutoff, significant=significant, drifted=significant and effect >= joint.effect_floor
        )
    return DriftReport(
        corrected,
        alpha,
        correction,
        quality_checks(reference, current, current_columns),
        dict(metadata or {}),
        joint,
        dict(reference.excluded),
    )
