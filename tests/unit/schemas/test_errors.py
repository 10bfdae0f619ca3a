from __future__ import annotations

import pandas as pd
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from driftline.schemas.config import ConfigError, MonitorConfig
from driftline.schemas.errors import UserError, check_monitor_config, checked, explain, user_errors


def config(reference: str, entry_point: str | None = None) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {"model": "churn", "reference": reference, "retrain": {"entry_point": entry_point}}
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NoCredentialsError(), "model 'churn': S3 has no usable credentials (Unable to locate credentials); set"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1/b"),
            "model 'churn': cannot reach S3 (Could not connect to the endpoint URL: \"http://127.0.0.1:1/b\"); check",
        ),
        (FileNotFoundError(2, "No such file or directory", "/data/x.parquet"), "model 'churn': /data/x.parquet does"),
        (ConfigError("models/a.yaml: 'drift.alpha': must be > 0"), "model 'churn': models/a.yaml: 'drift.alpha'"),
        (LookupError("no stored predictions for model 'churn'\n under s3://b"), "model 'churn': no stored predictions"),
    ],
)
def test_a_mistake_a_user_can_fix_is_one_line_that_names_where(error, expected):
    line = explain(error, "model 'churn'")
    assert line is not None and line.startswith(expected) and "\n" not in line


def test_a_message_already_naming_the_place_is_not_prefixed_twice():
    assert explain(ConfigError("model 'churn': bad"), "model 'churn'") == "model 'churn': bad"


@pytest.mark.parametrize("error", [KeyError("x"), ZeroDivisionError(), TypeError("bug"), IndexError()])
def test_a_bug_is_not_explained_and_keeps_its_traceback(error):
    assert explain(error, "model 'churn'") is None
    with pytest.raises(type(error)), user_errors("model 'churn'"):
        raise error


def test_user_errors_raises_the_line_without_the_chain():
    with pytest.raises(UserError) as raised, user_errors("model 'churn'"):
        raise NoCredentialsError()
    assert str(raised.value).startswith("model 'churn': S3 has no usable credentials")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_config_is_checked_for_what_it_names(tmp_path):
    good = tmp_path / "train.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(good)
    csv = tmp_path / "train.csv"
    csv.write_text("x,label\n1,0\n")
    assert check_monitor_config(config(str(good), "driftline.infra.demo_model:train"), {}) == []
    assert check_monitor_config(config(str(csv)), {}) == []
    assert checked(config(str(good)), {}).model == "churn"

    text = tmp_path / "train.parquet.bak"
    text.write_text("not parquet")
    problems = check_monitor_config(config(str(tmp_path / "none.parquet"), "driftline.infra.demo_model:nope"), {})
    assert problems == [
        f"model 'churn': reference: {tmp_path}/none.parquet does not exist (No such file or directory); check the path "
        "or URL in the config; it must be the model's training data as Parquet or CSV",
        "model 'churn': retrain.entry_point 'driftline.infra.demo_model:nope': driftline.infra.demo_model has no "
        "function 'nope'",
    ]
    # What a file is, its bytes say: text is CSV whatever the name, and a header alone is no training data.
    [headless] = check_monitor_config(config(str(text)), {})
    assert (
        headless
        == f"model 'churn': reference {text} has a header line but no rows; it must be the model's training data"
    )
    binary = tmp_path / "train.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    [unknown] = check_monitor_config(config(str(binary)), {})
    assert "cannot tell the format" in unknown and "neither Parquet" in unknown and "nor UTF-8 text (CSV)" in unknown
    renamed = tmp_path / "train.data"
    renamed.write_bytes(good.read_bytes())
    assert check_monitor_config(config(str(renamed)), {}) == []
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    [unreadable] = check_monitor_config(config(str(corrupt)), {})
    assert unreadable.startswith(f"model 'churn': reference {corrupt} is not readable (ArrowInvalid")
    with pytest.raises(UserError, match="has no function 'nope'"):
        checked(config(str(good), "driftline.infra.demo_model:nope"), {})
    # The drift check does not call the entry point: a missing training package must not stop monitoring.
    assert checked(config(str(good), "driftline.infra.demo_model:nope"), {}, entry_point=False).model == "churn"


def test_a_user_error_with_a_chain_below_it_leaves_as_its_line_alone():
    from driftline.streams.alerts.delivery import AlertDeliveryError

    with pytest.raises(UserError) as raised, user_errors("model 'churn'"):
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise AlertDeliveryError("Slack unreachable: URLError: Connection refused") from exc
    assert str(raised.value) == "model 'churn': Slack unreachable: URLError: Connection refused"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
