from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.detectors import Profile, build_reference_profile, window_profile
from driftline.detectors.profile import OTHER
from driftline.detectors.sources import open_batches
from tests.unit.detectors.data import frame, window


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


def test_hundreds_of_categories_are_kept_exactly_and_a_window_counts_every_reference_category():
    data = pd.DataFrame({"city": [f"c{i % 500}" for i in range(10_000)]})
    profile = build_reference_profile(data)
    counts = profile.summaries["city"].counts
    assert len(counts) == 500 and set(counts.values()) == {20} and OTHER not in counts
    # A window where most reference cities are rare: each keeps its exact count, none is pooled.
    current = window(profile, pd.DataFrame({"city": ["c0"] * 3000 + [f"c{i}" for i in range(1, 500)] + ["new"]}))
    got = current.summaries["city"].counts
    assert got["c0"] == 3000 and got["c499"] == 1 and got["new"] == 1 and len(got) == 501


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


def test_a_categorical_feature_with_more_values_than_the_cap_is_hashed_exactly_and_stays_bounded():
    from driftline.detectors.profile import CATEGORY_CAP, HASH_BUCKETS, CategoricalSummary, hash_buckets

    summary = CategoricalSummary()
    for start in range(0, 30_000, 10_000):
        summary.add(pa.array([f"id-{i}" for i in range(start, start + 10_000)] + ["common"] * 500))
        assert len(summary.counts) <= CATEGORY_CAP
    assert summary.hashed is not None and len(summary.hashed) == HASH_BUCKETS
    assert summary.count == 31_500 and summary.counts == {}  # nothing lost
    common = int(hash_buckets(["common"])[0])
    ids = np.bincount(hash_buckets([f"id-{i}" for i in range(30_000)]), minlength=HASH_BUCKETS)
    assert summary.hashed[common] == ids[common] + 1_500  # each bucket holds exactly its values' counts
    assert np.array_equal(np.delete(summary.hashed, common), np.delete(ids, common))
    # The hash is stable: the same buckets in every process and release (BLAKE2b).
    assert hash_buckets(["common", "id-7"]).tolist() == [
        int.from_bytes(hashlib.blake2b(b"common", digest_size=8).digest(), "little") % HASH_BUCKETS,
        int.from_bytes(hashlib.blake2b(b"id-7", digest_size=8).digest(), "little") % HASH_BUCKETS,
    ]
