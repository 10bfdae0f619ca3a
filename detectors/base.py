"""The result object every drift test returns, and the description every test declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

FeatureType = Literal["numeric", "categorical"]
Direction = Literal["p_value", "distance"]
InputKind = Literal["values", "counts"]
Status = Literal["ok", "insufficient_data"]


@dataclass(frozen=True)
class DriftResult:
    """One test on one feature: always statistic, p-value/score, threshold used and verdict.

    ``drifted`` is ``None`` when ``status == "insufficient_data"``: too few rows
    give no verdict at all, rather than a confident "no drift".
    ``approximation`` says how the figure was obtained when it was not from the
    raw values (e.g. ``"binned: |error| <= 0.004"``).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def decide(self, statistic: float, p_value: float | None, threshold: float) -> bool:
        if self.direction == "p_value":
            assert p_value is not None
            return bool(p_value <= threshold)
        return bool(statistic >= threshold)

    def result(
        self,
        statistic: float,
        p_value: float | None,
        threshold: float | None,
        reference_size: int,
        current_size: int,
        approximation: str | None = None,
    ) -> DriftResult:
        used = self.default_threshold if threshold is None else threshold
        if self.direction == "p_value" and not 0 < used < 1:
            raise ValueError(f"{self.name}: a p-value threshold must be in (0, 1), got {used}")
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

    def run(self, reference: np.ndarray, current: np.ndarray, *, threshold: float | None = None) -> DriftResult:
        """Run on raw values (counts-based tests bin or count them first)."""
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
        return self.result(statistic, p_value, threshold, len(reference), len(current))

    def run_counts(
        self, reference_counts: np.ndarray, current_counts: np.ndarray, *, threshold: float | None = None
    ) -> DriftResult:
        """Run on aligned counts (from profiles); only for ``input_kind == "counts"``."""
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
        return self.result(statistic, p_value, threshold, int(reference_counts.sum()), int(current_counts.sum()))
