from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from driftline.schemas.events import PredictionEvent
from driftline.schemas.storage import Storage, events, layout

T0 = datetime(2026, 5, 1, 6, tzinfo=UTC)


def store_hour(storage: Storage, hour: int, count: int) -> str:
    at = T0 + timedelta(hours=hour)
    rows = [
        events.event_row(
            PredictionEvent(
                model="m",
                model_version="v1",
                request_id=f"{hour}-{i}",
                event_time=at + timedelta(minutes=i),
                features={"x": 1.0},
                prediction=1,
                latency_ms=1.0,
            ),
            0,
            i,
        )
        for i in range(count)
    ]
    return events.write_event_file(storage, "predictions", ("m", "v1", at), ("t", 0, 0, count - 1), rows)


def test_only_the_partitions_of_the_window_are_read_and_its_end_is_exclusive(tmp_path, monkeypatch):
    storage = Storage.from_url(str(tmp_path))
    assert events.read_window_events(storage, "predictions", "m", T0, T0 + timedelta(hours=1))[0].empty
    for hour, count in ((0, 5), (1, 6), (2, 7), (3, 8)):
        store_hour(storage, hour, count)
    read: list[str] = []
    original = events.read_event_file
    monkeypatch.setattr(events, "read_event_file", lambda s, path: read.append(path) or original(s, path))
    rows, quarantined = events.read_window_events(
        storage, "predictions", "m", T0 + timedelta(hours=2), T0 + timedelta(hours=3)
    )
    assert quarantined == []
    assert sorted(rows["request_id"].str[0].unique()) == ["2"] and len(rows) == 7  # hour 08 only
    assert [layout.parse_event_file(path).hour for path in read] == [T0 + timedelta(hours=2)]  # no other file opened
    with pytest.raises(ValueError, match="a window must end after it starts"):
        events.read_window_events(storage, "predictions", "m", T0, T0)


def test_files_are_named_by_their_source_range_and_parse_back(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    path = store_hour(storage, 2, 3)
    relative = storage.relative(path)
    assert relative == (
        "predictions/model=m/version=v1/date=2026-05-01/hour=08/t+0+00000000000000000000+00000000000000000002.parquet"
    )
    parsed = layout.parse_event_file(relative)
    assert (parsed.kind, parsed.model, parsed.model_version, parsed.hour) == (
        "predictions",
        "m",
        "v1",
        T0 + timedelta(hours=2),
    )
    assert store_hour(storage, 2, 3) == path  # the same range rewrites the same file
    assert events.event_files(storage, "predictions", "m") == [relative]


def test_hostile_names_cannot_become_paths(tmp_path):
    storage = Storage.from_url(str(tmp_path / "root"))
    with pytest.raises(layout.LayoutError, match=re.escape("model version '../../outside' is not a valid name")):
        events.write_event_file(storage, "predictions", ("m", "../../outside", T0), ("t", 0, 0, 0), [])
    with pytest.raises(layout.LayoutError, match=re.escape("model '..' is not a valid name")):
        events.event_files(storage, "labels", "..")
    assert not (tmp_path / "outside").exists()


def test_stored_rows_give_back_the_features_as_named_and_the_label_column():
    import pandas as pd

    frame = pd.DataFrame({"request_id": ["a"], "features.zeta": [1.0], "features.age": [41], "label": [None]})
    assert list(events.feature_columns(frame).columns) == ["age", "zeta"]
    assert events.label_column(frame.assign(label_class=["yes"])) == "label_class"
    assert events.label_column(frame.assign(label=[1.0])) == "label"


def test_a_strict_read_names_the_unreadable_file_and_a_storage_error_is_never_quarantined(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    good = storage.relative(store_hour(storage, 0, 2))
    broken = good.replace("+00000000000000000001.parquet", "+00000000000000000009.parquet")
    storage.write_bytes(broken, b"")
    with pytest.raises(events.UnreadableFileError, match=re.escape(storage.url(broken)) + ": the file is empty"):
        events.read_event_files(storage, [good, broken])
    missing = broken.replace("+00000000000000000009", "+00000000000000000042")
    with pytest.raises(FileNotFoundError):  # not the file's fault: nothing is moved
        events.load_event_files(storage, [good, missing])
    assert storage.exists(broken) and events.quarantined_files(storage) == []


def test_fallback_and_sample_rate_are_stored_only_when_not_the_default():
    from driftline.schemas.events import PredictionRecord
    from driftline.schemas.storage.events import event_row

    at = datetime(2026, 5, 1, tzinfo=UTC)
    plain = PredictionRecord("m", "v1", "r1", at, {}, 0.5, 3.0)
    assert "fallback" not in event_row(plain, 0, 1) and "sample_rate" not in event_row(plain, 0, 1)
    sampled = PredictionRecord("m", "v1", "r2", at, {}, None, 3.0, None, True, 0.25)
    row = event_row(sampled, 0, 2)
    assert (row["fallback"], row["sample_rate"]) == (True, 0.25)
