"""Building profiles from data: a reference profile from a training table (:func:`build_reference_profile`), a
window profile on a reference's bins and categories from record batches (:class:`ProfileBuilder`,
:func:`window_profile`), batch by batch so that memory stays flat whatever the number of rows. What a profile
holds and how profiles merge: :mod:`.profile`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from driftline.detectors.binning import FastBinner
from driftline.detectors.identifiers import identifier_reason

if TYPE_CHECKING:
    import pandas as pd

from driftline.detectors.profile import (
    FINE_BINS,
    SAMPLE_SIZE,
    CategoricalSummary,
    FeatureType,
    NumericSummary,
    Profile,
    RowReservoir,
    Summary,
    indices,
    to_numpy,
)


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
        values = to_numpy(array.drop_null()).astype(np.float64, copy=False)
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
    label: str | None = None,
    fine_bins: int = FINE_BINS,
    seed: int = 0,
) -> Profile:
    """Profile training data held in memory (bin edges are the exact reference quantiles).

    Without ``feature_types`` every column is a feature but ``exclude``, the ``label`` column and the columns that
    identify rows (:mod:`.identifiers`); the profile names each column left out and why."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if table.num_rows == 0:
        raise ValueError("cannot profile an empty reference: it has no rows")
    excluded = {name: "left out as asked" for name in exclude if name in table.column_names}
    if label is not None and label in table.column_names:
        excluded[label] = "the label column (what the model predicts, not an input)"
    if not feature_types:
        feature_types = infer_feature_types(table.schema, excluded)
        for name in list(feature_types):
            reason = identifier_reason(name, table.column(name))
            if reason is not None:
                excluded[name] = reason
                del feature_types[name]
        if not feature_types:
            raise ValueError(
                f"no column of the reference is left to test: {', '.join(f'{k} ({v})' for k, v in excluded.items())}"
                "; name the features in the monitor config's 'features:'"
            )
    else:  # the user's own list; what is excluded stays out of it all the same
        feature_types = {name: kind for name, kind in feature_types.items() if name not in excluded}
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
    profile = profile_batches(iter(table.to_batches(max_chunksize=262_144)), feature_types, edges, seed=seed)
    return replace(profile, excluded=excluded)


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
        categories: dict[str, CategoricalSummary] | None = None,
    ) -> None:
        self.feature_types = dict(feature_types)
        self.summaries: dict[str, Summary] = {
            name: NumericSummary(edges[name], np.zeros(len(edges[name]) + 1, dtype=np.int64))
            if kind == "numeric"
            else _window_categories((categories or {}).get(name))
            for name, kind in feature_types.items()
        }
        self.binners = {name: FastBinner(edges[name]) for name, kind in feature_types.items() if kind == "numeric"}
        self.reservoir = RowReservoir(sample_size, np.random.default_rng(seed))
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
            categories={n: s for n, s in reference.summaries.items() if isinstance(s, CategoricalSummary)},
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
        joint: dict[str, np.ndarray] = {}
        for name, summary in self.summaries.items():
            sample = self.reservoir.sample(name)
            if sample is not None:
                summary.sample = sample[~_is_missing(sample)]
                joint[name] = sample
        rows = len(self.reservoir.keys)
        # Only columns present in every batch line up row for row.
        joint = {name: values for name, values in joint.items() if len(values) == rows}
        return Profile(dict(self.feature_types), self.summaries, self.rows, self.source_types, joint)

    def close(self) -> None:
        self.workers.shutdown()

    def __enter__(self) -> ProfileBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _window_categories(reference: CategoricalSummary | None) -> CategoricalSummary:
    """A window's empty summary of a reference feature: hashed like it, or keeping its categories exact."""
    if reference is None:
        return CategoricalSummary()
    if reference.hashed is not None:
        return CategoricalSummary(hashed=np.zeros(len(reference.hashed), dtype=np.int64))
    return CategoricalSummary(keep=frozenset(reference.counts))


def _fold_batch(
    batch: pa.RecordBatch,
    feature_types: dict[str, FeatureType],
    *,
    summaries: dict[str, Summary],
    binners: dict[str, FastBinner],
    reservoir: RowReservoir,
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
                sampled[name] = _aligned_numbers(column.take(indices(chosen[0])))
        else:
            summary.missing += column.null_count
            summary.add(column)
            if chosen is not None:
                # to_pylist, not to_numpy: arrow's string-to-numpy path imports pandas (~50 MB, ~1 s cold)
                # spelled as the category counts spell them (str of the value: True, not Arrow's cast "true")
                taken = column.take(indices(chosen[0])).to_pylist()
                sampled[name] = np.array([None if v is None else str(v) for v in taken], dtype=object)
    for future in pending:
        future.result()
    if chosen is not None:
        reservoir.add(chosen[1], _align_missing(sampled, len(chosen[0])))


def _aligned_numbers(array: pa.Array) -> np.ndarray:
    """One float per row, NaN where a value is missing or not a number (rows stay aligned for the row sample)."""
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        return np.asarray(to_numpy(array.cast(pa.float64())), dtype=np.float64)  # NaN where a value is missing
    import pandas as pd  # only for the rare case of numbers arriving as text

    return np.asarray(pd.to_numeric(pd.Series(array.to_pylist(), dtype=object), errors="coerce"), dtype=np.float64)


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
