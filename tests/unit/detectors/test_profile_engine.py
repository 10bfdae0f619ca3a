from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from driftline.detectors import Profile, build_reference_profile, compare_profiles, window_profile
from driftline.detectors.profile import OTHER
from driftline.detectors.sources import open_batches


def frame(rng: np.random.Generator, n: int, *, shift: float = 0.0, plan_p=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3 + shift, 0.5, n),
            "age": rng.normal(40, 10, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=plan_p),
        }
    )


def window(reference: Profile, data: pd.DataFrame) -> Profile:
    return window_profile(
        reference, iter(pa.Table.from_pandas(data, preserve_index=False).to_batches(max_chunksize=10_000))
    )


def test_profile_size_does_not_grow_with_rows():
    rng = np.random.default_rng(1)
    small = len(build_reference_profile(frame(rng, 20_000)).to_bytes())
    large = len(build_reference_profile(frame(rng, 400_000)).to_bytes())
    assert large < 1.1 * small and large < 300_000


def test_merge_equals_the_profile_of_the_union_for_mergeable_statistics():
    rng = np.random.default_rng(2)
    reference = build_reference_profile(frame(rng, 50_000))
    first, second = frame(rng, 30_000, shift=0.1), frame(rng, 45_000)
    first.loc[::7, "age"] = np.nan
    merged = window(reference, first).merge(window(reference, second))
    union = window(reference, pd.concat([first, second], ignore_index=True))
    assert merged.rows == union.rows == 75_000
    for name in ("amount", "age"):
        m, u = merged.summaries[name], union.summaries[name]
        assert np.array_equal(m.bin_counts, u.bin_counts)
        assert (m.count, m.missing, m.minimum, m.maximum, m.out_of_range) == (
            u.count,
            u.missing,
            u.minimum,
            u.maximum,
            u.out_of_range,
        )
        assert m.mean == pytest.approx(u.mean, rel=1e-12) and m.std == pytest.approx(u.std, rel=1e-12)
        assert len(m.sample) == 5000
    assert merged.summaries["plan"].counts == union.summaries["plan"].counts
    assert Profile.from_bytes(merged.to_bytes()).summaries["age"].missing == union.summaries["age"].missing


def test_categories_beyond_top_k_pool_into_other():
    data = pd.DataFrame({"city": [f"c{i % 500}" for i in range(10_000)]})
    profile = build_reference_profile(data)
    counts = profile.summaries["city"].counts
    assert len(counts) == 201 and counts[OTHER] == 300 * 20 and sum(counts.values()) == 10_000


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
    tiny = compare_profiles(reference, window(reference, frame(rng, 8, shift=3.0)))
    assert tiny.drifted_features == [] and sorted(tiny.insufficient_features) == ["age", "amount", "plan"]
    assert all(f.result.drifted is None for f in tiny.features)


def test_quality_checks():
    rng = np.random.default_rng(6)
    reference = build_reference_profile(frame(rng, 10_000))
    current = frame(rng, 5000)
    current.loc[:999, "age"] = np.nan  # 20 % missing
    current.loc[:299, "amount"] = 1e6  # 6 % out of range
    current.loc[:499, "plan"] = "enterprise"  # 10 % unseen
    current["extra"] = 1
    profile = window(reference, current)
    report = compare_profiles(reference, profile, current_columns=list(current.columns))
    found = {(q.check, q.feature) for q in report.quality}
    assert found == {
        ("missing_rate", "age"),
        ("out_of_range", "amount"),
        ("unseen_categories", "plan"),
        ("extra_column", "extra"),
    }
    as_text = current.drop(columns=["age", "extra"]).assign(
        amount=current["amount"].astype(str).where(current.index % 2 == 0, "n/a")
    )
    text_report = compare_profiles(reference, window(reference, as_text), current_columns=list(as_text.columns))
    checks = {(q.check, q.feature) for q in text_report.quality}
    assert ("missing_column", "age") in checks and ("type_change", "amount") in checks


def test_window_profile_streams_parquet_row_groups(tmp_path):
    rng = np.random.default_rng(7)
    reference = build_reference_profile(frame(rng, 20_000))
    data = frame(rng, 120_000)
    path = tmp_path / "window.parquet"
    pq.write_table(pa.Table.from_pandas(data), path, row_group_size=10_000)
    seen = []
    with open_batches(str(path), columns=list(reference.feature_types)) as (_, total, batches):
        streamed = window_profile(reference, batches, progress=seen.append)
    assert total == 120_000 and sum(seen) == 120_000
    whole = window(reference, data)
    assert np.array_equal(streamed.summaries["amount"].bin_counts, whole.summaries["amount"].bin_counts)


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
        f"false-alarm rate: {alarms}/{trials} = {alarms / trials:.4f} (alpha {alpha}; P(rate > alpha) test p = {excess:.3f})"
    )
    assert excess > 0.01
