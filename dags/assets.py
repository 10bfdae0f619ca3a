"""Hand-offs between the DAGs: the drift DAG updates the retrain requests, the retrain DAG is scheduled on them."""

from __future__ import annotations

from airflow.sdk import Asset

RETRAIN_REQUESTS = Asset("driftline_retrain_requests")
