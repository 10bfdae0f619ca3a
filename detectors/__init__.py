"""Pure drift statistics: tests, selection, correction, profiles, reports. No Kafka, no Airflow here."""

from driftline.detectors.base import DriftResult, StatTest
from driftline.detectors.engine import DriftReport, FeatureDrift, compare_profiles
from driftline.detectors.profile import Profile, build_reference_profile, infer_feature_types, window_profile
from driftline.detectors.registry import available_tests, get_test, register

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
