from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.dags.tasks.ingest import event_row, newest_hour, read_recent_events, rows_to_parquet
from driftline.schemas import layout
from driftline.schemas.events import PredictionEvent
from driftline.schemas.storage import Storage

T0 = datetime(2026, 5, 1, 6, tzinfo=UTC)


def store_hour(storage: Storage, hour: int, count: int) -> None:
    at = T0 + timedelta(hours=hour)
    rows = [
        event_row(
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
    storage.write_bytes(
        f"{layout.event_partition('predictions', 'm', 'v1', at)}/{layout.data_file_name('t', 0, 0, count - 1)}",
        rows_to_parquet(rows),
    )


def test_only_the_partitions_of_the_window_are_read(tmp_path):
    storage = Storage.from_url(str(tmp_path))
    assert (
        newest_hour(storage, "predictions", "m") is None
        and read_recent_events(storage, "predictions", "m", timedelta(hours=1)).empty
    )
    for hour, count in ((0, 5), (1, 6), (2, 7), (3, 8)):
        store_hour(storage, hour, count)
    assert newest_hour(storage, "predictions", "m") == T0 + timedelta(hours=3)
    recent = read_recent_events(storage, "predictions", "m", timedelta(hours=1))
    assert sorted(recent["request_id"].str[0].unique()) == ["2", "3"]  # hours 08 and 09, not 06 or 07
    assert len(recent) == 15
