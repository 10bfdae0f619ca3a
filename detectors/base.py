"""The result object every drift test returns, and the description every test declares."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FeatureType = Literal["numeric", "categorical"]
Direction = Literal["p_value", "distance"]
InputKind = Literal["values", "counts"]
Status = Literal["ok", "insufficient_data"]
# drift: significant and at least the effect floor; minor: significant, but an effect below the floor (a tiny change
# a huge window can prove, reported and not alarmed); no_drift; insufficient_data: too few rows for a verdict.
FeatureVerdict = Literal["drift", "minor", "no_drift", "insufficient_data"]
# What a test reads from a profile: "counts" (a numeric feature's bin counts or a categorical feature's
# category counts), "bin_counts" (numeric bins), "sample" (the bounded row sample), "tail_excess" (exact
# tail sums beyond the outer bins), "moments" (count, mean, standard deviation).
ProfilePart = Literal["counts", "bin_counts", "sample", "tail_excess", "moments"]
PROFILE_PARTS: tuple[ProfilePart, ...] = ("counts", "bin_counts", "sample", "tail_excess", "moments")


@dataclass(frozen=True, kw_only=True)
class StatTestOptions:
    """The one options object every test takes; validated against the test it is used with.

    ``threshold`` is the p-value cut-off (in (0, 1)) for a test of direction
    ``"p_value"``, or the distance at or above which a feature drifts (a positive
    number) for a ``"distance"``; ``None`` uses the test's default.
    """

    threshold: float | None = None

    def threshold_for(self, test: StatTest) -> float:
        used = test.default_threshold if self.threshold is None else float(self.threshold)
        if test.direction == "p_value" and not 0 < used < 1:
            raise ValueError(f"{test.name}: a p-value threshold must be in (0, 1), got {used}")
        if test.direction == "distance" and not (0 < used < math.inf):
            raise ValueError(f"{test.name}: a distance threshold must be a positive finite number, got {used}")
        return used


@dataclass(frozen=True)
class DriftResult:
    """One test on one feature: always statistic, p-value/score, threshold used and verdict.

    ``drifted`` is ``None`` when ``status == "insufficient_data"``: too few rows
    give no verdict at all, rather than a confident "no drift".
    ``approximation`` says how the figure was obtained when it was not from the
    raw values (e.g. ``"binned: |error| <= 0.004"``).

    ``effect`` is the size of the change in ``effect_measure`` (reference standard deviations of Wasserstein
    distance for numeric features, total variation for categorical ones, the excess share for a small window's
    gross-change check); a significant change is drift only at ``effect >= effect_floor``, and ``significant``
    says whether the p-value passed. ``verdict`` sums it up.
    """

    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    direction: Direction
    drifted: bool | None
    reference_size: int
    current_size: int
    status: Status = "ok"
    approximation: str | None = None
    effect: float | None = None
    effect_measure: str | None = None
    effect_floor: float | None = None
    significant: bool | None = None

    @property
    def verdict(self) -> FeatureVerdict:
        if self.status == "insufficient_data":
            return "insufficient_data"
        if self.drifted:
            return "drift"
        return "minor" if self.significant else "no_drift"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


@dataclass(frozen=True)
class StatTest:
    """A registered test: its name, the feature types it accepts, its default threshold and direction.

    ``input_kind`` says what ``compute`` takes:

    * ``"values"``: the two samples, ``compute(reference, current)``;
    * ``"counts"``: two aligned count vectors over the same bins or categories,
      ``compute(reference_counts, current_counts)`` — such a test runs from a
      profile exactly as from raw data.

    ``compute`` returns ``(statistic, p_value)``; for a distance ``p_value`` is
    ``None``. A p-value drifts at ``<= threshold``, a distance at ``>= threshold``.
    """

    name: str
    feature_types: tuple[FeatureType, ...]
    default_threshold: float
    direction: Direction
    compute: Callable[[np.ndarray, np.ndarray], tuple[float, float | None]]
    input_kind: InputKind = "values"
    description: str = ""
    binary_only: bool = False
    needs: tuple[ProfilePart, ...] = ()

    def __post_init__(self) -> None:
        unknown = [part for part in self.needs if part not in PROFILE_PARTS]
        if not self.needs or unknown:
            raise ValueError(
                f"drift test {self.name!r} must declare the profile data it uses in 'needs' "
                f"(any of {', '.join(PROFILE_PARTS)}); got {self.needs!r}"
            )
        if not self.feature_types:
            raise ValueError(f"drift test {self.name!r} must accept at least one feature type")
        StatTestOptions().threshold_for(self)  # the default threshold must be valid for the direction

    def decide(self, statistic: float, p_value: float | None, threshold: float) -> bool:
        if self.direction == "p_value":
            assert p_value is not None
            return bool(p_value <= threshold)
        return bool(statistic >= threshold)

    def result(
        self,
        statistic: float,
        p_value: float | None,
        *,
        options: StatTestOptions,
        reference_size: int,
        current_size: int,
        approximation: str | None = None,
    ) -> DriftResult:
        used = options.threshold_for(self)
        return DriftResult(
            self.name,
            float(statistic),
            None if p_value is None else float(p_value),
            used,
            self.direction,
            self.decide(statistic, p_value, used),
            reference_size,
            current_size,
            approximation=approximation,
        )

    def run(
        self,
        reference: npt.ArrayLike,
        current: npt.ArrayLike,
        options: StatTestOptions | None = None,
        *,
        threshold: float | None = None,
    ) -> DriftResult:
        """Run on raw values (counts-based tests bin or count them first). ``threshold=`` is short for
        ``options=StatTestOptions(threshold=...)``."""
        options = _options(options, threshold)
        reference, current = np.asarray(reference), np.asarray(current)
        if len(reference) == 0 or len(current) == 0:
            raise ValueError(
                f"{self.name}: reference and current must both be non-empty "
                f"(got {len(reference)} and {len(current)} values)"
            )
        if self.input_kind == "counts":
            from driftline.detectors.binning import counts_for

            reference_counts, current_counts = counts_for(reference, current)
            statistic, p_value = self.compute(reference_counts, current_counts)
        else:
            statistic, p_value = self.compute(reference, current)
        return self.result(
            statistic, p_value, options=options, reference_size=len(reference), current_size=len(current)
        )

    def run_counts(
        self,
        reference_counts: npt.ArrayLike,
        current_counts: npt.ArrayLike,
        options: StatTestOptions | None = None,
        *,
        threshold: float | None = None,
    ) -> DriftResult:
        """Run on aligned counts (from profiles); only for ``input_kind == "counts"``."""
        options = _options(options, threshold)
        if self.input_kind != "counts":
            raise ValueError(f"{self.name} needs raw values, not counts")
        reference_counts, current_counts = np.asarray(reference_counts), np.asarray(current_counts)
        if reference_counts.shape != current_counts.shape:
            raise ValueError(
                f"{self.name}: counts must be aligned, got shapes {reference_counts.shape} and {current_counts.shape}"
            )
        if reference_counts.sum() == 0 or current_counts.sum() == 0:
            raise ValueError(f"{self.name}: reference and current must both be non-empty")
        statistic, p_value = self.compute(reference_counts, current_counts)
        return self.result(
            statistic,
            p_value,
            options=options,
            reference_size=int(reference_counts.sum()),
            current_size=int(current_counts.sum()),
        )


def _options(options: StatTestOptions | None, threshold: float | None) -> StatTestOptions:
    if options is not None and threshold is not None:
        raise ValueError("give either options or threshold, not both")
    return options if options is not None else StatTestOptions(threshold=threshold)
