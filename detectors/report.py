"""A drift report over many features: test selection, correction, one JSON-serializable result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.detectors.base import DriftResult, FeatureType
from driftline.detectors.correction import Correction, corrected_threshold
from driftline.detectors.registry import get_test
from driftline.detectors.selection import select_test

REPORT_VERSION = 1


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    feature_type: FeatureType
    result: DriftResult

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "feature_type": self.feature_type, **self.result.to_dict()}


@dataclass
class DriftReport:
    features: list[FeatureDrift]
    alpha: float
    correction: Correction
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.result.drifted]

    @property
    def share_drifted(self) -> float:
        judged = [f for f in self.features if f.result.drifted is not None]
        return len(self.drifted_features) / len(judged) if judged else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_version": REPORT_VERSION,
            **self.metadata,
            "alpha": self.alpha,
            "correction": self.correction,
            "drifted_features": self.drifted_features,
            "share_drifted": self.share_drifted,
            "features": [f.to_dict() for f in self.features],
        }


def infer_feature_types(frame: pd.DataFrame, exclude: tuple[str, ...] = ()) -> dict[str, FeatureType]:
    """Numeric (non-boolean) dtypes are numeric; everything else is categorical."""
    return {
        name: ("numeric" if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) else "categorical")
        for name, dtype in frame.dtypes.items()
        if name not in exclude
    }


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_types: dict[str, FeatureType],
    *,
    alpha: float = 0.05,
    correction: Correction = "fdr",
    min_rows: int = 100,
    tests: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> DriftReport:
    """Test every feature, then correct the p-value thresholds across them.

    A feature missing from either frame raises ``ValueError`` naming it; a
    feature with fewer than ``min_rows`` non-missing current values gets an
    ``insufficient_data`` result with no verdict.
    """
    missing = [f"{name!r} ({side})" for name in feature_types for side, frame in (("reference", reference), ("current", current))
               if name not in frame.columns]
    if missing:
        raise ValueError(f"features missing from the data: {', '.join(missing)}; "
                         "fix the monitor config's 'features' or the data's columns")
    tests = tests or {}
    raw: list[tuple[str, FeatureType, DriftResult]] = []
    for name, feature_type in feature_types.items():
        reference_values = reference[name].dropna().to_numpy()
        current_values = current[name].dropna().to_numpy()
        test_name = tests.get(name) or select_test(feature_type, len(reference_values), len(current_values),
                                                   int(pd.unique(reference_values).size))
        test = get_test(test_name)
        if feature_type not in test.feature_types:
            raise ValueError(f"test {test_name!r} does not accept {feature_type} features (feature {name!r}); "
                             f"it accepts {', '.join(test.feature_types)}")
        if len(current_values) < min_rows or len(reference_values) < min_rows:
            raw.append((name, feature_type, DriftResult(test.name, None, None, test.default_threshold, test.direction, None,
                                                        len(reference_values), len(current_values), "insufficient_data")))
            continue
        if feature_type == "numeric":
            reference_values = reference_values.astype(np.float64)
            current_values = current_values.astype(np.float64)
        raw.append((name, feature_type, test.run(reference_values, current_values, threshold=alpha)))

    p_values = [r.p_value for _, _, r in raw if r.status == "ok" and r.direction == "p_value" and r.p_value is not None]
    cutoff = corrected_threshold(p_values, alpha, correction) if p_values else alpha
    features = []
    for name, feature_type, result in raw:
        if result.status == "ok" and result.direction == "p_value":
            result = DriftResult(result.test, result.statistic, result.p_value, cutoff, result.direction,
                                 bool(result.p_value <= cutoff), result.reference_size, result.current_size)
        features.append(FeatureDrift(name, feature_type, result))
    return DriftReport(features, alpha, correction, dict(metadata or {}))
