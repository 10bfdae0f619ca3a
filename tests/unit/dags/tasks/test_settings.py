from __future__ import annotations

import json

import pytest

from driftline.dags.tasks.settings import ConnectionValues, overlay
from driftline.schemas.secrets import secret_values
from driftline.schemas.settings import Settings, SettingsError

BASE = Settings(bootstrap_servers="env:9092", storage_url="/env/storage", slack_channel="#env")


def test_without_connections_or_variables_the_environment_holds():
    assert overlay(BASE, {}, {}) == BASE


def test_a_kafka_connection_sets_the_servers_and_passes_librdkafka_settings_through():
    kafka = ConnectionValues(
        host="broker.internal",
        port=9093,
        login="svc",
        password="s3cr3t-pass",
        extra={"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "socket.keepalive.enable": True},
    )
    settings = overlay(BASE, {"driftline_kafka": kafka}, {})
    assert settings.bootstrap_servers == "broker.internal:9093"
    assert settings.kafka_client_config(**{"group.id": "g"}) == {
        "bootstrap.servers": "broker.internal:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "socket.keepalive.enable": "true",
        "sasl.username": "svc",
        "sasl.password": "s3cr3t-pass",
        "group.id": "g",
    }
    assert "s3cr3t-pass" in secret_values(settings)  # masked in every log line once protected
    assert "s3cr3t-pass" not in repr(settings)
    listed = overlay(BASE, {"driftline_kafka": ConnectionValues(extra={"bootstrap.servers": "a:1,b:2"})}, {})
    assert listed.bootstrap_servers == "a:1,b:2" and listed.kafka_options == {}


def test_s3_and_slack_connections_and_variables_override_the_environment():
    settings = overlay(
        BASE,
        {
            "driftline_s3": ConnectionValues(login="AKIA1", password="secret-key", extra={"endpoint_url": "http://s3"}),
            "driftline_slack": ConnectionValues(
                password="xoxb-token-1", extra={"channel": "#ml", "base_url": "http://x/"}
            ),
        },
        {"driftline_storage_url": "s3://bucket/store", "driftline_partitions": "6"},
    )
    assert settings.storage_options == {"endpoint_url": "http://s3", "key": "AKIA1", "secret": "secret-key"}
    assert (settings.slack_token, settings.slack_channel, settings.slack_base_url) == (
        "xoxb-token-1",
        "#ml",
        "http://x/",
    )
    assert (settings.storage_url, settings.partitions, settings.bootstrap_servers) == (
        "s3://bucket/store",
        6,
        "env:9092",
    )
    assert {"secret-key", "xoxb-token-1"} <= secret_values(settings)


def test_a_variable_that_does_not_hold_is_named_and_a_secret_one_is_not_shown():
    with pytest.raises(SettingsError, match=r"Airflow Variable driftline_partitions='many': expected a positive"):
        overlay(BASE, {}, {"driftline_partitions": "many"})
    with pytest.raises(SettingsError, match=r"driftline_kafka_config=<hidden>: expected a JSON object"):
        overlay(BASE, {}, {"driftline_kafka_config": "[1]"})
    with pytest.raises(SettingsError, match="the extra must hold librdkafka settings"):
        overlay(BASE, {"driftline_kafka": ConnectionValues(extra={"nested": {"a": 1}})}, {})
    assert json.loads(overlay(BASE, {}, {"driftline_kafka_config": '{"acks": "all"}'}).kafka_config or "") == {
        "acks": "all"
    }
