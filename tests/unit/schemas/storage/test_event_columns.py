"""Ingest's columns (EventColumns) store what a DataFrame of event_row's rows stored, for every kind of value."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.schemas.events import LabelRecord, PredictionRecord
from driftline.schemas.storage import events

T0 = datetime(2026, 5, 1, 6, tzinfo=UTC)


def dataframe_table(rows: list[dict]) -> pa.Table:
    """The oracle: the rows as a pandas DataFrame, mixed feature columns as text (how files were written before
    ingest built columns itself)."""
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if column.startswith(events.FEATURE_PREFIX) and frame[column].dtype == object:
            values = frame[column].dropna()
            if not values.map(lambda v: isinstance(v, str)).all():
                frame[column] = frame[column].map(lambda v: None if v is None or v != v else str(v))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def stored(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


FEATURE_KINDS = {
    "floats": lambda rng: rng.gauss(0, 1),
    "ints": lambda rng: rng.randrange(-5, 50),
    "ints_and_floats": lambda rng: rng.choice([rng.randrange(9), rng.random()]),
    "text": lambda rng: rng.choice(["us", "de", "fr"]),
    "bools": lambda rng: rng.random() < 0.3,
    "mixed": lambda rng: rng.choice([1, 2.5, "x", True]),
    "huge_ints": lambda rng: rng.choice([2**70, 3]),
    "unicode": lambda rng: rng.choice(["zürich", "東京", ""]),
}
PREDICTIONS = {
    "score": lambda rng: rng.random(),
    "class": lambda rng: rng.choice(["cat", "dog"]),
    "int_class": lambda rng: rng.randrange(3),
    "bool": lambda rng: rng.random() < 0.5,
    "mixed": lambda rng: rng.choice([0.5, "dog", None, 2**60 + 1]),
}


@pytest.mark.parametrize("seed", range(40))
def test_predictions_are_stored_as_their_rows_were_whatever_the_values(seed):
    rng = random.Random(seed)
    kinds = rng.sample(sorted(FEATURE_KINDS), rng.randint(0, len(FEATURE_KINDS)))
    gaps = rng.random() < 0.5  # some events leave features out or null
    predict = PREDICTIONS[rng.choice(sorted(PREDICTIONS))]
    columns = events.EventColumns()
    for offset in range(rng.randint(1, 60)):
        features = {}
        for name in kinds:
            if gaps and rng.random() < 0.2:
                if rng.random() < 0.5:
                    features[name] = None
                continue
            features[name] = FEATURE_KINDS[name](rng)
        record = PredictionRecord(
            "m",
            "v1",
            f"r{offset}",
            T0 + timedelta(seconds=rng.randrange(3600), microseconds=rng.randrange(10**6)),
            features,
            predict(rng),
            round(rng.uniform(0, 90), 3),
            rng.choice([None, None, "TimeoutError"]),
            rng.random() < 0.1 * (seed % 3),
            rng.choice([1.0, 1.0, 0.25]) if seed % 2 else 1.0,
            rng.random() < 0.2 * (seed % 4 == 1),
        )
        columns.append(record, 3, 100 + offset)
    rows = columns.rows()
    ours = stored(columns.to_parquet())
    expected = dataframe_table(rows)
    assert sorted(ours.column_names) == sorted(expected.column_names)
    assert ours.select(expected.column_names).equals(expected)
    assert stored(events.rows_to_parquet(rows)).select(expected.column_names).equals(expected)  # rows, the same


@pytest.mark.parametrize("label", [1, 0.25, True, "fraud", 2**70])
def test_labels_of_every_kind_are_stored_as_their_rows_were(label):
    columns = events.EventColumns()
    for offset in range(3):
        columns.append(LabelRecord("m", "v1", f"r{offset}", T0 + timedelta(minutes=offset), label), 0, offset)
    expected = dataframe_table(columns.rows())
    assert stored(columns.to_parquet()).equals(expected)


def test_event_times_of_any_zone_are_stored_as_the_same_instant_in_utc():
    columns = events.EventColumns()
    local = datetime(2026, 5, 1, 8, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    columns.append(PredictionRecord("m", "v1", "a", local, {"x": 1.0}, 0.5, 1.0), 0, 0)
    [stamp] = stored(columns.to_parquet())["event_time"].to_pylist()
    assert stamp == datetime(2026, 5, 1, 6, 30, 0, 123456, tzinfo=UTC)


def test_a_feature_missing_from_a_boolean_column_is_null_not_the_text_nan():
    columns = events.EventColumns()
    columns.append(PredictionRecord("m", "v1", "a", T0, {"vip": True}, 0.5, 1.0), 0, 0)
    columns.append(PredictionRecord("m", "v1", "b", T0, {}, 0.5, 1.0), 0, 1)
    # Booleans with a gap are text (as before), and the gap is a null: a DataFrame of the rows said "nan"
    assert stored(columns.to_parquet())["features.vip"].to_pylist() == ["True", None]


def test_shadow_predictions_are_stored_and_left_out_of_the_window_a_check_reads(tmp_path):
    from driftline.schemas.storage import Storage

    storage = Storage.from_url(str(tmp_path))
    columns = events.EventColumns()
    for n in range(6):
        at = T0 + timedelta(minutes=n)
        columns.append(PredictionRecord("m", "v1", f"r{n}", at, {"x": float(n)}, 0.5, 1.0), 0, 2 * n)
        if n % 2:
            shadow = PredictionRecord("m", "v2", f"r{n}", at, {"x": float(n)}, 0.9, 1.0, shadow=True)
            columns.append(shadow, 0, 2 * n + 1)
    events.write_event_file(storage, "predictions", ("m", "v1", T0), ("t", 0, 0, 11), columns)
    assert stored(columns.to_parquet())["shadow"].to_pylist() == [None, None, True, None, None, True, None, None, True]
    window = (T0, T0 + timedelta(hours=1))
    batches = list(events.window_batches(storage, "predictions", "m", *window, quarantined=[],
                                         columns=lambda name: name in {"request_id", "features.x"}))  # fmt: skip
    assert [b.column("request_id").to_pylist() for b in batches] == [[f"r{n}" for n in range(6)]]
    assert "shadow" not in batches[0].schema.names  # read to filter by, not handed out
    everything = events.window_batches(storage, "predictions", "m", *window, quarantined=[], live_only=False)
    assert sum(b.num_rows for b in everything) == 9
    rows, _ = events.read_window_events(storage, "predictions", "m", *window)
    assert list(rows["request_id"]) == [f"r{n}" for n in range(6)]
