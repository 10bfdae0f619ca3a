"""Event Parquet files: rows from validated events, written by source offset range, read by model and hours.

A file holds the events of one model version and one hour that came from one
source partition's offset range; its name carries the range, so writing the
same range again replaces the same file (see :func:`.layout.event_file`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftline.schemas.events import LabelEvent, LabelRecord, PredictionEvent, PredictionRecord
from driftline.schemas.records import QuarantinedFile
from driftline.schemas.storage import layout
from driftline.schemas.storage.base import Storage, UnreadableFileError

T = TypeVar("T")


def _scalar_columns(value: Any, prefix: str) -> dict[str, Any]:
    """Numbers and booleans in a float column, anything else in a ``*_class`` text column."""
    if isinstance(value, int | float) or value is None:  # bool is an int here
        return {prefix: None if value is None else float(value), f"{prefix}_class": None}
    return {prefix: None, f"{prefix}_class": str(value)}


def event_row(
    event: PredictionRecord | LabelRecord | PredictionEvent | LabelEvent, partition: int, offset: int
) -> dict[str, Any]:
    """One Parquet row: the event's fields, features flattened as ``features.<name>``, and its source offset."""
    row: dict[str, Any] = {
        "request_id": event.request_id,
        "model": event.model,
        "model_version": event.model_version,
        "event_time": event.event_time,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }
    if isinstance(event, PredictionRecord | PredictionEvent):
        row.update(_scalar_columns(event.prediction, "prediction"))
        row["latency_ms"] = event.latency_ms
        row["error"] = event.error
        # Only when not the default, so the common case costs ingest nothing: a file whose rows are all answered
        # by the model, unsampled and live has none of the three columns; a null means the default.
        if event.fallback:
            row["fallback"] = True
        if event.sample_rate != 1.0:
            row["sample_rate"] = event.sample_rate
        if event.shadow:
            row["shadow"] = True
        features = event.features
        row.update(zip(_feature_columns(tuple(features)), features.values(), strict=True))
    else:
        row.update(_scalar_columns(event.label, "label"))
    return row


FEATURE_PREFIX = "features."


@functools.lru_cache(maxsize=65_536)
def _feature_column(name: str) -> str:
    return f"{FEATURE_PREFIX}{name}"


@functools.lru_cache(maxsize=4_096)
def _feature_columns(names: tuple[str, ...]) -> tuple[str, ...]:
    """The column names of a feature set: a model's events repeat the same names in the same order."""
    return tuple(_feature_column(name) for name in names)


def feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The stored rows' features, columns named as the serving node named them (sorted)."""
    stored = sorted(c for c in frame.columns if c.startswith(FEATURE_PREFIX))
    return frame[stored].rename(columns=lambda c: c.removeprefix(FEATURE_PREFIX))


def label_column(frame: pd.DataFrame) -> str:
    """The column that holds the labels: ``label`` for numbers and booleans, ``label_class`` for text."""
    return "label" if "label" in frame.columns and frame["label"].notna().any() else "label_class"


