from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftline.detectors import build_reference_profile, compare_profiles
from tests.unit.detectors.data import frame, window


def test_binned_ks_and_wasserstein_are_within_their_documented_error():
    rng = np.random.default_rng(3)
    reference_data, current_data = frame(rng, 100_000), frame(rng, 200_000, shift=0.05)
    reference = build_reference_profile(reference_data)
    report = compare_profiles(reference, window(reference, current_data), tests={"amount": "ks", "age": "wasserstein"})
    results = {f.feature: f.result for f in report.features}
    exact_ks = stats.ks_2samp(reference_data["amount"], current_data["amount"]).statistic
    bound = float(results["amount"].approximation.rsplit("≤ ", 1)[1])
    assert abs(results["amount"].statistic - exact_ks) <= bound <= 0.01
    exact_w = stats.wasserstein_distance(reference_data["age"], current_data["age"]) / reference_data["age"].std(ddof=0)
    assert abs(results["age"].statistic - exact_w) <= 0.01
    # A heavy right tail that grows (log-normal spread × 1.5): the tails are taken from exact excess sums.
    spread = pd.DataFrame(
        {
            "amount": np.exp(np.log(current_data["amount"]) * 1.5 - 1.5),
            "age": current_data["age"],
            "plan": current_data["plan"],
        }
    )
    tail = compare_profiles(reference, window(reference, spread), tests={"amount": "wasserstein"}).features[0].result
    exact_tail = stats.wasserstein_distance(reference_data["amount"], spread["amount"]) / reference_data["amount"].std(
        ddof=0
    )
    assert abs(tail.statistic - exact_tail) <= 0.005


def test_small_windows_run_exactly_on_raw_values():
    rng = np.random.default_rng(4)
    reference_data, current_data = frame(rng, 3000), frame(rng, 400, shift=0.2)
    reference = build_reference_profile(reference_data)
    report = compare_profiles(reference, window(reference, current_data), correction="none")
    amount = next(f.result for f in report.features if f.feature == "amount")
    expected = stats.ks_2samp(reference_data["amount"], current_data["amount"])
    assert amount.test == "ks" and amount.approximation is None
    assert (amount.statistic, amount.p_value) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)


def test_report_flags_the_shifted_features_only_and_refuses_tiny_windows():
    rng = np.random.default_rng(5)
    reference = build_reference_profile(frame(rng, 50_000))
    drifted = compare_profiles(reference, window(reference, frame(rng, 80_000, shift=0.3, plan_p=(0.2, 0.3, 0.5))))
    assert sorted(drifted.drifted_features) == ["amount", "plan"]
    assert [f["feature"] for f in drifted.to_dict()["features"]][-1] == "age"  # sorted by severity
    # 8 rows: no test of shape, but every amount lies beyond the reference's maximum, a gross change found at any size.
    tiny = compare_profiles(reference, window(reference, frame(rng, 8, shift=3.0)))
    assert tiny.drifted_features == ["amount"] and sorted(tiny.insufficient_features) == ["age", "plan"]
    amount = next(f.result for f in tiny.features if f.feature == "amount")
    assert (amount.test, amount.statistic, amount.verdict) == ("out_of_range", 1.0, "drift")
    assert all(f.result.drifted is None for f in tiny.features if f.feature != "amount")
    quiet = compare_profiles(reference, window(reference, frame(rng, 8)))
    assert quiet.drifted_features == [] and quiet.verdict == "insufficient_data"
    assert quiet.to_dict()["verdict"] == "insufficient_data"


def test_false_alarm_rate_under_no_drift_is_within_alpha():
    """Reference vs a sample of the same distribution, 400 seeded trials, 8 features, BH at α = 0.05.

    Under the complete null BH's chance of any alarm *equals* α (it controls
    FDR = FWER = α), so a finite run lands above or below α by sampling error
    alone (2000 trials measured 0.053 ± 0.005). The test therefore asks a
    one-sided binomial test whether the rate exceeds α; uncorrected testing
    (≈ 0.34 here) or a miscalibrated test fails it.
    """
    trials, alpha, alarms = 400, 0.05, 0
    for seed in range(trials):
        rng = np.random.default_rng(10_000 + seed)
        reference = build_reference_profile(
            pd.concat([frame(rng, 600), pd.DataFrame({f"x{i}": rng.normal(size=600) for i in range(5)})], axis=1)
        )
        current = pd.concat([frame(rng, 300), pd.DataFrame({f"x{i}": rng.normal(size=300) for i in range(5)})], axis=1)
        report = compare_profiles(reference, window(reference, current), alpha=alpha)
        alarms += bool(report.drifted_features)
    excess = stats.binomtest(alarms, trials, alpha, alternative="greater").pvalue
    print(
        f"false-alarm rate: {alarms}/{trials} = {alarms / trials:.4f} "
        f"(alpha {alpha}; P(rate > alpha) test p = {excess:.3f})"
    )
    assert excess > 0.01


def test_a_test_whose_profile_data_is_missing_is_refused_by_name():
    rng = np.random.default_rng(5)
    reference = build_reference_profile(frame(rng, 3000))
    current = window(reference, frame(rng, 3000))
    reference.summaries["age"].sample = np.empty(0)  # as in a profile stored without its row sample
    with pytest.raises(ValueError) as error:
        compare_profiles(reference, current, tests={"age": "mann_whitney"})
    assert str(error.value).startswith(
        "test 'mann_whitney' on feature 'age' needs the profile's sample, which the reference profile does not hold"
    )
    # Tests that need only the counts still run on the same profiles.
    report = compare_profiles(reference, current, tests={"age": "psi"})
    assert [f.result.test for f in report.features if f.feature == "age"] == ["psi"]


def test_a_bad_distance_threshold_is_refused_with_the_feature_even_for_a_tiny_window():
    rng = np.random.default_rng(6)
    reference = build_reference_profile(frame(rng, 500))
    tiny = window(reference, frame(rng, 5))
    with pytest.raises(ValueError, match=r"^feature 'age': psi: a distance threshold must be a positive finite"):
        compare_profiles(reference, tiny, tests={"age": "psi"}, thresholds={"age": -1.0})


def test_binned_ks_and_wasserstein_run_on_profiles_without_a_sample():
    rng = np.random.default_rng(7)
    reference = build_reference_profile(frame(rng, 20_000))
    current = window(reference, frame(rng, 20_000, shift=0.2))
    reference.summaries["amount"].sample = np.empty(0)
    report = compare_profiles(reference, current, tests={"amount": "ks"})
    [amount] = [f for f in report.features if f.feature == "amount"]
    assert amount.result.drifted is True and (amount.result.approximation or "").startswith("binned")


def test_a_threshold_for_a_configured_p_value_test_is_refused_not_ignored():
    rng = np.random.default_rng(8)
    reference = build_reference_profile(frame(rng, 500))
    current = window(reference, frame(rng, 500))
    with pytest.raises(ValueError, match=r"^feature 'age': a threshold of 0\.2 was given, but its test 'ks' is judged"):
        compare_profiles(reference, current, tests={"age": "ks"}, thresholds={"age": 0.2})
