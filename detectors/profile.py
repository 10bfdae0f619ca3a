"""Reference and window profiles: compact, mergeable summaries that every drift test runs from.

A reference profile is built once from training data and stored as one small
``.npz`` file next to the model. Its size depends on the number of features,
never on the number of rows:

* numeric feature: ``FINE_BINS`` bins on the reference's quantiles (counts),
  min / max, count / mean / M2 (Welford), missing count, and a bounded uniform
  sample (``SAMPLE_SIZE`` values) for the tests that need raw values;
* categorical feature: exact counts of every category, missing count, and the
  same bounded sample. A feature with more than ``CATEGORY_CAP`` distinct
  values (id-like) is kept as ``HASH_BUCKETS`` counts of a stable hash of its
  values instead: a partition fixed before any data is seen, so the drift
  tests on it stay valid (keeping the commonest values would not be: the
  reference's commonest values are commoner in the reference than in any
  window, by selection alone), and memory stays bounded;
* a row sample (``joint``): up to ``SAMPLE_SIZE`` whole rows, one random key per
  row for every column, for the multivariate check.

A *window* profile (the current data) uses the reference's bin edges and
categories (every reference category counted exactly; values the reference
never had counted too, the rarest pooled in ``OTHER`` past the cap) and is
built by streaming Parquet row groups / CSV blocks (:mod:`.profiling` builds both
kinds), so memory stays flat however many rows the window has.

Merging (:meth:`Profile.merge`) is exact for counts, bins, missing counts,
min / max and moments, and for categories (hashed once the union passes the
cap); the merged sample is a uniform sample of the union (statistically,
not bit-for-bit, the same as sampling the union).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.detectors.binning import FastBinner

if TYPE_CHECKING:
    pass

# Arrow arrays to and from numpy without pyarrow's to_numpy / pa.array, which import pandas on first use (pyarrow
# 26: ~50 MB and ~0.4 s a process that never needed it; a window profile read and counted only Arrow and numpy).
_NUMPY_TYPES = {
    pa.float64(): np.float64,
    pa.float32(): np.float32,
    pa.float16(): np.float16,
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.int16(): np.int16,
    pa.int8(): np.int8,
    pa.uint64(): np.uint64,
    pa.uint32(): np.uint32,
    pa.uint16(): np.uint16,
    pa.uint8(): np.uint8,
}


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean array's values as numpy, read-only when shared with Arrow's buffer; a numeric array
    with nulls as ``float64`` with NaN where a value is missing (other types: Arrow's own conversion)."""
    if isinstance(array, pa.ChunkedArray):
        parts = [to_numpy(chunk) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=_NUMPY_TYPES.get(array.type, np.float64))
    if pa.types.is_boolean(array.type) and not array.null_count:
        return to_numpy(pc.cast(array, pa.uint8())).astype(bool)
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None:
        return np.asarray(array.to_numpy(zero_copy_only=False))
    width = np.dtype(dtype).itemsize
    values = np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * width)
    if not array.null_count:
        return values
    # Nulls: the validity bitmap read here too (pc.fill_null with a Python scalar imports pandas as well).
    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    valid = np.unpackbits(bits, bitorder="little")[array.offset : array.offset + len(array)].astype(bool)
    return np.where(valid, values.astype(np.float64), np.nan)


def indices(positions: np.ndarray) -> pa.Array:
    """Row positions as an Arrow int64 array (for ``take``)."""
    values = np.ascontiguousarray(positions, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=([^\]]+))?\]")
FINE_BINS = 1000
SAMPLE_SIZE = 5000
CATEGORY_CAP = 20_000  # distinct categories a summary holds exactly; beyond, it is hashed into HASH_BUCKETS
HASH_BUCKETS = 1024
OTHER = "__other__"  # a window's unseen values beyond the cap (and, in profiles of before 2026-12, pooled categories)
PROFILE_VERSION = 1

FeatureType = Literal["numeric", "categorical"]


class RowReservoir:
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
    # The [min, max] that out_of_range counts against (a window's reference's); None: not counted.
    range_checked: tuple[float, float] | None = None

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
            self.range_checked = (float(reference_range[0]), float(reference_range[1]))
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


