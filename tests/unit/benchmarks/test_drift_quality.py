"""The quality benchmark's splits and injected shifts: disjoint splits, the stated rates and shares, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import quality_data as qd
from benchmarks.drift_quality import Row, column_kinds, render


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_disjoint_split_is_disjoint_and_sized() -> None:
    ref, cur = qd.disjoint_split(rng(), 1_000, 600, 300)
    assert len(ref) == 600 and len(cur) == 300
    assert not set(ref) & set(cur)
    assert len(set(ref)) == 600 and len(set(cur)) == 300
    with pytest.raises(ValueError):
        qd.disjoint_split(rng(), 100, 60, 41)


def test_real_splits_take_disjoint_rows_of_the_table() -> None:
    table = pd.DataFrame({"row": np.arange(500), "x": np.linspace(0, 1, 500)})
    ref, cur = qd._real(table, 300, 150, None)(rng())
    assert not set(ref["row"]) & set(cur["row"])
    shifted_ref, shifted_cur = qd._real(table, 300, 150, ("x", 1.2))(rng())
    assert shifted_ref.equals(ref)
    np.testing.assert_allclose(shifted_cur["x"], cur["x"] * 1.2)


def test_move_mass_moves_the_stated_share_to_the_targets() -> None:
    values = qd.ZIPS[rng().choice(len(qd.ZIPS), size=5_000)]
    targets = qd.ZIPS[:30]
    moved_values, moved = qd.move_mass(rng(1), values, 0.2, targets)
    assert len(moved) == 1_000 == len(set(moved))
    assert np.isin(moved_values[moved], targets).all()
    assert np.isin(moved_values, targets).mean() >= 0.2
    unchanged = np.setdiff1d(np.arange(5_000), moved)
    assert (moved_values[unchanged] == values[unchanged]).all()


def test_zipf_probabilities() -> None:
    probs = qd.zip_probabilities("zipf")
    assert probs.sum() == pytest.approx(1) and len(probs) == 600
    assert probs[0] / probs[1] == pytest.approx(2**1.1)
    assert qd.zip_probabilities("uniform") == pytest.approx(np.full(600, 1 / 600))


@pytest.mark.parametrize(
    ("shift", "column", "expected"),
    [("prediction", None, None), ("flag", "flag", 0.35), ("none", "flag", 0.30)],
)
def test_large_table_rates(shift: str, column: str | None, expected: float | None) -> None:
    frame = qd.large_table(rng(), 200_000, shift)
    if column is not None:
        assert (frame[column] == "1").mean() == pytest.approx(expected, abs=0.005)
    else:
        shares = frame["prediction"].value_counts(normalize=True)
        assert shares["a"] == pytest.approx(0.4, abs=0.005)
        assert shares["b"] == pytest.approx(0.4, abs=0.005)
        assert shares["c"] == pytest.approx(0.2, abs=0.005)


def test_large_table_count_and_spread_shifts() -> None:
    base, visits, amount = (qd.large_table(rng(), 200_000, shift) for shift in ("none", "visits", "amount"))
    assert base["visits"].mean() == pytest.approx(4, rel=0.01)
    assert visits["visits"].mean() == pytest.approx(4.8, rel=0.01)
    assert base["amount"].std() == pytest.approx(15, rel=0.01)
    assert amount["amount"].std() == pytest.approx(22.5, rel=0.01)
    assert amount["amount"].mean() == pytest.approx(100, abs=0.2)


def test_tiny_window_shifts_have_the_stated_shares() -> None:
    ref, cur = qd._tiny(5_000, 40, "range")(rng())
    assert (cur["amount"] > ref["amount"].max()).sum() == 36
    ref, cur = qd._tiny(5_000, 40, "unseen")(rng())
    assert (~cur["segment"].isin(ref["segment"].unique())).sum() == 20
    ref, cur = qd._tiny(5_000, 40, "missing")(rng())
    assert cur["score"].isna().sum() == 24 and ref["score"].isna().sum() == 0
    ref, cur = qd._tiny(5_000, 40, "none")(rng())
    assert len(ref) == 5_000 and len(cur) == 40 and cur["segment"].isin(qd.SEGMENTS).all()


def test_zero_inflated_zero_share() -> None:
    ref, cur = qd._zeros(200_000, 200_000, True)(rng())
    assert (ref["claims"] == 0).mean() == pytest.approx(0.95, abs=0.002)
    assert (cur["claims"] == 0).mean() == pytest.approx(0.90, abs=0.002)
    assert (cur["claims"] >= 0).all() and cur["claims"].max() > 5


def test_correlation_flip_keeps_the_marginals() -> None:
    ref, cur = qd._multivariate(200_000, 200_000, True)(rng())
    assert np.corrcoef(ref["x1"], ref["x2"])[0, 1] == pytest.approx(0.8, abs=0.01)
    assert np.corrcoef(cur["x1"], cur["x2"])[0, 1] == pytest.approx(-0.8, abs=0.01)
    for frame in (ref, cur):
        assert frame["x2"].std() == pytest.approx(1, abs=0.01)
        assert abs(np.corrcoef(frame["x1"], frame["x3"])[0, 1]) < 0.01


def test_settings_meet_the_counts() -> None:
    real = {name: pd.DataFrame({"disea": np.arange(20_000.0), "mean radius": 1.0}) for name in qd.REAL_TABLES}
    plan = qd.settings(real)
    assert sum(s.n_splits for s in plan if not s.drifted) >= 200
    assert all(s.n_splits >= 40 for s in plan if s.drifted)
    real_calm = sum(s.n_splits for s in plan if not s.drifted and s.kind.startswith("real"))
    assert real_calm >= 0.4 * sum(s.n_splits for s in plan if not s.drifted)
    first, again = plan[0].make(rng(3)), plan[0].make(rng(3))
    assert first[0].equals(again[0]) and first[1].equals(again[1])  # seeded


def test_column_kinds_and_render() -> None:
    ref, _cur = qd._large(1_000, 500, "none")(rng())
    assert column_kinds(ref) == (["visits", "amount"], ["prediction", "flag"])
    calm = Row(qd.Setting("k", 1_000, 500, "none", 2, qd._large(1_000, 500, "none")), ["no_drift", "drift"])
    calm.dataset_drift, calm.any_column = [False, False], [True, False]
    shifted = Row(qd.Setting("k", 1_000, 500, "x", 2, qd._large(1_000, 500, "flag")), ["drift", "drift"])
    table = render([calm, shifted], evidently="0.7.23", seed=0, seconds=1.0, sources={})
    assert "| k | 1,000 / 500 | none | 2 | 50.0 % | 0.0 % | 0.0 % | 50.0 % |" in table
    assert "driftline 50.0 %" in table and "driftline 100.0 %" in table
