"""The drift engine: reference profile × window profile → one report.

Every feature gets a test (chosen by :func:`~driftline.detectors.selection.select_test`
unless configured), run from the profiles:

* counts-based tests (PSI, KL, JS, Hellinger, TV, chi-square, G, z, Fisher)
  run on aligned counts: categories, or for numeric features ten
  equal-reference-mass bins — exactly as on raw data binned the same way;
* value-based tests run exactly (scipy) when both profiles' samples hold all
  their values (windows up to ``SAMPLE_SIZE`` rows); otherwise KS and
  Wasserstein run on the ``FINE_BINS`` reference-quantile bins, with the error
  bound in ``approximation`` (KS: ``|D − D_exact| ≤ max bin share``), and the
  others on the bounded samples.

p-value thresholds are then corrected across the report's features
(Benjamini–Hochberg by default); distances keep their own thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.detectors.base import DriftResult, FeatureType, ProfilePart, StatTest, StatTestOptions
from driftline.detectors.correction import Correction, corrected_threshold
from driftline.detectors.profile import OTHER, CategoricalSummary, NumericSummary, Profile
from driftline.detectors.quality import QualityIssue, quality_checks
from driftline.detectors.registry import get_test
from driftline.detectors.selection import is_categorical_like, select_test
from driftline.detectors.stattests.ks import ks_from_cdfs
from driftline.detectors.stattests.wasserstein import normalize

REPORT_VERSION = 1
COARSE_BINS = 10
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
        """How far past its threshold the feature is (> 1 drifted); −1 without a verdict."""
        r = self.result
        if r.status != "ok" or r.statistic is None:
            return -1.0
        if r.direction == "p_value":
            assert r.p_value is not None
            return -math.log10(max(r.p_value, 1e-300)) / -math.log10(r.threshold)
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

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.result.drifted]

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
            "drifted_features": self.drifted_features,
            "share_drifted": self.share_drifted,
            "insufficient_data": self.insufficient_features,
            "features": [f.to_dict() for f in sorted(self.features, key=lambda f: -f.severity)],
            "quality": [q.to_dict() for q in self.quality],
        }


def _accepts(test: StatTest, feature_type: FeatureType, categorical_like: bool) -> bool:
    return feature_type in test.feature_types or (categorical_like and "categorical" in test.feature_types)


def _coarse_groups(reference_bins: np.ndarray, groups: int) -> np.ndarray:
    """Group index of each fine bin so that groups hold about equal reference mass."""
    cumulative_before = np.concatenate([[0], np.cumsum(reference_bins)[:-1]]) / max(reference_bins.sum(), 1)
    return np.asarray(np.minimum((cumulative_before * groups).astype(int), groups - 1), dtype=int)


def _aligned_categories(ref: CategoricalSummary, cur: CategoricalSummary) -> tuple[list[str], np.ndarray, np.ndarray]:
    pooled = OTHER in ref.counts
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
        group = _coarse_groups(ref.bin_counts, COARSE_BINS)
        return test.run_counts(
            np.bincount(group, weights=ref.bin_counts, minlength=COARSE_BINS),
            np.bincount(group, weights=cur.bin_counts, minlength=COARSE_BINS),
            options,
        )
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


def _options_for(
    name: str, test: StatTest, alpha: float, tests: dict[str, str], thresholds: dict[str, float]
) -> StatTestOptions:
    """A feature's options, checked for every window (not only those with enough rows)."""
    if name in tests and name in thresholds and test.direction == "p_value":
        raise ValueError(
            f"feature {name!r}: a threshold of {thresholds[name]} was given, but its test {test.name!r} is "
            "judged by p-value at alpha; thresholds apply to distance tests"
        )
    # With automatic selection a configured distance threshold applies whenever a distance test is chosen.
    options = StatTestOptions(threshold=alpha if test.direction == "p_value" else thresholds.get(name))
    try:
        options.threshold_for(test)
    except ValueError as exc:
        raise ValueError(f"feature {name!r}: {exc}") from None
    return options


def compare_profiles(
    reference: Profile,
    current: Profile,
    *,
    alpha: float = 0.05,
    correction: Correction = "fdr",
    min_rows: int = 100,
    tests: dict[str, str] | None = None,
    thresholds: dict[str, float] | None = None,
    current_columns: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> DriftReport:
    """Test every reference feature; see the module docstring."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_rows < 1:
        raise ValueError(f"min_rows must be at least 1, got {min_rows}")
    tests, thresholds = tests or {}, thresholds or {}
    unknown = sorted((set(tests) | set(thresholds)) - set(reference.feature_types))
    if unknown:
        raise ValueError(
            f"tests/thresholds name features the reference does not have: {unknown}; "
            f"features: {sorted(reference.feature_types)}"
        )
    features: list[FeatureDrift] = []
    for name, feature_type in reference.feature_types.items():
        ref, cur = reference.summaries[name], current.summaries[name]
        n_unique = int(np.count_nonzero(ref.bin_counts)) if isinstance(ref, NumericSummary) else len(ref.counts)
        categorical_like = is_categorical_like(feature_type, n_unique)
        test = get_test(tests.get(name) or select_test(feature_type, ref.count, cur.count, n_unique))
        if not _accepts(test, feature_type, categorical_like):
            raise ValueError(
                f"test {test.name!r} does not accept {feature_type} feature {name!r}; "
                f"it accepts {', '.join(test.feature_types)}"
            )
        options = _options_for(name, test, alpha, tests, thresholds)
        threshold = options.threshold_for(test)
        if cur.count < min_rows or ref.count < min_rows:
            result = DriftResult(
                test.name, None, None, threshold, test.direction, None, ref.count, cur.count, "insufficient_data"
            )
            features.append(FeatureDrift(name, feature_type, result))
            continue
        _check_needs(test, name, ref, cur)
        if isinstance(ref, NumericSummary):
            assert isinstance(cur, NumericSummary)
            result = _numeric_feature(test, ref, cur, categorical_like, options)
            plot = _numeric_plot(ref, cur)
        else:
            assert isinstance(cur, CategoricalSummary)
            keys, ref_counts, cur_counts = _aligned_categories(ref, cur)
            if test.binary_only and len(keys) > 2:
                raise ValueError(f"test {test.name!r} needs a binary feature; {name!r} has {len(keys)} categories")
            result = test.run_counts(ref_counts, cur_counts, options)
            plot = _categorical_plot(keys, ref_counts, cur_counts)
        features.append(FeatureDrift(name, feature_type, result, plot))

    p_values = [
        f.result.p_value
        for f in features
        if f.result.status == "ok" and f.result.direction == "p_value" and f.result.p_value is not None
    ]
    cutoff = corrected_threshold(p_values, alpha, correction) if p_values else alpha
    corrected = []
    for feature in features:
        r = feature.result
        if r.status == "ok" and r.direction == "p_value":
            assert r.p_value is not None
            r = DriftResult(
                r.test,
                r.statistic,
                r.p_value,
                cutoff,
                r.direction,
                bool(r.p_value <= cutoff),
                r.reference_size,
                r.current_size,
                r.status,
                r.approximation,
            )
        corrected.append(FeatureDrift(feature.feature, feature.feature_type, r, feature.plot))
    return DriftReport(
        corrected, alpha, correction, quality_checks(reference, current, current_columns), dict(metadata or {})
    )
