from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from driftline.detectors import Profile, build_reference_profile, compare_profiles, window_profile


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
