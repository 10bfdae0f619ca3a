"""Reading data sources (local paths or fsspec URLs; Parquet or CSV) as a stream of record batches.

What a file is comes from its first bytes, not its name (:func:`detect_format`): Parquet starts with ``PAR1``, a
stored driftline profile is a zip (``.npz``), gzip is unpacked first, and UTF-8 text is CSV.

Memory is bounded by a batch, whatever the layout (:func:`open_batches`):

* Parquet with row groups of a few to 64 MB decoded: whole row groups, a few columns at a time, the next one read
  on a second thread while the caller works on this one (at most two in memory; the fastest way measured).
* Parquet with larger row groups (a file written as one 1M-row group) or tiny ones: ``iter_batches`` slices of
  about ``BATCH_BYTES`` decoded, also read ahead on a second thread. Pages are read through a 1 MiB buffer, not
  the whole column chunk.
* CSV: the streaming reader in blocks of ``CSV_BLOCK_BYTES``, coalesced to about ``BATCH_BYTES``, read ahead on a
  second thread; columns are typed once (from ``types`` when given: a window is read as its reference says, see
  ``Profile.arrow_types``; else from a 16 MB head, integers as ``float64``) instead of from the first block, which
  would fail on a later block that holds a decimal point. Text found in a numeric column re-reads that column as
  text (:func:`_csv_batches`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

Format = Literal["parquet", "csv", "profile"]

COLUMNS_AT_ONCE = 8
BATCH_BYTES = 16 << 20  # a slice's decoded size when row groups are not read whole (measured: 32 MB peaked 390 MB)
MAX_BATCH_ROWS = 131_072
MIN_BATCH_ROWS = 1024
ROW_GROUP_BYTES = 64 << 20  # row groups up to this decoded size are read whole
CSV_BLOCK_BYTES = 1 << 20  # the streaming reader reads ahead ~50 blocks: 4 MB blocks held 190 MB, 1 MB 65 MB
CSV_INFER_BYTES = 16 << 20  # the head of a CSV whose types are inferred when no types are given
SNIFF_BYTES = 4096
PARQUET_MAGIC, ZIP_MAGIC, GZIP_MAGIC = b"PAR1", b"PK\x03\x04", b"\x1f\x8b"


def detect_format(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Format, str | None]:
    """``(format, compression)`` of ``url`` from its first bytes: ``"parquet"``, ``"csv"`` or ``"profile"`` (a
    stored driftline profile), and ``"gzip"`` or ``None``. Raises ``ValueError`` naming what the bytes are not."""
    options = dict(storage_options or {})
    try:
        with fsspec.open(url, "rb", **options) as raw:
            head = raw.read(SNIFF_BYTES)
    except IsADirectoryError:
        raise ValueError(
            f"{url} is a directory; pass one Parquet or CSV file (a partitioned dataset directory is not read)"
        ) from None
    compression = None
    if head.startswith(GZIP_MAGIC):
        compression = "gzip"
        with fsspec.open(url, "rb", compression="gzip", **options) as unpacked:
            head = unpacked.read(SNIFF_BYTES)
    if not head:
        raise ValueError(f"{url} is empty; expected Parquet, CSV or a driftline profile")
    if head.startswith(PARQUET_MAGIC):
        return "parquet", compression
    if head.startswith(ZIP_MAGIC):
        if not _is_profile(url, compression, options):
            raise ValueError(
                f"{url} is a zip archive but not a driftline profile (it holds no '__meta__'); expected Parquet, "
                "CSV or a profile from 'driftline profile'"
            )
        return "profile", compression
    if _is_text(head):
        return "csv", compression
    raise ValueError(
        f"cannot tell the format of {url}: its first bytes ({head[:8]!r}) are neither Parquet (which starts with "
        "'PAR1'), a driftline profile (a .npz zip, from 'driftline profile') nor UTF-8 text (CSV)"
    )


def _is_profile(url: str, compression: str | None, options: dict[str, Any]) -> bool:
    import zipfile

    with fsspec.open(url, "rb", compression=compression, **options) as handle:
        try:
            return "__meta__.npy" in zipfile.ZipFile(handle).namelist()
        except zipfile.BadZipFile:
            return False


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for cut in range(4):  # the sniffed head may end inside a multi-byte character
        with suppress(UnicodeDecodeError):
            head[: len(head) - cut].decode("utf-8")
            return True
    return False


def _data_format(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Format, str | None]:
    fmt, compression = detect_format(url, storage_options)
    if fmt == "profile":
        raise ValueError(
            f"{url} is a driftline profile, not data; data must be Parquet or CSV ('driftline check' takes a "
            "profile as its first argument, the reference)"
        )
    return fmt, compression


@contextmanager
def open_batches(
    url: str,
    columns: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    *,
    types: Mapping[str, pa.DataType] | None = None,
) -> Iterator[tuple[pa.Schema, int | None, Iterator[pa.RecordBatch]]]:
    """``(schema, total_rows or None, batches)``; only ``columns`` are read when given (those present).

    ``types`` (CSV only) types those columns as given — a window's features as its reference profile says
    (``Profile.arrow_types``) — and the others are inferred from the file's head.
    """
    fmt, compression = _data_format(url, storage_options)
    with fsspec.open(url, "rb", compression=compression, **(storage_options or {})) as handle:
        if fmt == "parquet":
            try:
                parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
            except pa.ArrowInvalid as exc:
                raise ValueError(f"{url} starts like Parquet but is not readable ({exc}); is it truncated?") from None
            schema = parquet.schema_arrow
            wanted = [c for c in columns if c in schema.names] if columns is not None else schema.names
            yield schema, parquet.metadata.num_rows, _parquet_batches(parquet, wanted)
        else:
            schema = _csv_schema(url, compression, storage_options, types or {})
            wanted = [c for c in columns if c in schema.names] if columns is not None else schema.names

            opened: list[Any] = []
            options = dict(storage_options or {})

            def reader(column_types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
                # the first open reuses the handle; a reopen (a column turned out to hold text) opens anew
                source = handle if not opened else fsspec.open(url, "rb", compression=compression, **options).open()
                opened.append(source)
                return pacsv.open_csv(
                    source,
                    read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                    convert_options=pacsv.ConvertOptions(column_types=column_types, include_columns=wanted),
                )

            try:
                yield (
                    schema,
                    None,
                    _read_ahead(_csv_batches(url, reader, {c: schema.field(c).type for c in wanted}, schema.names)),
                )
            finally:
                for source in opened[1:]:
                    source.close()


def _csv_schema(
    url: str, compression: str | None, storage_options: Mapping[str, Any] | None, types: Mapping[str, pa.DataType]
) -> pa.Schema:
    """The CSV's columns, typed by ``types`` where given and otherwise from the file's head, integers widened to
    ``float64`` (a later block's ``1.5`` or empty value must not fail the read)."""
    with fsspec.open(url, "rb", compression=compression, **dict(storage_options or {})) as handle:
        head = handle.read(CSV_INFER_BYTES)
        if len(head) == CSV_INFER_BYTES and b"\n" in head:
            head = head[: head.rindex(b"\n") + 1]  # whole lines only
    # Parsed from bytes read here: a streaming reader opened on the file would read ahead far past its first block
    # (measured: 16 MB blocks held 420 MB) only to be asked for its schema.
    try:
        inferred = pacsv.read_csv(pa.BufferReader(head)).schema
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{url}: {exc}; expected CSV with a header line and as many fields in every row") from None
    fields = []
    for column in inferred:
        kind = types.get(column.name, column.type)
        if column.name not in types and (pa.types.is_integer(kind) or pa.types.is_null(kind)):
            kind = pa.float64() if pa.types.is_integer(kind) else pa.string()
        fields.append(pa.field(column.name, kind))
    return pa.schema(fields)


_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")


def _csv_batches(
    url: str,
    reader: Callable[[dict[str, pa.DataType]], pacsv.CSVStreamingReader],
    types: dict[str, pa.DataType],
    file_columns: list[str],
) -> Iterator[pa.RecordBatch]:
    """The reader's blocks coalesced to about ``BATCH_BYTES``.

    A value that does not convert to its column's type (text in a numeric column) does not stop the read: that
    column is read as text from the start of the file again (the rows already passed on are skipped), and the
    profile counts such values as a type change, as it does for Parquet. A row that does not parse is an error
    naming the file.
    """
    done = 0  # rows passed on
    while True:
        skip = done
        held: list[pa.RecordBatch] = []
        rows = size = 0
        try:
            current = reader(types)  # it reads its first block already
            while True:
                try:
                    batch = current.read_next_batch()
                except StopIteration:
                    break
                if skip:
                    dropped = min(skip, batch.num_rows)
                    batch, skip = batch.slice(dropped), skip - dropped
                    if not batch.num_rows:
                        continue
                held.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
                if rows >= MAX_BATCH_ROWS // 2 or size >= BATCH_BYTES:
                    out = held[0] if len(held) == 1 else pa.concat_batches(held)
                    held, rows, size = [], 0, 0
                    done += out.num_rows
                    yield out
            if held:
                out = held[0] if len(held) == 1 else pa.concat_batches(held)
                done += out.num_rows
                yield out
            return
        except pa.ArrowInvalid as exc:
            match = _CONVERSION.search(str(exc))
            column = file_columns[int(match.group(1))] if match and int(match.group(1)) < len(file_columns) else None
            if column is None or pa.types.is_string(types.get(column, pa.string())):
                raise ValueError(
                    f"{url}: {exc}; every row must have as many fields as the header line"
                    if "Expected" in str(exc)
                    else f"{url}: {exc}"
                ) from None
            types = {**types, column: pa.string()}  # then read again, this column as text
            # Rows held but not yet passed on are read again; the ones passed on are skipped.


def decoded_row_bytes(parquet: pq.ParquetFile, columns: list[str]) -> float:
    """An upper estimate of a row's decoded size in the widest row group: fixed widths for fixed-width types; for
    strings 8 offset bytes (large_string) plus the larger of the uncompressed bytes per row and the longer of the
    min and max values (dictionary-encoded pages say little about the decoded size)."""
    widths = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}
    wanted = set(columns)
    metadata = parquet.metadata
    widest = 0.0
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        if group.num_rows == 0:
            continue
        total = 0.0
        for position in range(group.num_columns):
            chunk = group.column(position)
            if chunk.path_in_schema.split(".")[0] not in wanted:
                continue
            width = widths.get(chunk.physical_type)
            if width is None:
                value = chunk.total_uncompressed_size / group.num_rows
                statistics = chunk.statistics if chunk.is_stats_set else None
                if statistics is not None and statistics.has_min_max:
                    with suppress(TypeError):
                        value = max(value, len(statistics.min), len(statistics.max))
                width = 8 + value  # offsets: 4 bytes (string) or 8 (large_string, as pandas writes)
            total += width
        widest = max(widest, total)
    return widest


