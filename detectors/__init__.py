"""Pure drift statistics: tests, selection, correction, reports. No Kafka, no Airflow here."""

from driftline.detectors.base import DriftResult, StatTest
from driftline.detectors.registry import available_tests, get_test, register
from driftline.detectors.report import DriftReport, build_drift_report, infer_feature_types

__all__ = ["DriftResult", "StatTest", "DriftReport", "available_tests", "build_drift_report", "get_test",
           "infer_feature_types", "register"]
