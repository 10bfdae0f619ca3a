from __future__ import annotations

import pytest

from driftline.infra.cli import build_parser


def test_the_cli_refuses_a_model_name_that_breaks_the_rule(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["rollback", "../../etc"])
    assert stop.value.code == 2
    assert "model '../../etc' is not a valid name: use 1 to 128 letters" in capsys.readouterr().err


def test_the_cli_takes_a_valid_model_name():
    assert build_parser().parse_args(["rollback", "churn"]).model == "churn"