def _parquet_batches(parquet: pq.ParquetFile, columns: list[str]) -> Iterator[pa.RecordBatch]:
    metadata = parquet.metadata
    if metadata.num_row_groups == 0 or metadata.num_rows == 0:
        return iter(())
    row_bytes = max(decoded_row_bytes(parquet, columns), 1.0)
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    if max(sizes) * row_bytes <= ROW_GROUP_BYTES and min(sizes) * row_bytes >= ROW_GROUP_BYTES / 8:
        return _row_group_batches(parquet, columns)
    rows = int(min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, BATCH_BYTES // row_bytes)))
    return _read_ahead(parquet.iter_batches(batch_size=rows, columns=columns, use_threads=True))


def _read_ahead(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches``, the next one read on a second thread while the caller works on this one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-read") as reader:
        pending = reader.submit(next, batches, None)
        while True:
            batch = pending.result()
            if batch is None:
                return
            pending = reader.submit(next, batches, None)
            yield batch


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
    """Each row group as one record batch, decoded ``columns_at_once`` columns at a time (no pre-buffering:
    measured on 1M × 26 columns, ``iter_batches`` of whole groups peaked 180 MB above the interpreter, this about
    90 MB, for the same speed). The next row group is read on a second thread while the caller works on this one
    (Arrow releases the GIL); at most two row groups are in memory."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-read") as reader:
        pending = reader.submit(_read_row_group, parquet, 0, columns, columns_at_once)
        for index in range(parquet.num_row_groups):
            batch = pending.result()
            if index + 1 < parquet.num_row_groups:
                pending = reader.submit(_read_row_group, parquet, index + 1, columns, columns_at_once)
            yield batch


def read_table(url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    with open_batches(url, storage_options=storage_options) as (schema, _, batches):
        held = list(batches)
    if held and any(batch.schema != held[0].schema for batch in held):
        # A CSV column that turned out to hold text past the head: read once more with every column as it ended.
        final = {field.name: field.type for field in held[-1].schema}
        with open_batches(url, storage_options=storage_options, types=final) as (_, _, batches):
            held = list(batches)
    return pa.Table.from_batches(held, schema=held[0].schema if held else schema)
