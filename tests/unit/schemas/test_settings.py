from __future__ import annotations

from pathlib import Path

import pytest

from driftline.schemas.settings import Settings, SettingsError


def test_settings_from_env_and_fast_timeouts_only_when_asked():
    settings = Settings.from_env({"DRIFTLINE_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "DRIFTLINE_TOPIC_PREFIX": "acme"})
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.topics.predictions == "acme.predictions"
    assert settings.topics.dead_letter == "acme.dead-letter"
    assert settings.consumer_group_overrides() == {}
    fast = Settings.from_env({"DRIFTLINE_FAST_GROUP_TIMEOUTS": "1"})
    assert fast.consumer_group_overrides()["session.timeout.ms"] == 6000


def test_an_empty_environment_gives_the_declared_defaults():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.bootstrap_servers, settings.partitions, settings.broker_port) == ("127.0.0.1:9092", 4, 9092)
    assert settings.storage_url == str(Path(".driftline") / "storage")
    assert settings.config_dir == str(Path(".driftline") / "models")
    assert (settings.allowed_lateness_seconds, settings.idle_close_seconds) == (30.0, 10.0)
    assert Settings.from_env({"DRIFTLINE_HOME": "/srv/dl"}).storage_url == "/srv/dl/storage"


def test_the_broker_port_alone_moves_every_client_of_the_local_broker():
    assert Settings.from_env({"DRIFTLINE_BROKER_PORT": "19092"}).bootstrap_servers == "127.0.0.1:19092"
    assert Settings.from_env({"DRIFTLINE_BROKER_PORT": "19092"}).kafka_client_config()["bootstrap.servers"] == (
        "127.0.0.1:19092"
    )
    explicit = {"DRIFTLINE_BROKER_PORT": "19092", "DRIFTLINE_BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093"}
    assert Settings.from_env(explicit).bootstrap_servers == "kafka-1:9093,kafka-2:9093"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DRIFTLINE_PARTITIONS", "zero", "DRIFTLINE_PARTITIONS='zero': expected a positive whole number"),
        ("DRIFTLINE_BROKER_PORT", "70000", "DRIFTLINE_BROKER_PORT='70000': expected a TCP port number"),
        ("DRIFTLINE_BROKER_PORT", "0", "DRIFTLINE_BROKER_PORT='0': expected a TCP port number (1-65535)"),
        ("DRIFTLINE_WORKER_PORT", "-1", "DRIFTLINE_WORKER_PORT='-1': expected a TCP port number (1-65535), or 0"),
        ("DRIFTLINE_FAST_GROUP_TIMEOUTS", "maybe", "DRIFTLINE_FAST_GROUP_TIMEOUTS='maybe': expected 1/true"),
        ("DRIFTLINE_IDLE_CLOSE_SECONDS", "-1", "DRIFTLINE_IDLE_CLOSE_SECONDS='-1': expected a finite number"),
    ],
)
def test_bad_values_name_the_variable_and_what_would_be_right(variable, value, expected):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: value})
    assert str(error.value).startswith(expected)


def test_the_worker_port_may_be_zero_for_any_free_port():
    assert Settings.from_env({"DRIFTLINE_WORKER_PORT": "0"}).worker_port == 0


def test_secrets_stay_out_of_repr_and_error_messages():
    settings = Settings.from_env({"DRIFTLINE_SLACK_WEBHOOK_URL": "https://hooks.example/T0/B0/secret-part"})
    assert "secret-part" not in repr(settings)
    assert settings.slack_configured


def test_to_env_round_trips_through_from_env():
    settings = Settings.from_env(
        {
            "DRIFTLINE_TOPIC_PREFIX": "demo-1",
            "DRIFTLINE_FAST_GROUP_TIMEOUTS": "yes",
            "DRIFTLINE_IDLE_CLOSE_SECONDS": "2.5",
            "DRIFTLINE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        }
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert settings.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}


def test_every_setting_is_read_from_one_documented_variable():
    variables = Settings.variables()
    assert len(set(variables.values())) == len(variables)
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    missing = [name for name in variables.values() if name not in readme]
    assert missing == []