def hash_buckets(keys: Iterable[str], buckets: int = HASH_BUCKETS) -> np.ndarray:
    """The bucket of each key: a stable hash (BLAKE2b, the same in every process and release) modulo ``buckets``."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % buckets for key in keys],
        dtype=np.int64,
    )


@dataclass
class CategoricalSummary:
    """Exact category counts, or (``hashed`` is set) counts per hash bucket for an id-like feature.

    ``keep`` is set on a window's summary: the reference's categories, whose counts always stay exact; values the
    reference never had are counted too, and past ``CATEGORY_CAP`` of them the rarest are pooled in ``OTHER``.
    """

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    sample: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    hashed: np.ndarray | None = None
    keep: frozenset[str] | None = field(default=None, repr=False, compare=False)

    @property
    def count(self) -> int:
        return int(self.hashed.sum()) if self.hashed is not None else sum(self.counts.values())

    @property
    def n_categories(self) -> int:
        return int(np.count_nonzero(self.hashed)) if self.hashed is not None else len(self.counts)

    def add(self, array: pa.Array) -> None:
        distinct = pc.value_counts(array)
        values, counts = distinct.field("values"), to_numpy(distinct.field("counts"))
        if values.null_count:
            present = values.is_valid()
            values, counts = values.filter(present), counts[to_numpy(present)]
        keys = [str(v) for v in values.to_pylist()]
        if self.hashed is not None:
            self.hashed += np.bincount(hash_buckets(keys), weights=counts, minlength=len(self.hashed)).astype(np.int64)
            return
        for key, count in zip(keys, counts.tolist(), strict=True):
            self.counts[key] = self.counts.get(key, 0) + count
        self.bound()

    def bound(self) -> None:
        """Past ``CATEGORY_CAP`` categories: a reference's summary is hashed; a window's pools its rarest unseen
        values in ``OTHER`` (the reference's categories keep their exact counts)."""
        if len(self.counts) <= CATEGORY_CAP:
            return
        if self.keep is None:
            self.to_hashed()
            return
        unseen = sorted(((k, v) for k, v in self.counts.items() if k not in self.keep), key=lambda kv: (-kv[1], kv[0]))
        kept = {k: v for k, v in self.counts.items() if k in self.keep}
        kept.update(unseen[: CATEGORY_CAP // 2])
        kept[OTHER] = kept.get(OTHER, 0) + sum(v for _, v in unseen[CATEGORY_CAP // 2 :])
        self.counts = kept

    def to_hashed(self, buckets: int = HASH_BUCKETS) -> None:
        if self.hashed is not None:
            return
        keys = list(self.counts)
        weights = np.array([self.counts[k] for k in keys], dtype=np.float64)
        self.hashed = np.bincount(hash_buckets(keys, buckets), weights=weights, minlength=buckets).astype(np.int64)
        self.counts = {}


Summary = NumericSummary | CategoricalSummary


@dataclass
class Profile:
    """Per-feature summaries plus the row count and the schema they were built with."""

    feature_types: dict[str, FeatureType]
    summaries: dict[str, Summary]
    rows: int
    source_types: dict[str, str] = field(default_factory=dict)  # arrow type names seen in the source
    # Up to SAMPLE_SIZE whole rows (feature -> values, row-aligned; NaN / None where a value was missing), for the
    # multivariate check. Empty for a profile written before it existed.
    joint: dict[str, np.ndarray] = field(default_factory=dict)
    # Columns of the source left out of the features, with why (an identifier, the label, asked for): named in
    # every report made against this profile (detectors/identifiers.py).
    excluded: dict[str, str] = field(default_factory=dict)

    def arrow_types(self) -> dict[str, pa.DataType]:
        """How a text source (CSV) is read for this profile: numeric features as ``float64``; categorical ones as
        the reference's source had them when that was text or booleans (so ``true`` in a CSV counts as the
        reference's ``True``), others (timestamps, dates) as the CSV reader infers them."""
        types: dict[str, pa.DataType] = {}
        for name, kind in self.feature_types.items():
            source = self.source_types.get(name, "string")
            if kind == "numeric":
                types[name] = pa.float64()
            elif source == "bool":
                types[name] = pa.bool_()
            elif stamp := _TIMESTAMP.fullmatch(source):
                types[name] = pa.timestamp(stamp.group(1), tz=stamp.group(2))
            elif source in ("date32[day]", "date64[ms]"):
                types[name] = pa.date32() if source.startswith("date32") else pa.date64()
            elif source in ("string", "large_string") or source.startswith(
                ("dictionary<values=string", "dictionary<values=large_string")
            ):
                types[name] = pa.string()
        return types

    def without(self, names: Iterable[str]) -> Profile:
        """This profile with the features ``names`` left out (named in ``excluded``: asked for)."""
        drop = set(names) & set(self.feature_types)
        return replace(
            self,
            feature_types={k: v for k, v in self.feature_types.items() if k not in drop},
            summaries={k: v for k, v in self.summaries.items() if k not in drop},
            source_types={k: v for k, v in self.source_types.items() if k not in drop},
            joint={k: v for k, v in self.joint.items() if k not in drop},
            excluded={**self.excluded, **dict.fromkeys(sorted(drop), "left out as asked")},
        )

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
                    mine.range_checked if mine.range_checked == theirs.range_checked else None,
                )
                if theirs.count:
                    merged._combine(theirs.count, theirs.mean, theirs.m2, theirs.minimum, theirs.maximum)
                summaries[name] = merged
            else:
                assert isinstance(theirs, CategoricalSummary)
                summaries[name] = _merge_categories(mine, theirs, sample)
        return Profile(
            dict(self.feature_types),
            summaries,
            self.rows + other.rows,
            {**other.source_types, **self.source_types},
            _merge_joint(self.joint, self.rows, other.joint, other.rows, rng=rng),
            {**other.excluded, **self.excluded},
        )

    # -- storage --------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "profile_version": PROFILE_VERSION,
            "rows": self.rows,
            "feature_types": self.feature_types,
            "source_types": self.source_types,
            "excluded": self.excluded,
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
                    "range_checked": None if summary.range_checked is None else list(summary.range_checked),
                }
            else:
                arrays[f"f{index}_sample"] = summary.sample.astype(str)
                meta["features"][name] = {"index": index, "counts": summary.counts, "missing": summary.missing}
                if summary.hashed is not None:
                    arrays[f"f{index}_hashed"] = summary.hashed
            if name in self.joint:
                column = self.joint[name]
                if column.dtype.kind == "f":
                    arrays[f"j{index}"] = column.astype(np.float64)
                else:
                    arrays[f"j{index}_missing"] = np.array([v is None for v in column], dtype=bool)
                    arrays[f"j{index}"] = np.array(["" if v is None else str(v) for v in column], dtype=str)
        buffer = io.BytesIO()
        arrays["__meta__"] = np.array(json.dumps(meta))
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if "__meta__" not in archive:
                raise ValueError(
                    "a zip (.npz) archive but not a driftline profile (it has no '__meta__'); build one with "
                    "'driftline profile TRAINING_DATA -o PROFILE'"
                )
            meta = json.loads(str(archive["__meta__"]))
            if meta.get("profile_version") != PROFILE_VERSION:
                raise ValueError(
                    f"profile version {meta.get('profile_version')!r} is not readable by this driftline "
                    f"(expects {PROFILE_VERSION}); rebuild it with 'driftline profile'"
                )
            summaries: dict[str, Summary] = {}
            joint: dict[str, np.ndarray] = {}
            for name, info in meta["features"].items():
                index = info["index"]
                if f"j{index}" in archive:
                    column = archive[f"j{index}"]
                    if f"j{index}_missing" in archive:
                        column = np.where(archive[f"j{index}_missing"], None, column.astype(object))
                    joint[name] = column
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
                        tuple(info["range_checked"]) if info.get("range_checked") else None,
                    )
                else:
                    summaries[name] = CategoricalSummary(
                        {k: int(v) for k, v in info["counts"].items()},
                        info["missing"],
                        archive[f"f{index}_sample"].astype(object),
                        archive.get(f"f{index}_hashed"),
                    )
        return cls(
            meta["feature_types"],
            summaries,
            meta["rows"],
            meta.get("source_types", {}),
            joint,
            meta.get("excluded", {}),
        )


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


def _merge_categories(mine: CategoricalSummary, theirs: CategoricalSummary, sample: np.ndarray) -> CategoricalSummary:
    """Exact counts summed; hashed when either side is (or the union passes the cap)."""
    merged = CategoricalSummary(dict(mine.counts), mine.missing + theirs.missing, sample, keep=mine.keep)
    if mine.hashed is not None or theirs.hashed is not None:
        other = CategoricalSummary(dict(theirs.counts), hashed=theirs.hashed)
        merged.hashed = None if mine.hashed is None else mine.hashed.copy()
        merged.to_hashed()
        other.to_hashed()
        assert merged.hashed is not None and other.hashed is not None
        merged.hashed = merged.hashed + other.hashed
        return merged
    for key, value in theirs.counts.items():
        merged.counts[key] = merged.counts.get(key, 0) + value
    merged.bound()
    return merged


def _merge_joint(
    first: dict[str, np.ndarray],
    first_rows: int,
    second: dict[str, np.ndarray],
    second_rows: int,
    *,
    rng: np.random.Generator,
    size: int = SAMPLE_SIZE,
) -> dict[str, np.ndarray]:
    """Row samples merged as :func:`_merge_samples` merges values, taking the same rows of every feature."""
    names = [name for name in first if name in second]
    if not names:
        return {}
    first_len, second_len = len(first[names[0]]), len(second[names[0]])
    if first_len + second_len <= size:
        take_first, take_second = np.arange(first_len), np.arange(second_len)
    else:
        total = first_rows + second_rows
        count_first = min(first_len, round(size * first_rows / total)) if total else 0
        take_first = rng.choice(first_len, count_first, replace=False)
        take_second = rng.choice(second_len, min(second_len, size - count_first), replace=False)
    return {name: np.concatenate([first[name][take_first], second[name][take_second]]) for name in names}
