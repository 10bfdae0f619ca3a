"""Pure drift statistics: tests, selection, correction, profiles, reports. No Kafka, no Airflow here.

The names below are imported on first use, so ``import driftline.detectors.registry`` (which the
monitor-config loader does) does not load the engine, pyarrow or scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.detectors.base import DriftResult, StatTest
    from driftline.detectors.engine import DriftReport, FeatureDrift, compare_profiles
    from driftline.detectors.profile import Profile
    from driftline.detectors.profiling import build_reference_profile, infer_feature_types, window_profile
    from driftline.detectors.registry import available_tests, get_test, register

_EXPORTS = {
    "DriftResult": "base",
    "StatTest": "base",
    "DriftReport": "engine",
    "FeatureDrift": "engine",
    "compare_profiles": "engine",
    "Profile": "profile",
    "build_reference_profile": "profiling",
    "infer_feature_types": "profiling",
    "window_profile": "profiling",
    "available_tests": "registry",
    "get_test": "registry",
    "register": "registry",
}
__all__ = [
    "DriftReport",
    "DriftResult",
    "FeatureDrift",
    "Profile",
    "StatTest",
    "available_tests",
    "build_reference_profile",
    "compare_profiles",
    "get_test",
    "infer_feature_types",
    "register",
    "window_profile",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'driftline.detectors' has no attribute {name!r}")
    return getattr(importlib.import_module(f"driftline.detectors.{_EXPORTS[name]}"), name)
