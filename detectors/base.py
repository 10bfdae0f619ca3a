"""The result object every drift test returns, and the description every test declares."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

import numpy as np

FeatureType = Literal["numeric", "categorical"]
Direction = Literal["p_value", "distance"]
Status = Literal["ok", "insufficient_data"]


@dataclass(frozen=True)
class DriftResult:
    """One test on one feature: always statistic, p-value/score, threshold used and verdict.

    ``drifted`` is ``None`` when ``status == "insufficient_data"``: too few rows
    give no verdict at all, rather than a confident "no drift".
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StatTest:
    """A registered test: its name, the feature types it accepts, its default threshold and direction.

    ``compute(reference, current)`` returns ``(statistic, p_value)``; for a
    distance ``p_value`` is ``None``. The verdict is the registry's business:
    a p-value drifts at ``<= threshold``, a distance at ``>= threshold``.
    """

    name: str
    feature_types: tuple[FeatureType, ...]
    default_threshold: float
    direction: Direction
    compute: Callable[[np.ndarray, np.ndarray], tuple[float, float | None]]
    description: str = ""

    def decide(self, statistic: float, p_value: float | None, threshold: float) -> bool:
        if self.direction == "p_value":
            assert p_value is not None
            return bool(p_value <= threshold)
        return bool(statistic >= threshold)

    def run(self, reference: np.ndarray, current: np.ndarray, *, threshold: float | None = None) -> DriftResult:
        if len(reference) == 0 or len(current) == 0:
            raise ValueError(f"{self.name}: reference and current must both be non-empty "
                             f"(got {len(reference)} and {len(current)} values)")
        used = self.default_threshold if threshold is None else threshold
        statistic, p_value = self.compute(reference, current)
        return DriftResult(self.name, float(statistic), None if p_value is None else float(p_value), used,
                           self.direction, self.decide(statistic, p_value, used), len(reference), len(current))
