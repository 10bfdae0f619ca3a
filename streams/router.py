"""Deprecated home of the embedded router: it moved to :mod:`driftline.streams.rollouts.router`, beside the rest
of the rollout domain. Importing from here still works and warns; it will be removed in a later release."""

from __future__ import annotations

import warnings

from driftline.streams.rollouts.router import NoDeploymentError, Route, Router, RoutingTable

warnings.warn(
    "driftline.streams.router moved to driftline.streams.rollouts.router; import Router from there",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["NoDeploymentError", "Route", "Router", "RoutingTable"]
