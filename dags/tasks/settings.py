"""Settings inside an Airflow task: Airflow Connections and Variables first, the environment as the fallback.

Three Connections, each optional:

- ``driftline_kafka``: host and port are the bootstrap server (or ``bootstrap.servers`` in the extra, for a
  list); the extra's other keys are librdkafka settings passed through unchanged (``security.protocol``,
  ``sasl.mechanism``, ``ssl.ca.location``, ...); login and password become ``sasl.username`` /
  ``sasl.password`` unless the extra sets them.
- ``driftline_s3`` (type ``aws``): login and password are the access key id and the secret; the extra's
  ``endpoint_url`` (or ``host``) is the S3-compatible endpoint.
- ``driftline_slack``: the password is the bot token and the extra's ``channel`` the default channel, or the
  extra's ``webhook_url`` an incoming webhook; the extra's ``base_url`` another Slack API address.

And a Variable per setting, named ``driftline_<setting>`` (the environment variable without its
``DRIFTLINE_`` prefix, in lower case: ``driftline_storage_url``, ``driftline_config_dir``,
``driftline_topic_prefix``, ...), read with the same rules as the environment variable.

:func:`overlay` is the pure part; :func:`task_settings` reads Airflow and registers every secret with the
masker, so no password reaches a log line, a report or a task's return value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from driftline.schemas.settings import Settings, SettingsError

KAFKA_CONNECTION = "driftline_kafka"
S3_CONNECTION = "driftline_s3"
SLACK_CONNECTION = "driftline_slack"
CONNECTIONS = (KAFKA_CONNECTION, S3_CONNECTION, SLACK_CONNECTION)


@dataclass(frozen=True)
class ConnectionValues:
    """The parts of an Airflow Connection driftline reads."""

    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def variable_name(setting: str) -> str:
    """``storage_url`` → ``driftline_storage_url``."""
    return f"driftline_{setting}"


def overlay(settings: Settings, connections: Mapping[str, ConnectionValues], variables: Mapping[str, str]) -> Settings:
    """``settings`` (from the environment) with what the Connections and Variables set. Pure.

    Raises :class:`SettingsError` naming the Variable or Connection whose value does not hold.
    """
    values: dict[str, Any] = {}
    for spec in fields(Settings):
        name = variable_name(spec.name)
        if name in variables:
            try:
                values[spec.name] = spec.metadata["parse"](variables[name])
            except ValueError as exc:
                shown = "<hidden>" if spec.metadata["secret"] else repr(variables[name])
                raise SettingsError(f"Airflow Variable {name}={shown}: {exc}") from None
    kafka = connections.get(KAFKA_CONNECTION)
    if kafka is not None:
        values.update(_kafka(kafka))
    s3 = connections.get(S3_CONNECTION)
    if s3 is not None:
        endpoint = s3.extra.get("endpoint_url") or s3.extra.get("host")
        values.update(
            {k: v for k, v in (("s3_access_key_id", s3.login), ("s3_secret_access_key", s3.password)) if v},
            **({"s3_endpoint_url": str(endpoint)} if endpoint else {}),
        )
    slack = connections.get(SLACK_CONNECTION)
    if slack is not None:
        chosen = {
            "slack_token": slack.password,
            "slack_channel": slack.extra.get("channel"),
            "slack_webhook_url": slack.extra.get("webhook_url"),
            "slack_base_url": slack.extra.get("base_url"),
        }
        values.update({k: str(v) for k, v in chosen.items() if v})
    return replace(settings, **values)


def _kafka(connection: ConnectionValues) -> dict[str, Any]:
    options = {str(k): v for k, v in connection.extra.items()}
    servers = options.pop("bootstrap.servers", None)
    if servers is None and connection.host:
        servers = f"{connection.host}:{connection.port}" if connection.port else connection.host
    if connection.login:
        options.setdefault("sasl.username", connection.login)
    if connection.password:
        options.setdefault("sasl.password", connection.password)
    if not all(isinstance(v, str | int | float | bool) for v in options.values()):
        raise SettingsError(
            f"Airflow Connection {KAFKA_CONNECTION}: the extra must hold librdkafka settings as text, numbers or "
            "booleans"
        )
    values: dict[str, Any] = {"kafka_config": json.dumps(options)} if options else {}
    if servers:
        values["bootstrap_servers"] = str(servers)
    return values


def task_settings() -> Settings:
    """The settings of a driftline task: the environment, overlaid by the Airflow Connections and Variables that
    exist; every secret registered with the masker (``protect``)."""
    from driftline.schemas.secrets import protect

    return protect(overlay(Settings.from_env(), _read_connections(), _read_variables()))


def _read_connections() -> dict[str, ConnectionValues]:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowRuntimeError

    from driftline.dags.tasks.airflow_api import AirflowNotFoundException

    found = {}
    for conn_id in CONNECTIONS:
        try:
            connection = Connection.get(conn_id)
        except (AirflowNotFoundException, AirflowRuntimeError):
            continue
        found[conn_id] = ConnectionValues(
            host=connection.host or None,
            port=connection.port,
            login=connection.login or None,
            password=connection.password or None,
            extra=connection.extra_dejson or {},
        )
    return found


def _read_variables() -> dict[str, str]:
    from airflow.sdk import Variable

    found = {}
    for spec in fields(Settings):
        value = Variable.get(variable_name(spec.name), default=None)
        if value is not None:
            found[variable_name(spec.name)] = str(value)
    return found