def rows_to_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    """Rows as :func:`event_row` writes them, in one Parquet file (the columns of every row, in the order they
    first appear)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    table = pa.table({name: _array(name, [row.get(name) for row in rows]) for name in names})
    return _parquet(table)


class EventColumns:
    """The events of one file as they are read, turned into columns once, when the file is written.

    The stored values and types are those of :func:`rows_to_parquet` for the rows :func:`event_row` makes of the
    same events. Holding the events and building each column in one pass costs about a third less than a row
    dict per event and a DataFrame of them: 18 µs an event against 28 for bench-streams' events, read and written.
    """

    __slots__ = ("events", "offsets", "partitions")

    def __init__(self) -> None:
        self.events: list[PredictionRecord | LabelRecord | PredictionEvent | LabelEvent] = []
        self.partitions: list[int] = []
        self.offsets: list[int] = []

    def append(
        self, event: PredictionRecord | LabelRecord | PredictionEvent | LabelEvent, partition: int, offset: int
    ) -> None:
        self.events.append(event)
        self.partitions.append(partition)
        self.offsets.append(offset)

    def __len__(self) -> int:
        return len(self.events)

    def rows(self) -> list[dict[str, Any]]:
        return [event_row(*entry) for entry in zip(self.events, self.partitions, self.offsets, strict=True)]

    def table(self) -> pa.Table:
        got = self.events
        columns: dict[str, pa.Array] = {
            "request_id": pa.array([e.request_id for e in got], pa.large_string()),
            "model": pa.array([e.model for e in got], pa.large_string()),
            "model_version": pa.array([e.model_version for e in got], pa.large_string()),
            "event_time": _times([e.event_time for e in got]),
            "kafka_partition": pa.array(self.partitions, pa.int64()),
            "kafka_offset": pa.array(self.offsets, pa.int64()),
        }
        if not got or not isinstance(got[0], PredictionRecord | PredictionEvent):
            columns.update(_scalar_arrays([e.label for e in got], "label"))  # type: ignore[union-attr]
            return pa.table(columns)
        predictions: list[PredictionRecord | PredictionEvent] = got  # type: ignore[assignment]
        columns.update(_scalar_arrays([e.prediction for e in predictions], "prediction"))
        columns["latency_ms"] = pa.array([e.latency_ms for e in predictions], pa.float64())
        columns["error"] = _array("error", [e.error for e in predictions])
        fallbacks = [e.fallback for e in predictions]
        if True in fallbacks:
            columns["fallback"] = pa.array([True if f else None for f in fallbacks], pa.bool_())
        rates = [e.sample_rate for e in predictions]
        if set(rates) != {1.0}:
            columns["sample_rate"] = pa.array([None if r == 1.0 else r for r in rates], pa.float64())
        shadows = [e.shadow for e in predictions]
        if True in shadows:
            columns["shadow"] = pa.array([True if f else None for f in shadows], pa.bool_())
        features = [e.features for e in predictions]
        keys = list(dict.fromkeys(map(tuple, features)))  # the distinct feature sets, in the order they appear
        for name in dict.fromkeys(name for names in keys for name in names):
            values = [f[name] for f in features] if len(keys) == 1 else [f.get(name) for f in features]
            columns[_feature_column(name)] = _feature_array(values)
        return pa.table(columns)

    def to_parquet(self) -> bytes:
        return _parquet(self.table())


_TIME = pa.timestamp("us", tz="UTC")
_NUMBERS = {float, int, bool, type(None)}


def _times(values: list[datetime]) -> pa.Array:
    # pandas converts datetimes with a time zone about three times as fast as pyarrow does
    return pa.array(pd.to_datetime(values, utc=True), _TIME)


def _parquet(table: pa.Table) -> bytes:
    """Zstandard, and dictionary pages for text only: numbers rarely repeat enough for a dictionary, and trying
    one cost ingest a microsecond an event and made files about a quarter larger (``make bench-streams``)."""
    text = [f.name for f in table.schema if pa.types.is_large_string(f.type) or pa.types.is_string(f.type)]
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_dictionary=text)
    return buffer.getvalue()


def _scalar_arrays(values: list[Any], prefix: str) -> dict[str, pa.Array]:
    """:func:`_scalar_columns` for a whole column: numbers and booleans as floats, anything else as text."""
    types = set(map(type, values))
    if types <= _NUMBERS:
        try:
            numbers = pa.array(values, pa.float64()) if types - {type(None)} else pa.nulls(len(values))
            return {prefix: numbers, f"{prefix}_class": pa.nulls(len(values))}
        except pa.ArrowInvalid:  # an integer a float cannot hold exactly: float() rounds it
            pass
    numbers, classes = zip(*(_scalar_columns(v, prefix).values() for v in values), strict=True)
    return {prefix: _array(prefix, list(numbers)), f"{prefix}_class": _array(prefix, list(classes))}


def _array(name: str, values: list[Any]) -> pa.Array:
    """One column of event rows, typed as a DataFrame of them would type it (a whole number column with a gap
    becomes floats; a column of nothing but nulls has the null type); features go through :func:`_feature_array`."""
    if name.startswith(FEATURE_PREFIX):
        return _feature_array(values)
    if name == "event_time":
        return _times(values)
    return _typed(values, set(map(type, values)), stringify=False)


def _feature_array(values: list[Any]) -> pa.Array:
    """A feature column: numbers, booleans or text as they are; a column that mixes kinds (or booleans with a
    gap) becomes text, each value as ``str`` writes it."""
    return _typed(values, set(map(type, values)), stringify=True)


def _typed(values: list[Any], types: set[type], *, stringify: bool) -> pa.Array:
    gaps = type(None) in types
    kind = _KINDS.get(frozenset(types - {type(None)}))
    if kind == pa.int64() and gaps:
        kind = pa.float64()  # whole numbers with a gap: floats, as in a DataFrame
    if kind == pa.bool_() and gaps and stringify:
        kind = None  # a feature of booleans with a gap was stored as text
    if kind == pa.null():
        return pa.nulls(len(values))
    if kind is not None:
        try:
            return pa.array(values, kind, from_pandas=True)
        except (pa.ArrowInvalid, OverflowError):  # an integer beyond int64, or one a float cannot hold exactly
            pass
    if not stringify:
        return pa.array(values)
    return pa.array([None if v is None else str(v) for v in values], pa.large_string())


_KINDS: dict[frozenset[type], pa.DataType] = {
    frozenset(): pa.null(),
    frozenset({str}): pa.large_string(),
    frozenset({int}): pa.int64(),
    frozenset({float}): pa.float64(),
    frozenset({int, float}): pa.float64(),
    frozenset({bool}): pa.bool_(),
    frozenset({datetime}): _TIME,
}


def write_event_file(
    storage: Storage,
    kind: str,
    partition_key: tuple[str, str, datetime],
    source: tuple[str, int, int, int],
    rows: Sequence[dict[str, Any]] | EventColumns,
) -> str:
    """Write the rows of one (model, version, hour) from one (topic, partition, first, last) range; returns the path."""
    relative = layout.event_file(kind, partition_key, source)
    data = rows.to_parquet() if isinstance(rows, EventColumns) else rows_to_parquet(rows)
    return storage.write_bytes(relative, data)


def event_files(
    storage: Storage, kind: str, model: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[str]:
    """Relative paths of ``model``'s event files (every version), of the hours from the one holding ``since``
    to the one holding ``until``."""
    paths = storage.glob(layout.event_files_glob(kind, model))
    if since is None and until is None:
        return paths
    first_hour = layout.hour_of(since) if since is not None else None
    last_hour = layout.hour_of(until) if until is not None else None
    return [
        path
        for path in paths
        if (first_hour is None or layout.parse_event_file(path).hour >= first_hour)
        and (last_hour is None or layout.parse_event_file(path).hour <= last_hour)
    ]


# Every event file has these (event_row writes them); a file without them is not one.
REQUIRED_COLUMNS = ("request_id", "model_version", "event_time")


def read_event_file(storage: Storage, relative: str) -> pd.DataFrame:
    """One event file's rows. A storage error (network, permissions) propagates as it is; bytes that are not a
    Parquet file of events raise :class:`UnreadableFileError` naming the file and what is wrong."""
    data = storage.read_bytes(relative)  # reading first: only what is wrong with the bytes is the file's fault
    if not data:
        raise UnreadableFileError(storage.url(relative), "the file is empty (0 bytes), not a Parquet file")
    try:
        table = pq.read_table(io.BytesIO(data))
        problem = _not_events(table)
        frame: pd.DataFrame = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFileError(storage.url(relative), f"not a readable Parquet file ({exc})") from None
    if problem:
        raise UnreadableFileError(storage.url(relative), f"not an event file: {problem}")
    return frame


def _not_events(table: pa.Table) -> str | None:
    """What keeps ``table`` from being rows :func:`event_row` wrote; ``None`` when nothing does."""
    missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
    if missing:
        return f"no {', '.join(missing)} column ({', '.join(table.column_names[:8])})"
    event_time = table.schema.field("event_time").type
    if not (pa.types.is_timestamp(event_time) and event_time.tz is not None):
        return f"event_time is {event_time}, not a timestamp with a time zone"
    for column in ("request_id", "model_version"):
        kind = table.schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return f"{column} is {kind}, not text"
    return None


def quarantine_event_file(storage: Storage, relative: str, reason: str) -> QuarantinedFile:
    """Move an unreadable event file to ``quarantine/`` with a record of why, so no later read trips on it.

    Copy, record, then remove: a crash in between leaves the original in place and the next read does it again.
    The copy never holds the file in memory, however large it is.
    """
    moved_to = layout.quarantined(relative)
    size = storage.copy(relative, moved_to)
    source = layout.parse_data_file_name(relative.rsplit("/", 1)[-1])
    topic, partition, first, last = source if source else (None, None, None, None)
    record = QuarantinedFile(
        path=relative,
        moved_to=moved_to,
        reason=reason,
        size_bytes=size,
        topic=topic,
        partition=partition,
        first_offset=first,
        last_offset=last,
        events_at_most=None if first is None or last is None else last - first + 1,
    )
    storage.write_bytes(layout.quarantine_record(relative), record.to_json())
    storage.remove(relative)
    return record


def quarantined_files(storage: Storage) -> list[QuarantinedFile]:
    """Every quarantine record, oldest path first."""
    return [
        storage.read_record(QuarantinedFile, path) for path in storage.glob(f"{layout.QUARANTINE_FOLDER}/**/*.json")
    ]


def read_event_files(storage: Storage, paths: Iterable[str]) -> pd.DataFrame:
    """The rows of ``paths``; an unreadable file raises :class:`UnreadableFileError` naming it."""
    frames = [read_event_file(storage, relative) for relative in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_event_files(storage: Storage, paths: Iterable[str]) -> tuple[pd.DataFrame, list[QuarantinedFile]]:
    """The rows of ``paths``, quarantining each unreadable file instead of failing: (rows, files moved aside)."""
    frames, moved = [], []
    for relative in paths:
        try:
            frames.append(read_event_file(storage, relative))
        except UnreadableFileError as exc:
            moved.append(quarantine_event_file(storage, relative, exc.reason))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), moved


def read_events(
    storage: Storage, kind: str, model: str, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """All stored rows of one model (every version), optionally only the hour partitions from ``since``'s
    to ``until``'s."""
    return read_event_files(storage, event_files(storage, kind, model, since=since, until=until))


