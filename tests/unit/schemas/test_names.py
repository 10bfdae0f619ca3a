from __future__ import annotations

import pytest

from driftline.schemas.names import NameError_, check_name


@pytest.mark.parametrize("name", ["churn", "v7", "fraud-detector_2.1", "A", "x" * 128, "20261123T120000"])
def test_names_a_user_would_choose_are_valid(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x", "a/b", "a\\b", "with space", "tab\t", "nul\x00", "-flag", ".hidden", "x" * 129, "zürich"],
)
def test_names_that_would_escape_hide_or_confuse_are_refused_with_the_rule(name):
    with pytest.raises(NameError_) as error:
        check_name(name, "model")
    assert str(error.value).startswith(f"model {name!r} is not a valid name: use 1 to 128 letters, digits")


def test_a_name_must_be_a_string():
    with pytest.raises(NameError_, match="model version 7 is not a valid name"):
        check_name(7, "model version")
