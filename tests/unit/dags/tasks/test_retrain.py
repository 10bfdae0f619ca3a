from __future__ import annotations

from driftline.dags.tasks.retrain import _is_holdout


def test_holdout_split_is_deterministic_and_about_a_fifth():
    ids = [f"req-{i}" for i in range(10_000)]
    first = [_is_holdout(r) for r in ids]
    assert first == [_is_holdout(r) for r in ids]
    assert sum(first) == 1992  # 52/256 = 20.3 % expected; this exact count pins the hash rule
    assert [i for i in range(12) if _is_holdout(f"req-{i}")] == [7]