def read_window_events(
    storage: Storage, kind: str, model: str, start: datetime, end: datetime
) -> tuple[pd.DataFrame, list[QuarantinedFile]]:
    """The rows of ``model`` with ``start <= event_time < end``, read from the hour partitions that can hold
    them only, and the unreadable files among those partitions, moved to quarantine.

    A window is half-open, as Airflow's data intervals are: an event stamped exactly at ``end`` belongs to
    the next window, so adjacent windows share no row.
    """
    if end <= start:
        raise ValueError(f"a window must end after it starts, got [{start.isoformat()}, {end.isoformat()})")
    paths = event_files(storage, kind, model, since=start, until=end - timedelta(microseconds=1))
    rows, quarantined = load_event_files(storage, paths)
    if not rows.empty:
        times = rows["event_time"]
        keep = (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
        if "shadow" in rows.columns:  # shadow copies are not requests (see window_batches)
            keep &= ~rows["shadow"].fillna(False).astype(bool)
        rows = rows[keep].reset_index(drop=True)
    return rows, quarantined


# Rows per record batch when a window is streamed: memory holds one batch of the needed columns, whatever
# the size of the window, of its files or of their row groups.
WINDOW_BATCH_ROWS = 65_536


class FileChangedMidReadError(UnreadableFileError):
    """A file that turned out unreadable after some of its rows were already handed out: the file is moved to
    quarantine and whoever consumed the rows must start again without it."""


_NANOSECONDS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def time_bounds(kind: pa.TimestampType, start: datetime, end: datetime) -> tuple[pa.Scalar, pa.Scalar]:
    """``[start, end)`` as scalars of a file's own timestamp type, exact in any unit: a value ``v`` (a whole number
    of units) is at or after ``start`` exactly when ``v >= ceil(start)``, and before ``end`` when ``v < ceil(end)``.
    Casting the bounds instead would fail (or round) for a file in seconds or milliseconds."""
    per_unit = _NANOSECONDS[kind.unit]
    low, high = (-(-pd.Timestamp(moment).value // per_unit) for moment in (start, end))
    return pa.scalar(low, type=kind), pa.scalar(high, type=kind)


class _WatchedFile:
    """A storage file handle that remembers an error raised by storage itself, so that a failed decode can be
    told apart from a failed read: Arrow reports both as ``OSError``, and only the first is the file's fault."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.storage_error: BaseException | None = None
        self.closed = False

    def _watch(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as exc:
            self.storage_error = exc
            raise

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._watch(self.handle.read, size)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        position: int = self._watch(self.handle.seek, offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._watch(self.handle.tell)
        return position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def _open_event_file(storage: Storage, relative: str, watched: _WatchedFile) -> pq.ParquetFile:
    """The file's Parquet reader, once its footer and schema are those of an event file; else
    :class:`UnreadableFileError` saying what is wrong (a storage error propagates as it is)."""
    try:
        parquet = pq.ParquetFile(watched, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowException, OSError, ValueError) as exc:
        if watched.storage_error is not None:
            raise
        url = storage.url(relative)
        if storage.fs.size(storage.path(relative)) == 0:
            raise UnreadableFileError(url, "the file is empty (0 bytes), not a Parquet file") from None
        raise UnreadableFileError(url, f"not a readable Parquet file ({exc})") from None
    problem = _not_events(parquet.schema_arrow.empty_table())
    if problem:
        raise UnreadableFileError(storage.url(relative), f"not an event file: {problem}")
    return parquet


def window_batches(
    storage: Storage,
    kind: str,
    model: str,
    start: datetime,
    end: datetime,
    *,
    columns: Callable[[str], bool] | None = None,
    quarantined: list[QuarantinedFile],
    batch_rows: int = WINDOW_BATCH_ROWS,
    paths: list[str] | None = None,
    live_only: bool = True,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``model`` with ``start <= event_time < end`` (half-open, as in :func:`read_window_events`),
    streamed as record batches of at most ``batch_rows`` rows, with only the columns ``columns`` accepts (and
    ``event_time``). Files are read through a handle, page by page: memory holds one decoded batch and Arrow's
    read buffers, never a window, a file or a row group, whatever the files' layout.

    A file whose footer or schema is not that of an event file is moved to quarantine (appended to
    ``quarantined``) before any of its rows are handed out, and the stream goes on. A file that fails to decode
    after some of its rows were handed out is quarantined too and raises :class:`FileChangedMidReadError`:
    start the pass again (the file is gone from the listing by then). An error of storage itself (network,
    permissions) propagates as it is and quarantines nothing. ``paths``: the window's files, when the caller has
    listed them already. Shadow predictions (``shadow``, mirrored requests whose answers were never returned)
    are left out unless ``live_only`` is off: the live answer to the same request is the row that counts.
    """
    if end <= start:
        raise ValueError(f"a window must end after it starts, got [{start.isoformat()}, {end.isoformat()})")
    if paths is None:
        paths = event_files(storage, kind, model, since=start, until=end - timedelta(microseconds=1))
    for relative in paths:
        handed_out = False
        with storage.fs.open(storage.path(relative), "rb") as handle:
            watched = _WatchedFile(handle)
            try:
                parquet = _open_event_file(storage, relative, watched)
                schema = parquet.schema_arrow
                wanted = [name for name in schema.names if name == "event_time" or columns is None or columns(name)]
                shadows = live_only and "shadow" in schema.names
                read = [*wanted, "shadow"] if shadows and "shadow" not in wanted else wanted
                low, high = time_bounds(schema.field("event_time").type, start, end)
                try:
                    for batch in parquet.iter_batches(batch_size=batch_rows, columns=read, use_threads=False):
                        times = batch.column(batch.schema.get_field_index("event_time"))
                        keep = pc.and_(pc.greater_equal(times, low), pc.less(times, high))
                        if shadows:  # a shadow copy is not a request: the live answer's row stands for it
                            shadow = batch.column(batch.schema.get_field_index("shadow"))
                            keep = pc.and_(keep, pc.invert(pc.fill_null(shadow, False)))
                        kept = batch.filter(keep)
                        if read is not wanted:
                            kept = kept.drop_columns(["shadow"])
                        if kept.num_rows:
                            handed_out = True
                            yield kept
                except (pa.ArrowException, OSError, ValueError) as exc:
                    if watched.storage_error is not None:
                        raise
                    raise UnreadableFileError(storage.url(relative), f"not a readable Parquet file ({exc})") from None
            except UnreadableFileError as exc:
                quarantined.append(quarantine_event_file(storage, relative, exc.reason))
                if handed_out:
                    raise FileChangedMidReadError(storage.url(relative), exc.reason) from None


def scan_window(
    consume: Callable[[Iterator[pa.RecordBatch]], T],
    storage: Storage,
    kind: str,
    model: str,
    window: tuple[datetime, datetime],
    *,
    columns: Callable[[str], bool] | None = None,
    quarantined: list[QuarantinedFile],
) -> T:
    """``consume(batches)`` over the window's batches (:func:`window_batches`); when a file turns out unreadable
    midway it is quarantined and ``consume`` runs again from the start, over the files left. ``consume`` must
    start from nothing on each call. The files are listed once; each restart reads one file fewer, so there
    are at most as many restarts as files."""
    paths = event_files(storage, kind, model, since=window[0], until=window[1] - timedelta(microseconds=1))
    for _ in range(len(paths) + 1):
        moved = {file.path for file in quarantined}
        left = [path for path in paths if path not in moved]
        try:
            return consume(
                window_batches(storage, kind, model, *window, columns=columns, quarantined=quarantined, paths=left)
            )
        except FileChangedMidReadError:
            continue
    raise RuntimeError(
        f"the {kind} of model {model!r} in [{window[0].isoformat()}, {window[1].isoformat()}) were read "
        f"{len(paths) + 1} times and a file failed midway each time although each was quarantined; check that "
        f"storage allows removing files under {location(storage, kind, model)}"
    )


def location(storage: Storage, kind: str, model: str) -> str:
    """Where ``model``'s events of ``kind`` are stored, for messages meant for people."""
    return storage.url(layout.event_model_folder(kind, model))
