from __future__ import annotations

import re
from datetime import timedelta

import pytest

from driftline.schemas.config import ConfigError, load_monitor_config, load_monitor_configs, parse_duration


def test_name_and_reference_are_a_complete_config(tmp_path):
    (tmp_path / "churn.yaml").write_text("model: churn\nreference: s3://bucket/train.parquet\n")
    config = load_monitor_configs(tmp_path)["churn"]
    assert config.drift.window == timedelta(hours=1)
    assert config.drift.correction == "fdr"
    assert config.metrics.window == timedelta(minutes=5)
    assert config.metrics.error_rate == 0.05
    assert config.features is None and config.retrain.entry_point is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0m", "5 minutes", "-1h", ""])
def test_bad_durations_say_what_would_be_right(text):
    with pytest.raises(ValueError, match="expected a positive duration such as '30s'"):
        parse_duration(text)


def test_errors_name_the_file_and_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: churn\nreference: x.parquet\ndrift:\n  alpha: 2\n  corection: fdr\nretrain:\n  entry_point: nope\n"
    )
    with pytest.raises(ConfigError) as error:
        load_monitor_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "'drift.alpha': Input should be less than 1" in message
    assert "'drift.corection': Extra inputs are not permitted" in message
    assert "retrain.entry_point must look like 'package.module:function'" in message


def test_a_model_configured_twice_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("model: churn\nreference: a.parquet\n")
    (tmp_path / "b.yaml").write_text("model: churn\nreference: b.parquet\n")
    with pytest.raises(ConfigError, match="configured twice"):
        load_monitor_configs(tmp_path)


def test_unknown_test_names_are_rejected_at_load_with_the_valid_ones(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("model: m\nreference: r.parquet\ndrift:\n  tests: {age: kss, plan: chisquare}\n")
    with pytest.raises(ConfigError) as error:
        load_monitor_config(path)
    message = str(error.value)
    assert "unknown drift test (age: 'kss')" in message and "valid names: " in message and "'ks'" not in message
    assert "ks, " in message or ", ks" in message


def test_unknown_correction_is_rejected_with_the_valid_ones(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("model: m\nreference: r.parquet\ndrift: {correction: holm}\n")
    with pytest.raises(
        ConfigError, match=re.escape("'drift.correction': Input should be 'fdr', 'bonferroni' or 'none'")
    ):
        load_monitor_config(path)


def test_the_config_offers_exactly_the_corrections_the_engine_has():
    from typing import get_args

    from driftline.detectors.correction import CORRECTIONS
    from driftline.schemas.config import DriftSettings

    assert get_args(DriftSettings.model_fields["correction"].annotation) == CORRECTIONS
    assert DriftSettings().correction == CORRECTIONS[0]


def test_a_scan_sets_broken_configs_apart_so_each_stops_only_its_own_model(tmp_path):
    from driftline.schemas.config import scan_monitor_configs

    (tmp_path / "a.yaml").write_text("model: a\nreference: a.parquet\n")
    (tmp_path / "b.yaml").write_text("model: b\nreference: [unclosed\n")  # not YAML
    (tmp_path / "c.yaml").write_text("model: ../c\nreference: c.parquet\n")  # a name that breaks the rule
    (tmp_path / "d.yml").write_text("model: d\nreference: d.parquet\ndrift: {alpha: 7}\n")  # names itself
    (tmp_path / "e1.yaml").write_text("model: e\nreference: e.parquet\n")
    (tmp_path / "e2.yaml").write_text("model: e\nreference: other.parquet\n")

    scan = scan_monitor_configs(tmp_path)

    assert list(scan.configs) == ["a"]
    assert sorted(scan.broken) == ["b.yaml", "c.yaml", "d", "e"]
    assert scan.models == ["a", "b.yaml", "c.yaml", "d", "e"]
    assert scan.broken["b.yaml"].startswith(f"{tmp_path}/b.yaml: not valid YAML")
    assert "'model'" in scan.broken["c.yaml"] and "'drift.alpha'" in scan.broken["d"]
    assert scan.broken["e"] == (
        f"model 'e' is configured in both e1.yaml and e2.yaml in {tmp_path}; keep one file per model"
    )
    assert scan_monitor_configs(tmp_path / "missing").models == []
