"""Seeded streams, exact detection indices (as in the module's doctest)."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import driftline.detectors.online as online
from driftline.detectors.online import Adwin, Cusum, PageHinkley


def detections(detector, stream) -> list[int]:
    return [i for i, x in enumerate(stream) if detector.update(x).drift_detected]


def shifted_stream(seed: int, shift: float, before: int = 1000, after: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, before), rng.normal(shift, 1, after)])


def test_the_module_doctest_passes():
    assert doctest.testmod(online).failed == 0


@pytest.mark.parametrize(("detector", "expected"), [(PageHinkley, [1017]), (Cusum, [1005]), (Adwin, [1023])])
def test_a_mean_shift_is_found_at_the_exact_index(detector, expected):
    assert detections(detector(), shifted_stream(42, 1.5)) == expected


def test_smaller_and_downward_shifts():
    small = np.concatenate([np.random.default_rng(7).normal(0, 1, 1000), np.random.default_rng(8).normal(0.5, 1, 2000)])
    assert detections(PageHinkley(), small) == [1070]
    assert detections(Cusum(), small) == [1017]
    down = shifted_stream(3, -1.0)
    assert detections(PageHinkley(mode="up"), down) == []
    assert detections(PageHinkley(mode="down"), down)[0] >= 1000


@pytest.mark.parametrize(("detector", "expected"), [(PageHinkley, 3), (Cusum, 2), (Adwin, 2)])
def test_false_alarms_on_stable_streams(detector, expected):
    total = 0
    for seed in range(20):
        instance = detector()
        total += len(detections(instance, np.random.default_rng(100 + seed).normal(0, 1, 5000)))
    assert total == expected  # per 100 000 stable values


def test_adwin_shrinks_its_window_on_drift_and_detectors_validate():
    adwin = Adwin()
    detections(adwin, shifted_stream(42, 1.5))
    assert adwin.width < 1000 and adwin.n_detections == 1
    with pytest.raises(ValueError, match="mode must be 'up', 'down' or 'both'"):
        PageHinkley(mode="sideways")
    with pytest.raises(ValueError, match="needs a finite number"):
        Cusum().update(float("nan"))
    with pytest.raises(ValueError, match="need 0 < delta < 1"):
        Adwin(delta=2)


@pytest.mark.parametrize("make", [PageHinkley, Cusum, Adwin])
def test_a_detector_restored_from_its_state_decides_exactly_as_the_original(make):
    rng = np.random.default_rng(11)
    stream = np.concatenate([rng.normal(0, 1, 700), rng.normal(1.5, 1, 700)])
    original = make()
    for x in stream[:500]:
        original.update(float(x))
    state = json.loads(json.dumps(original.state()))  # through its wire form
    restored = type(original).from_state(state)
    found = [[i for i, x in enumerate(stream[500:]) if d.update(float(x)).drift_detected] for d in (original, restored)]
    assert found[0] == found[1] and found[0]
    assert restored.state() == original.state()
