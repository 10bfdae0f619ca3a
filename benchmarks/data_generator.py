"""Deterministic benchmark data: reference 100k rows, current 1M rows, 26 columns, 7 truly shifted.

Columns: ``num_00`` … ``num_19`` (numeric, several distribution shapes),
``cat_0`` … ``cat_4`` (categorical), ``prediction`` (a model score).
Shifted in the current data (and only these): ``num_00`` (mean +0.3 sd),
``num_01`` (spread ×1.5), ``num_02`` (mean +0.2 sd), ``num_03`` (10 % of
values move 3 sd up), ``cat_0`` (category mix reversed), ``cat_1`` (a
category's share grows from 10 % to 40 %), ``prediction`` (scores move up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GENERATOR_VERSION = 1
SHIFTED = ["num_00", "num_01", "num_02", "num_03", "cat_0", "cat_1", "prediction"]
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
COLUMNS = [*NUMERIC, *CATEGORICAL, "prediction"]
CATEGORY_LEVELS = {
    "cat_0": (["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1]),
    "cat_1": (["x", "y", "z"], [0.6, 0.3, 0.1]),
    "cat_2": (["red", "green", "blue", "black", "white"], [0.3, 0.25, 0.2, 0.15, 0.1]),
    "cat_3": ([f"city_{i}" for i in range(40)], None),
    "cat_4": (["yes", "no"], [0.3, 0.7]),
}


def _numeric(rng: np.random.Generator, index: int, n: int, shifted: bool) -> np.ndarray:
    shape = index % 5
    if shape == 0:
        values = rng.normal(50, 10, n)
        scale = 10.0
    elif shape == 1:
        values = rng.lognormal(2, 0.6, n)
        scale = float(np.exp(2 + 0.18) * np.sqrt(np.exp(0.36) - 1))
    elif shape == 2:
        values = rng.uniform(0, 100, n)
        scale = 100 / np.sqrt(12)
    elif shape == 3:
        values = rng.exponential(5, n)
        scale = 5.0
    else:
        values = rng.poisson(20, n).astype(np.float64)
        scale = float(np.sqrt(20))
    if shifted:
        if index == 0:
            values = values + 0.3 * scale
        elif index == 1:
            values = values.mean() + (values - values.mean()) * 1.5
        elif index == 2:
            values = values + 0.2 * scale
        elif index == 3:
            values = np.where(rng.random(n) < 0.1, values + 3 * scale, values)
    return values


def _categorical(rng: np.random.Generator, name: str, n: int, shifted: bool) -> np.ndarray:
    levels, probabilities = CATEGORY_LEVELS[name]
    if shifted and name == "cat_0":
        probabilities = probabilities[::-1]
    if shifted and name == "cat_1":
        probabilities = [0.4, 0.2, 0.4]
    return rng.choice(np.array(levels), n, p=probabilities)


def make_table(n: int, seed: int, shifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {name: _numeric(rng, i, n, shifted) for i, name in enumerate(NUMERIC)}
    for name in CATEGORICAL:
        columns[name] = _categorical(rng, name, n, shifted)
    logits = rng.normal(-0.5 + (0.6 if shifted else 0.0), 1.0, n)
    columns["prediction"] = 1 / (1 + np.exp(-logits))
    return pa.table(columns)


def ensure_data(folder: Path, reference_rows: int = 100_000, current_rows: int = 1_000_000) -> tuple[Path, Path]:
    """Write the two Parquet files once (regenerated when sizes or the generator change)."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"v{GENERATOR_VERSION}-{reference_rows}-{current_rows}"
    reference, current = folder / f"reference-{tag}.parquet", folder / f"current-{tag}.parquet"
    if not reference.exists():
        pq.write_table(make_table(reference_rows, 1, shifted=False), reference, row_group_size=131_072)
    if not current.exists():
        pq.write_table(make_table(current_rows, 2, shifted=True), current, row_group_size=131_072)
    return reference, current
