"""Reference and window profiles: compact, mergeable summaries that every drift test runs from.

A reference profile is built once from training data and stored as one small
``.npz`` file next to the model. Its size depends on the number of features,
never on the number of rows:

* numeric feature: ``FINE_BINS`` bins on the reference's quantiles (counts),
  min / max, count / mean / M2 (Welford), missing count, and a bounded uniform
  sample (``SAMPLE_SIZE`` values) for the tests that need raw values;
* categorical feature: exact counts of the ``TOP_K`` most frequent categories,
  the rest pooled in ``OTHER``, missing count, and the same bounded sample.
  While a profile is built, a feature with more than ``CATEGORY_CAP``
  distinct values so far keeps its commonest half and pools the rest, so
  memory stays bounded for id-like features too.

A *window* profile (the current data) uses the reference's bin edges and is
built by streaming Parquet row groups / CSV blocks (:func:`profile_source`), so
memory stays flat however many rows the window has.

Merging (:meth:`Profile.merge`) is exact for counts, bins, missing counts,
min / max and moments, and for categories while no truncation to ``TOP_K``
happens; the merged sample is a uniform sample of the union (statistically,
not bit-for-bit, the same as sampling the union).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.detectors.binning import FastBinner

if TYPE_CHECKING:
    import pandas as pd

FINE_BINS = 1000
SAMPLE_SIZE = 5000
TOP_K = 200
CATEGORY_CAP = 20_000  # distinct categories a summary holds while it is being built (TOP_K once finished)
OTHER = "__other__"
PROFILE_VERSION = 1

FeatureType = Literal["numeric", "categorical"]


class _RowReservoir:
    """A uniform sample of rows of a stream, by smallest random keys; one key per row for all columns."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng = size, rng
        self.keys = np.empty(0)
        self.columns: dict[str, list[np.ndarray]] = {}

    def choose(self, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Indices of this batch's rows that enter the sample, and their keys (None when none do)."""
        keys = self.rng.random(rows)
        chosen = np.flatnonzero(keys < self.keys.max()) if len(self.keys) >= self.size else np.arange(rows)
        return (chosen, keys[chosen]) if chosen.size else None

    def add(self, keys: np.ndarray, values: dict[str, np.ndarray]) -> None:
        self.keys = np.concatenate([self.keys, keys])
        for name, column in values.items():
            self.columns.setdefault(name, []).append(column)
        if len(self.keys) > 4 * self.size:
            self._shrink()

    def _shrink(self) -> None:
        if len(self.keys) <= self.size:
            return
        keep = np.argpartition(self.keys, self.size - 1)[: self.size]
        self.keys = self.keys[keep]
        self.columns = {name: [np.concatenate(parts)[keep]] for name, parts in self.columns.items()}

    def sample(self, name: str) -> np.ndarray | None:
        self._shrink()
        parts = self.columns.get(name)
        return np.concatenate(parts) if parts else None


@dataclass
class NumericSummary:
    inner_edges: np.ndarray
    bin_counts: np.ndarray
    count: int = 0  # non-missing values
    missing: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    sample: np.ndarray = field(default_factory=lambda: np.empty(0))
    non_numeric: int = 0  # values that were text in this source (a type change)
    out_of_range: int = 0  # window profiles only: values outside the reference's [min, max]
    # Σ (x − last edge) above the last edge and Σ (first edge − x) at or below the first: the exact
    # tail areas the Wasserstein distance needs beyond the bins.
    upper_excess: float = 0.0
    lower_excess: float = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def add(
        self, values: np.ndarray, reference_range: tuple[float, float] | None = None, binner: FastBinner | None = None
    ) -> None:
        if values.size == 0:
            return
        indices = (binner or FastBinner(self.inner_edges)).index(values)
        self.bin_counts += np.bincount(indices, minlength=len(self.inner_edges) + 1)
        # The outer bins hold every value beyond the edges, so the tail sums and the out-of-range
        # count (the reference's min and max lie in those bins too) need only their few values.
        top = values[indices == len(self.inner_edges)]
        bottom = values[indices == 0] if len(self.inner_edges) else values[:0]
        if len(self.inner_edges):
            self.upper_excess += float((top - self.inner_edges[-1]).sum())
            self.lower_excess += float((self.inner_edges[0] - bottom).sum())
        if reference_range is not None:
            self.out_of_range += int(
                np.count_nonzero(bottom < reference_range[0]) + np.count_nonzero(top > reference_range[1])
            )
        n, mean = values.size, float(values.mean())
        deviations = values - mean
        self._combine(n, mean, float(np.dot(deviations, deviations)), float(values.min()), float(values.max()))

    def _combine(self, n: int, mean: float, m2: float, minimum: float, maximum: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total
        self.minimum, self.maximum = min(self.minimum, minimum), max(self.maximum, maximum)


@dataclass
class CategoricalSummary:
    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    sample: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def add(self, array: pa.Array) -> None:
        for item in pc.value_counts(array).to_pylist():
            if item["values"] is not None:
                key = str(item["values"])
                self.counts[key] = self.counts.get(key, 0) + item["counts"]
        if len(self.counts) > CATEGORY_CAP:
            # An id-like feature would otherwise keep every distinct value of the stream. Keep the commonest half,
            # pool the rest: the total stays exact, and so do the counts of categories that stay common.
            self.truncate(CATEGORY_CAP // 2)

    def truncate(self, top_k: int = TOP_K) -> None:
        if len(self.counts) <= top_k:
            return
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(ranked[:top_k])
        kept[OTHER] = kept.get(OTHER, 0) + sum(v for _, v in ranked[top_k:])
        self.counts = kept


Summary = NumericSummary | CategoricalSummary


@dataclass
class Profile:
    """Per-feature summaries plus the row count and the schema they were built with."""

    feature_types: dict[str, FeatureType]
    summaries: dict[str, Summary]
    rows: int
    source_types: dict[str, str] = field(default_factory=dict)  # arrow type names seen in the source

    # -- merge ----------------------------------------------------------------------------------
    def merge(self, other: Profile, seed: int = 0) -> Profile:
        if self.feature_types != other.feature_types:
            raise ValueError("profiles must describe the same features with the same types to merge")
        rng = np.random.default_rng(seed)
        summaries: dict[str, Summary] = {}
        for name, mine in self.summaries.items():
            theirs = other.summaries[name]
            sample = _merge_samples(mine.sample, mine.count, theirs.sample, theirs.count, rng=rng)
            if isinstance(mine, NumericSummary):
                assert isinstance(theirs, NumericSummary)
                if not np.array_equal(mine.inner_edges, theirs.inner_edges):
                    raise ValueError(
                        f"feature {name!r}: bin edges differ; build one profile with the other's edges "
                        "(reference_edges=) to merge them"
                    )
                merged = NumericSummary(
                    mine.inner_edges,
                    mine.bin_counts + theirs.bin_counts,
                    mine.count,
                    mine.missing + theirs.missing,
                    mine.mean,
                    mine.m2,
                    mine.minimum,
                    mine.maximum,
                    sample,
                    mine.non_numeric + theirs.non_numeric,
                    mine.out_of_range + theirs.out_of_range,
                    mine.upper_excess + theirs.upper_excess,
                    mine.lower_excess + theirs.lower_excess,
                )
                if theirs.count:
                    merged._combine(theirs.count, theirs.mean, theirs.m2, theirs.minimum, theirs.maximum)
                summaries[name] = merged
            else:
                assert isinstance(theirs, CategoricalSummary)
                counts = dict(mine.counts)
                for key, value in theirs.counts.items():
                    counts[key] = counts.get(key, 0) + value
                merged_categorical = CategoricalSummary(counts, mine.missing + theirs.missing, sample)
                merged_categorical.truncate()
                summaries[name] = merged_categorical
        return Profile(
            dict(self.feature_types), summaries, self.rows + other.rows, {**other.source_types, **self.source_types}
        )

    # -- storage --------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "profile_version": PROFILE_VERSION,
            "rows": self.rows,
            "feature_types": self.feature_types,
            "source_types": self.source_types,
            "features": {},
        }
        for index, (name, summary) in enumerate(self.summaries.items()):
            if isinstance(summary, NumericSummary):
                arrays[f"f{index}_edges"] = summary.inner_edges
                arrays[f"f{index}_bins"] = summary.bin_counts
                arrays[f"f{index}_sample"] = summary.sample.astype(np.float64)
                meta["features"][name] = {
                    "index": index,
                    "count": summary.count,
                    "missing": summary.missing,
                    "mean": summary.mean,
                    "m2": summary.m2,
                    "min": summary.minimum,
                    "max": summary.maximum,
                    "non_numeric": summary.non_numeric,
                    "out_of_range": summary.out_of_range,
                    "upper_excess": summary.upper_excess,
                    "lower_excess": summary.lower_excess,
                }
            else:
                arrays[f"f{index}_sample"] = summary.sample.astype(str)
                meta["features"][name] = {"index": index, "counts": summary.counts, "missing": summary.missing}
        buffer = io.BytesIO()
        arrays["__meta__"] = np.array(json.dumps(meta))
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            if meta.get("profile_version") != PROFILE_VERSION:
                raise ValueError(
                    f"profile version {meta.get('profile_version')!r} is not readable by this driftline "
                    f"(expects {PROFILE_VERSION}); rebuild it with 'driftline profile'"
                )
            summaries: dict[str, Summary] = {}
            for name, info in meta["features"].items():
                index = info["index"]
                if meta["feature_types"][name] == "numeric":
                    summaries[name] = NumericSummary(
                        archive[f"f{index}_edges"],
                        archive[f"f{index}_bins"],
                        info["count"],
                        info["missing"],
                        info["mean"],
                        info["m2"],
                        info["min"],
                        info["max"],
                        archive[f"f{index}_sample"],
                        info.get("non_numeric", 0),
                        info.get("out_of_range", 0),
                        info.get("upper_excess", 0.0),
                        info.get("lower_excess", 0.0),
                    )
                else:
                    summaries[name] = CategoricalSummary(
                        {k: int(v) for k, v in info["counts"].items()},
                        info["missing"],
                        archive[f"f{index}_sample"].astype(object),
                    )
        return cls(meta["feature_types"], summaries, meta["rows"], meta.get("source_types", {}))


def _merge_samples(
    first: np.ndarray,
    first_count: int,
    second: np.ndarray,
    second_count: int,
    *,
    rng: np.random.Generator,
    size: int = SAMPLE_SIZE,
) -> np.ndarray:
    """A uniform sample of the union: draw from each side in proportion to what it stands for."""
    if len(first) + len(second) <= size:
        return np.concatenate([first, second])
    total = first_count + second_count
    take_first = min(len(first), round(size * first_count / total)) if total else 0
    take_second = min(len(second), size - take_first)
    return np.concatenate(
        [rng.choice(first, take_first, replace=False), rng.choice(second, take_second, replace=False)]
    )


# -- building --------------------------------------------------------------------------------------
def infer_feature_types(schema: pa.Schema, exclude: Iterable[str] = ()) -> dict[str, FeatureType]:
    """Integer and floating columns are numeric; everything else (strings, booleans, dictionaries) categorical."""
    excluded = set(exclude)
    return {
        f.name: ("numeric" if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) else "categorical")
        for f in schema
        if f.name not in excluded
    }


def _numeric_values(array: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int, int]:
    """(non-missing float values, missing count, values that were not numbers)."""
    missing = array.null_count
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        values = array.drop_null().to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if np.isfinite(values.sum()):  # one cheap pass; NaN (or inf) makes the sum non-finite
            return values, missing, 0
        nan = np.isnan(values)
        return values[~nan], missing + int(nan.sum()), 0
    import pandas as pd  # only for the rare case of numbers arriving as text

    values = pd.to_numeric(pd.Series(array.drop_null().to_pylist(), dtype=object), errors="coerce").to_numpy(
        dtype=np.float64
    )
    bad = np.isnan(values)
    return values[~bad], missing, int(bad.sum())


def build_reference_profile(
    table: pa.Table | pd.DataFrame,
    feature_types: dict[str, FeatureType] | None = None,
    *,
    exclude: Iterable[str] = (),
    fine_bins: int = FINE_BINS,
    seed: int = 0,
) -> Profile:
    """Profile training data held in memory (bin edges are the exact reference quantiles)."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if table.num_rows == 0:
        raise ValueError("cannot profile an empty reference: it has no rows")
    feature_types = feature_types or infer_feature_types(table.schema, exclude)
    missing_columns = sorted(set(feature_types) - set(table.column_names))
    if missing_columns:
        raise ValueError(f"reference data lacks the columns {missing_columns}; it has {table.column_names}")
    edges = {}
    for name, kind in feature_types.items():
        if kind == "numeric":
            values, _, _ = _numeric_values(table.column(name))
            if values.size == 0:
                raise ValueError(f"reference column {name!r} has no numeric values to profile")
            edges[name] = np.unique(np.quantile(values, np.linspace(0, 1, fine_bins + 1)[1:-1]))
    return profile_batches(iter(table.to_batches(max_chunksize=262_144)), feature_types, edges, seed=seed)


def profile_batches(
    batches: Iterator[pa.RecordBatch],
    feature_types: dict[str, FeatureType],
    edges: dict[str, np.ndarray],
    *,
    seed: int = 0,
    sample_size: int = SAMPLE_SIZE,
    progress: Any = None,
    reference_ranges: dict[str, tuple[float, float]] | None = None,
) -> Profile:
    """Fold record batches into a profile with fixed bin edges; memory is one batch plus the summaries."""
    with ProfileBuilder(
        feature_types, edges, seed=seed, sample_size=sample_size, reference_ranges=reference_ranges
    ) as builder:
        for batch in batches:
            builder.add(batch)
            if progress is not None:
                progress(batch.num_rows)
        return builder.finish()


class ProfileBuilder:
    """A profile folded one record batch at a time (:meth:`add`), then :meth:`finish`-ed; several can be fed
    from one pass over the data (a window and its segments). Memory is the summaries, never the rows.

    Use it as a context manager (or call :meth:`close`): numeric summaries are folded on two threads.
    """

    def __init__(
        self,
        feature_types: dict[str, FeatureType],
        edges: dict[str, np.ndarray],
        *,
        seed: int = 0,
        sample_size: int = SAMPLE_SIZE,
        reference_ranges: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.feature_types = dict(feature_types)
        self.summaries: dict[str, Summary] = {
            name: NumericSummary(edges[name], np.zeros(len(edges[name]) + 1, dtype=np.int64))
            if kind == "numeric"
            else CategoricalSummary()
            for name, kind in feature_types.items()
        }
        self.binners = {name: FastBinner(edges[name]) for name, kind in feature_types.items() if kind == "numeric"}
        self.reservoir = _RowReservoir(sample_size, np.random.default_rng(seed))
        self.reference_ranges = reference_ranges
        self.rows = 0
        self.source_types: dict[str, str] = {}
        # Numeric summaries are independent and numpy releases the GIL on large arrays: fold them on two threads.
        self.workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="driftline-profile")

    @classmethod
    def for_window(cls, reference: Profile, *, seed: int = 1) -> ProfileBuilder:
        """A builder of current data on ``reference``'s bin edges (so every bin and category lines up)."""
        numeric = {name: s for name, s in reference.summaries.items() if isinstance(s, NumericSummary)}
        return cls(
            reference.feature_types,
            {n: s.inner_edges for n, s in numeric.items()},
            seed=seed,
            reference_ranges={n: (s.minimum, s.maximum) for n, s in numeric.items()},
        )

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.rows += batch.num_rows
        _fold_batch(
            batch,
            self.feature_types,
            summaries=self.summaries,
            binners=self.binners,
            reservoir=self.reservoir,
            source_types=self.source_types,
            reference_ranges=self.reference_ranges,
            workers=self.workers,
        )

    def finish(self) -> Profile:
        for name, summary in self.summaries.items():
            sample = self.reservoir.sample(name)
            if sample is not None:
                summary.sample = sample[~_is_missing(sample)]
            if isinstance(summary, CategoricalSummary):
                summary.truncate()
        return Profile(dict(self.feature_types), self.summaries, self.rows, self.source_types)

    def close(self) -> None:
        self.workers.shutdown()

    def __enter__(self) -> ProfileBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fold_batch(
    batch: pa.RecordBatch,
    feature_types: dict[str, FeatureType],
    *,
    summaries: dict[str, Summary],
    binners: dict[str, FastBinner],
    reservoir: _RowReservoir,
    source_types: dict[str, str],
    reference_ranges: dict[str, tuple[float, float]] | None,
    workers: ThreadPoolExecutor,
) -> None:
    chosen = reservoir.choose(batch.num_rows)
    sampled: dict[str, np.ndarray] = {}
    pending = []
    for name in feature_types:
        index = batch.schema.get_field_index(name)
        if index < 0:
            continue
        column = batch.column(index)
        source_types.setdefault(name, str(column.type))
        summary = summaries[name]
        if isinstance(summary, NumericSummary):
            values, missing, non_numeric = _numeric_values(column)
            summary.missing += missing
            summary.non_numeric += non_numeric
            pending.append(workers.submit(summary.add, values, (reference_ranges or {}).get(name), binners[name]))
            if chosen is not None:
                sampled[name] = (
                    _numeric_values(column.take(pa.array(chosen[0])))[0]
                    if column.null_count or non_numeric
                    else column.take(pa.array(chosen[0])).to_numpy(zero_copy_only=False).astype(np.float64)
                )
        else:
            summary.missing += column.null_count
            summary.add(column)
            if chosen is not None:
                # to_pylist, not to_numpy: arrow's string-to-numpy path imports pandas (~50 MB, ~1 s cold)
                sampled[name] = np.array(column.take(pa.array(chosen[0])).cast(pa.string()).to_pylist(), dtype=object)
    for future in pending:
        future.result()
    if chosen is not None:
        reservoir.add(chosen[1], _align_missing(sampled, len(chosen[0])))


def _align_missing(sampled: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Give every column one slot per sampled row (NaN / None where a value was missing) so rows stay aligned."""
    aligned = {}
    for name, values in sampled.items():
        if len(values) == rows:
            aligned[name] = values
        else:  # nulls were dropped: pad; which rows they were does not matter for a uniform sample of values
            pad = np.full(rows - len(values), np.nan if values.dtype.kind == "f" else None, dtype=values.dtype)
            aligned[name] = np.concatenate([values, pad])
    return aligned


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.asarray(np.isnan(values), dtype=bool)
    return np.array([v is None for v in values], dtype=bool)


def window_profile(
    reference: Profile, batches: Iterator[pa.RecordBatch], *, seed: int = 1, progress: Any = None
) -> Profile:
    """Profile current data on the reference's bin edges (so every bin and category lines up)."""
    with ProfileBuilder.for_window(reference, seed=seed) as builder:
        for batch in batches:
            builder.add(batch)
            if progress is not None:
                progress(batch.num_rows)
        return builder.finish()
