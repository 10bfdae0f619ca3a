"""Hand-offs between the DAGs."""

from __future__ import annotations

from airflow.sdk import Asset

STORED_EVENTS = Asset("driftline_stored_events")
RETRAIN_REQUESTS = Asset("driftline_retrain_requests")
