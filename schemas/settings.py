"""Where driftline's external systems are: read from the environment.

Production points these at its own Kafka, S3 and Slack; the local stack
(``driftline up``) writes an env file that sets them for the embedded default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = Path(".driftline")


@dataclass(frozen=True)
class Topics:
    """Topic names; every one carries the configurable prefix."""

    prefix: str = "driftline"

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}" if self.prefix else suffix

    @property
    def predictions(self) -> str:
        return self._name("predictions")

    @property
    def labels(self) -> str:
        return self._name("labels")

    @property
    def metrics(self) -> str:
        return self._name("metrics")

    @property
    def alerts(self) -> str:
        return self._name("alerts")

    @property
    def deployments(self) -> str:
        return self._name("deployments")

    @property
    def dead_letter(self) -> str:
        return self._name("dead-letter")

    def all(self) -> list[str]:
        return [self.predictions, self.labels, self.metrics, self.alerts, self.deployments, self.dead_letter]


@dataclass(frozen=True)
class Settings:
    """Connection settings. ``from_env`` is the only constructor code should need."""

    bootstrap_servers: str = "127.0.0.1:9092"
    storage_url: str = str(DEFAULT_HOME / "storage")
    config_dir: str = str(DEFAULT_HOME / "models")
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4
    slack_token: str | None = None
    slack_channel: str | None = None
    slack_webhook_url: str | None = None
    slack_base_url: str | None = None
    # Short consumer-group timeouts make joins take seconds instead of ~24 s on
    # the embedded broker. They are opt-in (the local stack sets them) and never
    # applied silently to a production cluster.
    fast_group_timeouts: bool = False
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        storage_options = {}
        if env.get("DRIFTLINE_S3_ENDPOINT_URL"):
            storage_options["endpoint_url"] = env["DRIFTLINE_S3_ENDPOINT_URL"]
        partitions_text = env.get("DRIFTLINE_PARTITIONS", "4")
        if not partitions_text.isdigit() or int(partitions_text) < 1:
            raise ValueError(f"DRIFTLINE_PARTITIONS must be a positive whole number, got {partitions_text!r}")
        return cls(
            bootstrap_servers=env.get("DRIFTLINE_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            storage_url=env.get("DRIFTLINE_STORAGE_URL", cls.storage_url),
            config_dir=env.get("DRIFTLINE_CONFIG_DIR", cls.config_dir),
            topics=Topics(prefix=env.get("DRIFTLINE_TOPIC_PREFIX", "driftline")),
            partitions=int(partitions_text),
            slack_token=env.get("DRIFTLINE_SLACK_TOKEN") or None,
            slack_channel=env.get("DRIFTLINE_SLACK_CHANNEL") or None,
            slack_webhook_url=env.get("DRIFTLINE_SLACK_WEBHOOK_URL") or None,
            slack_base_url=env.get("DRIFTLINE_SLACK_BASE_URL") or None,
            fast_group_timeouts=env.get("DRIFTLINE_FAST_GROUP_TIMEOUTS", "") in {"1", "true", "yes"},
            storage_options=storage_options,
        )

    def consumer_group_overrides(self) -> dict[str, int]:
        """librdkafka settings for short group joins, when enabled."""
        if not self.fast_group_timeouts:
            return {}
        return {"session.timeout.ms": 6000, "max.poll.interval.ms": 7000, "heartbeat.interval.ms": 1000}
