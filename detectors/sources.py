"""Reading data sources (local paths or fsspec URLs; Parquet or CSV) as a stream of record batches."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

COLUMNS_AT_ONCE = 8


def source_format(url: str) -> str:
    lowered = url.lower().removesuffix(".gz")
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith(".csv"):
        return "csv"
    raise ValueError(f"cannot tell the format of {url!r}: expected a .parquet or .csv path")


@contextmanager
def open_batches(
    url: str, columns: list[str] | None = None, storage_options: dict[str, Any] | None = None
) -> Iterator[tuple[pa.Schema, int | None, Iterator[pa.RecordBatch]]]:
    """``(schema, total_rows or None, batches)``; only ``columns`` are read when given (those present)."""
    fmt = source_format(url)
    with fsspec.open(url, "rb", compression="infer", **(storage_options or {})) as handle:
        if fmt == "parquet":
            # No pre-buffering, one row group and a few columns at a time: measured on 1M × 26 columns,
            # iter_batches peaked 180 MB above the interpreter, this about 90 MB, for the same speed.
            parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
            schema = parquet.schema_arrow
            wanted = [c for c in columns if c in schema.names] if columns is not None else schema.names
            yield schema, parquet.metadata.num_rows, _row_group_batches(parquet, wanted)
        else:
            reader = pacsv.open_csv(handle, read_options=pacsv.ReadOptions(block_size=16 << 20))
            yield reader.schema, None, iter(reader)


def _read_row_group(parquet: pq.ParquetFile, index: int, columns: list[str], columns_at_once: int) -> pa.RecordBatch:
    arrays: list[pa.Array] = []
    names: list[str] = []
    for start in range(0, len(columns), columns_at_once):
        part = parquet.read_row_group(index, columns=columns[start : start + columns_at_once])
        arrays.extend(part.column(i).combine_chunks() for i in range(part.num_columns))
        names.extend(part.column_names)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _row_group_batches(
    parquet: pq.ParquetFile, columns: list[str], columns_at_once: int = COLUMNS_AT_ONCE
) -> Iterator[pa.RecordBatch]:
    """Each row group as one record batch, decoded ``columns_at_once`` columns at a time.

    The next row group is read on a second thread while the caller works on the
    current one (Arrow releases the GIL), so reading and profiling overlap; at
    most two row groups are in memory.
    """
    if parquet.num_row_groups == 0:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-read") as reader:
        pending = reader.submit(_read_row_group, parquet, 0, columns, columns_at_once)
        for index in range(parquet.num_row_groups):
            batch = pending.result()
            if index + 1 < parquet.num_row_groups:
                pending = reader.submit(_read_row_group, parquet, index + 1, columns, columns_at_once)
            yield batch


def read_table(url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    with open_batches(url, storage_options=storage_options) as (schema, _, batches):
        return pa.Table.from_batches(list(batches), schema=schema)
