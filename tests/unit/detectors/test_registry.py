"""The registry runs in a fresh interpreter where it matters: whether the built-ins are loaded yet is the point."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from driftline.detectors import registry
from driftline.detectors.base import StatTest
from driftline.detectors.registry import available_test_names, get_test, register

BUILT_INS = [
    "anderson_darling",
    "chisquare",
    "cramer_von_mises",
    "energy",
    "fisher_exact",
    "g_test",
    "hellinger",
    "jensen_shannon",
    "kl_divergence",
    "ks",
    "mann_whitney",
    "psi",
    "total_variation",
    "wasserstein",
    "z_test",
]


def _gap(reference: np.ndarray, current: np.ndarray) -> tuple[float, None]:
    return abs(float(np.mean(reference)) - float(np.mean(current))), None


def test_every_built_in_is_listed_and_declares_what_it_reads_from_a_profile():
    assert [name for name in available_test_names() if name in BUILT_INS] == BUILT_INS
    assert get_test("ks").needs == ("bin_counts",)  # the exact path runs only when the samples hold every value
    assert get_test("chisquare").needs == ("counts",)
    assert get_test("wasserstein").needs == ("bin_counts", "tail_excess", "moments")


def test_registering_under_a_built_in_name_is_an_error_after_the_built_ins_loaded():
    with pytest.raises(ValueError, match=r"'ks' is already registered \(a built-in\); choose another name"):
        register(StatTest("ks", ("numeric",), 0.1, "distance", _gap, needs=("sample",)))
    assert get_test("ks").direction == "p_value"  # the built-in is untouched


def test_registering_under_a_built_in_name_is_an_error_even_before_the_built_ins_load():
    code = (
        "import numpy as np\n"
        "from driftline.detectors.base import StatTest\n"
        "from driftline.detectors.registry import register\n"
        "try:\n"
        "    register(StatTest('psi', ('numeric',), 0.1, 'distance', lambda r, c: (0.0, None), needs=('sample',)))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (
        completed.stdout.strip() == "a drift test named 'psi' is already registered (a built-in); choose another name"
    )


def test_a_custom_test_registers_once_and_is_found_by_name():
    name = "mean_gap_for_test"
    try:
        test = register(StatTest(name, ("numeric",), 0.5, "distance", _gap, needs=("sample",)))
        assert get_test(name) is test and name in available_test_names()
        with pytest.raises(ValueError, match=r"already registered \(another\)"):
            register(StatTest(name, ("numeric",), 0.5, "distance", _gap, needs=("sample",)))
    finally:
        registry._REGISTRY.pop(name, None)  # leave the process's registry as the other tests expect it


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown drift test 'kss'; valid names: anderson_darling, chisquare"):
        get_test("kss")
