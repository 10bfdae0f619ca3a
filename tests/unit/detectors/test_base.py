from __future__ import annotations

import numpy as np
import pytest

from driftline.detectors.base import StatTest, StatTestOptions
from driftline.detectors.registry import get_test


def _zero(reference: np.ndarray, current: np.ndarray) -> tuple[float, None]:
    return 0.0, None


@pytest.mark.parametrize(
    ("test_name", "threshold", "message"),
    [
        ("ks", 1.5, "ks: a p-value threshold must be in (0, 1), got 1.5"),
        ("ks", 0.0, "ks: a p-value threshold must be in (0, 1), got 0.0"),
        ("psi", -0.1, "psi: a distance threshold must be a positive finite number, got -0.1"),
        ("psi", float("inf"), "psi: a distance threshold must be a positive finite number, got inf"),
    ],
)
def test_options_are_validated_against_the_test_they_are_used_with(test_name, threshold, message):
    with pytest.raises(ValueError) as error:
        StatTestOptions(threshold=threshold).threshold_for(get_test(test_name))
    assert str(error.value) == message


def test_options_and_the_threshold_shorthand_give_the_same_result():
    rng = np.random.default_rng(0)
    reference, current = rng.normal(0, 1, 300), rng.normal(0.3, 1, 300)
    ks = get_test("ks")
    by_options = ks.run(reference, current, StatTestOptions(threshold=0.01))
    assert by_options == ks.run(reference, current, threshold=0.01)
    assert by_options.threshold == 0.01
    assert ks.run(reference, current).threshold == ks.default_threshold
    with pytest.raises(ValueError, match="either options or threshold, not both"):
        ks.run(reference, current, StatTestOptions(threshold=0.01), threshold=0.02)
    with pytest.raises(TypeError):
        StatTestOptions(0.01)  # keyword-only


def test_a_test_must_declare_valid_needs_and_a_valid_default_threshold():
    with pytest.raises(ValueError, match="must declare the profile data it uses in 'needs'"):
        StatTest("gap", ("numeric",), 0.1, "distance", _zero)
    with pytest.raises(ValueError, match="must declare the profile data it uses"):
        StatTest("gap", ("numeric",), 0.1, "distance", _zero, needs=("histogram",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gap: a p-value threshold must be in"):
        StatTest("gap", ("numeric",), 5.0, "p_value", _zero, needs=("sample",))
