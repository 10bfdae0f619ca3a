from __future__ import annotations

import hashlib

from driftline.dags.tasks.retrain import _is_holdout


def test_holdout_split_is_deterministic_and_about_a_fifth():
    ids = [f"req-{i}" for i in range(10_000)]
    first = [_is_holdout(r) for r in ids]
    assert first == [_is_holdout(r) for r in ids]
    assert sum(first) == sum(1 for r in ids if hashlib.sha256(r.encode()).digest()[0] < 52)
    assert 0.18 < sum(first) / len(ids) < 0.23
