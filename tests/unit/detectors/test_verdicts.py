"""Issue 13's classes of data: many categories, large windows, tiny windows, ties, joint shifts (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from driftline.detectors import Profile, build_reference_profile, compare_profiles, window_profile
from driftline.detectors.engine import EFFECT_FLOORS, gross_change
from driftline.detectors.stattests.chisquare import pool_sparse
from driftline.schemas.config import DriftSettings

ZIPS = np.array([f"{i:05d}" for i in range(600)])
_WEIGHTS = 1 / np.arange(1, 601) ** 1.1
ZIPF = _WEIGHTS / _WEIGHTS.sum()


def _window(reference: Profile, data: pd.DataFrame) -> Profile:
    return window_profile(reference, iter(pa.Table.from_pandas(data, preserve_index=False).to_batches(10_000)))


def _report(reference_data: pd.DataFrame, current_data: pd.DataFrame, **options):
    reference = build_reference_profile(reference_data)
    return compare_profiles(reference, _window(reference, current_data), **options)


@pytest.mark.parametrize(("current_rows", "weights"), [(300, None), (5000, None), (300, ZIPF), (5000, ZIPF)])
def test_hundreds_of_categories_are_flagged_at_most_at_alpha_when_nothing_changed(current_rows, weights):
    rng = np.random.default_rng(current_rows)
    runs, flagged = 60, 0
    for _ in range(runs):
        reference = pd.DataFrame({"zip": rng.choice(ZIPS, 20_000, p=weights)})
        current = pd.DataFrame({"zip": rng.choice(ZIPS, current_rows, p=weights)})
        flagged += _report(reference, current, multivariate=False).verdict == "drift"
    # alpha = 0.05: 60 runs flag 3 on average; 8 or more has probability < 1 % (binomial)
    assert flagged <= 7
    # Before (top 200 kept + OTHER, and a fixed Jensen-Shannon threshold past 1,000 rows) every run was flagged.


def test_a_window_counts_reference_categories_exactly_so_the_table_lines_up():
    rng = np.random.default_rng(2)
    reference_data = pd.DataFrame({"zip": rng.choice(ZIPS, 20_000, p=ZIPF)})
    report = _report(reference_data, pd.DataFrame({"zip": rng.choice(ZIPS, 5000, p=ZIPF)}), multivariate=False)
    result = report.features[0].result
    assert (result.test, result.reference_size, result.current_size) == ("chisquare", 20_000, 5000)


def test_pooling_sparse_categories_keeps_totals_and_reaches_the_expected_count():
    table = np.array([[40, 1, 2, 3, 300, 0], [10, 0, 1, 1, 90, 2]])
    pooled = pool_sparse(table)
    assert pooled.sum() == table.sum() and np.array_equal(pooled.sum(axis=1), table.sum(axis=1))
    expected = pooled.sum(axis=0) * pooled.sum(axis=1).min() / pooled.sum()
    assert expected.min() >= 5
    assert pooled.shape[1] == 2  # 50, 300 stay; 1+2+3+0 and 0+1+1+2 (10 in all) join the smallest that had enough
    assert pooled[:, 0].tolist() == [46, 14]


@pytest.mark.parametrize(
    "shift",
    ["class_mass", "binary_rate", "count_mean", "spread"],
)
@pytest.mark.parametrize("reference_rows", [10_000, 50_000])
def test_plain_shifts_in_large_windows_are_drift(shift, reference_rows):
    rng = np.random.default_rng(reference_rows)

    def data(n: int, shifted: bool) -> pd.DataFrame:
        moved = shifted and shift == "class_mass"
        return pd.DataFrame(
            {
                "prediction": rng.choice(["a", "b", "c"], n, p=[0.4, 0.4, 0.2] if moved else [0.5, 0.3, 0.2]),
                "clicked": np.where(rng.random(n) < (0.35 if shifted and shift == "binary_rate" else 0.30), "y", "n"),
                "visits": rng.poisson(4 * (1.2 if shifted and shift == "count_mean" else 1.0), n).astype(float),
                "score": rng.normal(0, 1.5 if shifted and shift == "spread" else 1.0, n),
            }
        )

    column = {"class_mass": "prediction", "binary_rate": "clicked", "count_mean": "visits", "spread": "score"}[shift]
    report = _report(data(reference_rows, False), data(5000, True))
    assert report.drifted_features == [column]
    result = next(f.result for f in report.features if f.feature == column)
    assert result.significant and result.effect >= result.effect_floor
    quiet = _report(data(reference_rows, False), data(5000, False))
    assert quiet.drifted_features == []


def test_a_tiny_but_significant_change_in_a_huge_window_is_minor_not_drift():
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    report = _report(reference, pd.DataFrame({"x": rng.normal(0.03, 1, 200_000)}), multivariate=False)
    result = report.features[0].result
    assert result.significant and not result.drifted and result.verdict == "minor"
    assert result.effect == pytest.approx(0.03, abs=0.01) and result.effect_floor == EFFECT_FLOORS["numeric"]
    assert report.verdict == "no_drift" and report.minor_features == ["x"]
    # The user's floor: 0 makes every significant change drift.
    strict = _report(reference, pd.DataFrame({"x": rng.normal(0.03, 1, 200_000)}), effect_floors={"x": 0.0})
    assert strict.drifted_features == ["x"]


def test_gross_change_bounds_are_exact():
    # x is 0, 1, ..., 999, which alone would be left out as a row number: named a feature here.
    table = pd.DataFrame({"x": np.arange(1000.0), "c": ["a", "b"] * 499 + ["once", "z"]})
    reference = build_reference_profile(table, {"x": "numeric", "c": "categorical"})
    current = _window(reference, pd.DataFrame({"x": [2000.0] * 9 + [5.0], "c": ["new"] * 8 + ["a", None]}))
    by_check = {
        change.check: change
        for name in ("x", "c")
        for change in gross_change(reference.summaries[name], current.summaries[name])
    }
    # 9 of 10 beyond the range of 1000 values: (k + 1) C(m, k) / C(n + m, k).
    out = by_check["out_of_range"]
    assert out.share == 0.9 and out.expected == pytest.approx(2 / 1001)
    assert out.p_value == pytest.approx(10 * math.comb(10, 9) / math.comb(1010, 9), rel=1e-9)
    # 8 of 9 present values unseen; the reference has 2 categories seen once ("once", "z"): (2 + 1) / (1000 + 1).
    unseen = by_check["unseen_categories"]
    assert unseen.share == pytest.approx(8 / 9)
    assert unseen.p_value == pytest.approx(stats.binom.sf(7, 9, 3 / 1001), rel=1e-9)
    missing = [c for c in gross_change(reference.summaries["c"], current.summaries["c"]) if c.check == "missing_share"]
    assert missing[0].p_value == pytest.approx(stats.fisher_exact([[0, 1000], [1, 9]]).pvalue)


def test_a_tiny_window_reports_gross_change_and_otherwise_says_insufficient_never_no_drift():
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 10_000), "plan": rng.choice(["a", "b"], 10_000)})
    gross = _report(
        reference,
        pd.DataFrame({"x": np.r_[rng.normal(50, 1, 36), rng.normal(0, 1, 4)], "plan": rng.choice(["a", "b"], 40)}),
    )
    assert gross.drifted_features == ["x"] and gross.verdict == "drift" and gross.insufficient_features == ["plan"]
    x = gross.features[0].result
    assert (x.test, x.statistic, x.verdict) == ("out_of_range", 0.9, "drift")
    quiet = _report(reference, pd.DataFrame({"x": rng.normal(0, 1, 40), "plan": rng.choice(["a", "b"], 40)}))
    assert quiet.verdict == "insufficient_data" and quiet.to_dict()["verdict"] == "insufficient_data"
    assert {f["verdict"] for f in quiet.to_dict()["features"]} == {"insufficient_data"}
    # A single out-of-range value is significant at this size but not gross: no verdict.
    one = _report(reference, pd.DataFrame({"x": np.r_[[40.0], rng.normal(0, 1, 39)], "plan": ["a"] * 40}))
    assert one.features[0].result.verdict == "insufficient_data"


def test_a_change_in_the_share_of_zeros_is_seen_where_the_ks_p_value_misses_it():
    rng = np.random.default_rng(10)

    def counts(n: int, nonzero: float) -> pd.DataFrame:
        return pd.DataFrame({"c": np.where(rng.random(n) < nonzero, rng.geometric(0.2, n), 0).astype(float)})

    reference, current = counts(20_000, 0.05), counts(5000, 0.10)
    report = _report(reference, current, multivariate=False)
    result = report.features[0].result
    assert result.test == "chisquare" and result.drifted
    # Ties make the KS p-value conservative: a smaller change in the share of zeros is seen by the test for
    # discrete data and missed by KS.
    reference, current = counts(20_000, 0.05), counts(5000, 0.065)
    chi = _report(reference, current, multivariate=False).features[0].result
    assert chi.p_value < 0.01 < stats.ks_2samp(reference["c"], current["c"]).pvalue


@pytest.mark.parametrize(("reference_rows", "current_rows"), [(369, 200), (292, 150), (5000, 120)])
def test_values_with_ties_in_a_small_reference_are_flagged_at_most_at_alpha_when_nothing_changed(
    reference_rows, current_rows
):
    # Measurements kept to a few digits repeat (a value held by 1 % of a small reference): the test for discrete
    # data runs on the reference's own quantile bins. Pooling those bins by their totals, as for categories, chose
    # the bins where the window had few values: 18-67 % of such windows were flagged (breast_cancer, diabetes).
    rng = np.random.default_rng(reference_rows)
    runs, flagged = 120, 0
    for _ in range(runs):
        values = np.round(rng.gamma(4, 0.02, reference_rows + current_rows), 3)
        values[rng.random(len(values)) < 0.03] = 0.0  # an atom too
        reference = pd.DataFrame({"m": values[:reference_rows]})
        current = pd.DataFrame({"m": values[reference_rows:]})
        result = _report(reference, current, multivariate=False).features[0].result
        assert result.test == "chisquare"
        flagged += bool(result.p_value <= 0.05)
    # alpha = 0.05: 120 runs flag 6 on average; 13 or more has probability < 1 % (binomial)
    assert flagged <= 12


def test_numeric_groups_are_decided_by_the_reference_alone_and_each_expects_enough_values():
    from driftline.detectors.engine import numeric_groups

    rng = np.random.default_rng(3)
    reference = build_reference_profile(pd.DataFrame({"m": np.round(rng.exponential(1, 400), 1)}))
    summary = reference.summaries["m"]
    grouped = []
    for current_values in (rng.exponential(1, 150), rng.exponential(3, 150)):
        current = _window(reference, pd.DataFrame({"m": np.round(current_values, 1)})).summaries["m"]
        ref_groups, cur_groups = numeric_groups(summary, current)
        assert ref_groups.sum() == 400 and cur_groups.sum() == 150
        assert ref_groups.min() * 150 / 400 >= 5  # MIN_EXPECTED in the smaller side, by the reference's shares
        grouped.append(ref_groups)
    assert np.array_equal(grouped[0], grouped[1])  # a different window does not move the groups
    # At most 150 // 5 = 30 groups (the smaller side decides); values rounded to 0.1 repeat, so fewer: an atom
    # is never split and a group it leaves short joins its neighbour.
    assert len(grouped[0]) == 19


def test_a_joint_shift_with_unchanged_marginals_is_caught_by_the_multivariate_check_only():
    rng = np.random.default_rng(12)

    def data(n: int, rho: float) -> pd.DataFrame:
        a = rng.normal(size=n)
        return pd.DataFrame(
            {"a": a, "b": rho * a + math.sqrt(1 - rho**2) * rng.normal(size=n), "c": rng.normal(size=n)}
        )

    flipped = _report(data(20_000, 0.8), data(5000, -0.8))
    assert flipped.drifted_features == [] and flipped.multivariate is not None
    assert flipped.multivariate.drifted and flipped.verdict == "drift"
    assert flipped.multivariate.effect > 1  # the current rows' error is more than twice the reference's
    same = _report(data(20_000, 0.8), data(5000, 0.8))
    assert same.multivariate is not None and same.multivariate.drifted is False and same.verdict == "no_drift"
    assert same.to_dict()["multivariate"]["test"] == "pca_reconstruction"


def test_an_id_like_categorical_does_not_hide_a_joint_shift_and_an_empty_window_is_not_blamed_on_the_reference():
    rng = np.random.default_rng(21)

    def data(n: int, rho: float) -> pd.DataFrame:
        a = rng.normal(size=n)
        return pd.DataFrame(
            {
                "a": a,
                "b": rho * a + math.sqrt(1 - rho**2) * rng.normal(size=n),
                "user": rng.choice([f"u{i}" for i in range(2000)], n),  # every level far below 1 %
            }
        )

    weaker = _report(data(10_000, 0.8), data(5000, 0.3))
    # Before: the ids' top 10 levels were encoded, the rare rows at them decided the mean error, effect -0.04
    # ('minor') for p = 1e-154.
    assert weaker.multivariate is not None and "user" not in weaker.multivariate.features
    assert weaker.multivariate.drifted and weaker.multivariate.effect > 1
    empty = _report(data(3000, 0.8), data(0, 0.8))
    assert empty.multivariate is not None and empty.multivariate.status == "insufficient_data"
    assert empty.multivariate.message == "the window has no rows"


def test_a_column_missing_from_the_window_is_judged_as_all_missing_not_as_too_few_values():
    rng = np.random.default_rng(22)
    reference = pd.DataFrame({"x": rng.normal(size=3000), "plan": rng.choice(["a", "b", "c"], 3000)})
    current = pd.DataFrame({"x": rng.normal(size=500)})
    report = _report(reference, current, current_columns=["x"], multivariate=False)
    plan = next(f.result for f in report.features if f.feature == "plan")
    assert plan.drifted and report.verdict == "drift" and report.insufficient_features == []


def test_a_profile_without_a_row_sample_reports_the_multivariate_check_unavailable_not_failed():
    rng = np.random.default_rng(13)
    reference = build_reference_profile(pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)}))
    reference.joint = {}  # as a profile written before the row sample existed
    report = compare_profiles(
        reference, _window(reference, pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)}))
    )
    assert report.multivariate is not None and report.multivariate.status == "unavailable"
    assert "rebuild the reference" in report.multivariate.message and report.verdict == "no_drift"


def test_the_config_default_effect_floors_are_the_engine_defaults():
    assert DriftSettings().min_effect == EFFECT_FLOORS


def test_an_id_like_feature_is_compared_by_hash_buckets_without_claiming_every_value_unseen():
    rng = np.random.default_rng(14)
    # Named as a feature (as a monitor config's `features:` does): left alone, it would be left out as an identifier.
    users = pd.DataFrame({"user": [f"u{i}" for i in range(30_000)]})
    reference = build_reference_profile(users, {"user": "categorical"})
    assert reference.summaries["user"].hashed is not None
    fresh = _window(reference, pd.DataFrame({"user": [f"v{i}" for i in range(5000)]}))  # new ids: the normal case
    report = compare_profiles(reference, fresh)
    assert report.features[0].result.test == "chisquare" and report.quality == []
    # All traffic from a handful of ids moves the buckets' mass: found.
    bots = _window(reference, pd.DataFrame({"user": rng.choice(["bot-1", "bot-2", "bot-3"], 5000)}))
    assert compare_profiles(reference, bots).drifted_features == ["user"]


def test_out_of_range_is_judged_only_against_the_range_the_window_counted_it_for():
    rng = np.random.default_rng(15)
    training = build_reference_profile(pd.DataFrame({"x": rng.normal(0, 1, 5000)}))
    # Production moved past the training range long ago; a small window of it against the previous production
    # windows (a rolling reference) is no gross change, though every value is beyond the training maximum.
    production = _window(training, pd.DataFrame({"x": rng.normal(10, 1, 3000)}))
    small = _window(training, pd.DataFrame({"x": rng.normal(10, 1, 30)}))
    assert small.summaries["x"].out_of_range == 30
    assert [c.check for c in gross_change(production.summaries["x"], small.summaries["x"])] == ["missing_share"]
    assert Profile.from_bytes(small.to_bytes()).summaries["x"].range_checked == small.summaries["x"].range_checked
    assert compare_profiles(training, small).drifted_features == ["x"]  # against training it is gross change
