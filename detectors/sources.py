"""Reading data sources (local paths or fsspec URLs; Parquet or CSV) as a stream of record batches."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BATCH_ROWS = 262_144


def source_format(url: str) -> str:
    lowered = url.lower().removesuffix(".gz")
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith(".csv"):
        return "csv"
    raise ValueError(f"cannot tell the format of {url!r}: expected a .parquet or .csv path")


@contextmanager
def open_batches(url: str, columns: list[str] | None = None, storage_options: dict | None = None) -> Iterator[tuple[pa.Schema, int | None, Iterator[pa.RecordBatch]]]:
    """``(schema, total_rows or None, batches)``; only ``columns`` are read when given (those present)."""
    fmt = source_format(url)
    with fsspec.open(url, "rb", compression="infer", **(storage_options or {})) as handle:
        if fmt == "parquet":
            parquet = pq.ParquetFile(handle)
            schema = parquet.schema_arrow
            wanted = [c for c in columns if c in schema.names] if columns is not None else None
            yield schema, parquet.metadata.num_rows, parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
        else:
            reader = pacsv.open_csv(handle, read_options=pacsv.ReadOptions(block_size=16 << 20))
            yield reader.schema, None, iter(reader)


def read_table(url: str, storage_options: dict | None = None) -> pa.Table:
    with open_batches(url, storage_options=storage_options) as (schema, _, batches):
        return pa.Table.from_batches(list(batches), schema=schema)
