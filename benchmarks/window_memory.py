"""Memory of the drift DAG's work at any window size: the drift check of a one-hour window, and ingest.

    make bench-window     # or: .venv/bin/python -m benchmarks.window_memory [--sizes 1M,3M,10M] [--ingest 100k,1M]

Drift check (issue 11, item 7): for each size, a one-hour window of that many stored prediction events (8 numeric
and 2 categorical features, scores for the performance section, labels for a tenth of the requests) is written
in two layouts: as ingest writes it (a file per chunk of 50,000 events per partition, 3 partitions) and as one
file holding one row group. A child process per run does the whole ``run_drift_check`` (window profile, segments
off, rolling reference off, performance on) and reports its peak RSS; the baseline measured in the same run is
that process's RSS after imports and the reference profile, before the window is read. The scan floor is
pyarrow reading the same columns of the same files, batch by batch, in a child of its own.

Ingest: the embedded broker is started on loopback, N events are produced, and ``ingest_topic`` moves them to
local storage in a child process; its peak RSS at two sizes shows it is bounded by the chunk, not the run.

The last lines are ``key=value`` figures; "flat" means peak RSS above the baseline grows by less than 1.25× from
the smallest size to the largest, where the data grows 10×.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.drift_engine import run_child, status_mb

HERE = Path(__file__).resolve().parent
WINDOW_START = datetime(2026, 5, 1, 6, tzinfo=UTC)
NUMERIC = [f"n{i}" for i in range(8)]
CATEGORICAL = ["country", "plan"]
FILE_ROWS = 50_000  # ingest's chunk: the largest file ingest writes
PARTITIONS = 3


def _rss_mb() -> float:
    return status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return status_mb("VmHWM")  # not ru_maxrss, which a child inherits from its parent across exec


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def _columns(first: int, rows: int, seed: int) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, 3600, rows))
    columns = {
        "request_id": pa.array([f"r{i}" for i in range(first, first + rows)]),
        "model": pa.array(["bench"] * rows),
        "model_version": pa.array(["v1"] * rows),
        "event_time": pa.array(pd.Timestamp(WINDOW_START) + pd.to_timedelta(seconds, unit="s")),
        "kafka_partition": pa.array(np.zeros(rows, dtype=np.int64)),
        "kafka_offset": pa.array(np.arange(first, first + rows, dtype=np.int64)),
        "prediction": pa.array(rng.uniform(0, 1, rows)),
        "prediction_class": pa.nulls(rows, pa.string()),
        "latency_ms": pa.array(rng.gamma(2, 10, rows)),
        "error": pa.nulls(rows, pa.string()),
    }
    for index, name in enumerate(NUMERIC):
        columns[f"features.{name}"] = pa.array(rng.normal(index, 1 + index / 4, rows))
    columns["features.country"] = pa.array(rng.choice(["de", "fr", "us", "uk", "es", "it"], rows))
    columns["features.plan"] = pa.array(rng.choice(["free", "pro", "team"], rows, p=[0.6, 0.3, 0.1]))
    return columns


def write_window(root: Path, rows: int, layout: str) -> None:
    """The window's prediction files in ``layout`` (``ingest`` or ``one-row-group``), and labels for 1 in 10."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "predictions/model=bench/version=v1/date=2026-05-01/hour=06"
    labels = root / "labels/model=bench/version=v1/date=2026-05-01/hour=06"
    folder.mkdir(parents=True)
    labels.mkdir(parents=True)
    if layout == "one-row-group":
        table = pa.table(_columns(0, rows, seed=1))
        pq.write_table(table, folder / f"t+0+{0:020d}+{rows - 1:020d}.parquet", row_group_size=rows, compression="zstd")
        chunks = [(0, table)]
    else:
        chunks = []
        for number, first in enumerate(range(0, rows, FILE_ROWS)):
            count = min(FILE_ROWS, rows - first)
            table = pa.table(_columns(first, count, seed=number))
            name = f"t+{number % PARTITIONS}+{first:020d}+{first + count - 1:020d}.parquet"
            pq.write_table(table, folder / name, compression="zstd")
            chunks.append((first, table))
    for first, table in chunks:
        labelled = table.filter(pa.array(np.arange(table.num_rows) % 10 == 0))
        label_table = pa.table(
            {
                "request_id": labelled.column("request_id"),
                "model": labelled.column("model"),
                "model_version": labelled.column("model_version"),
                "event_time": labelled.column("event_time"),
                "label": pa.array((np.asarray(labelled.column("prediction")) > 0.5).astype(float)),
                "label_class": pa.nulls(labelled.num_rows, pa.string()),
            }
        )
        pq.write_table(label_table, labels / f"t+0+{first:020d}+{first + table.num_rows - 1:020d}.parquet")


def write_reference(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = _columns(0, 50_000, seed=99)
    pq.write_table(pa.table({name: columns[f"features.{name}"] for name in [*NUMERIC, *CATEGORICAL]}), path)


def child_drift(root: str, reference: str) -> dict:
    from driftline.dags.tasks.drift import reference_profile, run_drift_check
    from driftline.detectors import available_tests
    from driftline.schemas.config import MonitorConfig
    from driftline.schemas.settings import Settings
    from driftline.schemas.storage import Storage

    available_tests()
    settings = Settings(home=str(Path(root).parent / "home"), storage_url=root, slack_token=None)
    storage = Storage.from_settings(settings)
    config = MonitorConfig.model_validate(
        {"model": "bench", "reference": reference, "drift": {"production_windows": 0}}
    )
    reference_profile(settings, storage, config)  # built once, as in production: stored beside the model
    baseline = _rss_mb()
    started = time.perf_counter()
    summary = run_drift_check(settings, storage, config, WINDOW_START, WINDOW_START + timedelta(hours=1))
    return {
        "seconds": time.perf_counter() - started,
        "baseline_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
        "rows": summary.current_rows,
    }


def child_scan(root: str) -> dict:
    import pyarrow.parquet as pq

    baseline = _rss_mb()
    started = time.perf_counter()
    rows = 0
    for path in sorted(Path(root, "predictions").rglob("*.parquet")):
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        wanted = [n for n in parquet.schema_arrow.names if n.startswith("features.") or n in {"event_time"}]
        for batch in parquet.iter_batches(batch_size=65_536, columns=wanted, use_threads=False):
            rows += batch.num_rows
    return {"seconds": time.perf_counter() - started, "baseline_mb": baseline, "peak_rss_mb": _peak_rss_mb()}


def child_ingest(home: str, bootstrap: str, events: int) -> dict:
    from driftline.dags.tasks.ingest import ingest_topic
    from driftline.schemas.settings import Settings
    from driftline.schemas.storage import Storage

    settings = Settings(home=home, bootstrap_servers=bootstrap, topic_prefix="bench")
    storage = Storage.from_settings(settings)
    baseline = _rss_mb()
    started = time.perf_counter()
    result = ingest_topic(settings, storage, settings.topics.predictions, kind="predictions", idle_timeout=2.0)
    return {
        "seconds": time.perf_counter() - started,
        "baseline_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
        "rows": result.rows_written,
        "expected": events,
    }


def _child(*args: str) -> dict:
    return run_child("benchmarks.window_memory", *args)


def produce(bootstrap: str, topic: str, events: int) -> None:
    import numpy as np
    from confluent_kafka import Producer

    from driftline.schemas.events import PredictionEvent

    rng = np.random.default_rng(5)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 200_000})
    now = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(events):
        event = PredictionEvent(
            model="bench",
            model_version="v1",
            request_id=f"r{i}",
            event_time=now,
            features={**{name: float(rng.normal()) for name in NUMERIC}, "country": "de", "plan": "pro"},
            prediction=float(rng.uniform()),
            latency_ms=12.0,
        )
        while True:
            try:
                producer.produce(topic, event.model_dump_json().encode(), partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the broker did not take every event within 120 s")


def bench_ingest(sizes: list[int]) -> list[dict]:
    from driftline.infra.local_stack import free_port, start_broker, stop_process
    from driftline.schemas.settings import Settings
    from driftline.streams.topics import ensure_topics

    results = []
    for events in sizes:
        with tempfile.TemporaryDirectory(prefix="driftline-bench-ingest-") as temp:
            port = free_port()
            pid = start_broker(port, Path(temp) / "broker.log")
            try:
                bootstrap = f"127.0.0.1:{port}"
                settings = Settings(home=temp, bootstrap_servers=bootstrap, topic_prefix="bench")
                ensure_topics(settings)
                produce(bootstrap, settings.topics.predictions, events)
                result = _child("ingest", temp, bootstrap, str(events))
            finally:
                stop_process(pid)
        result["events"] = events
        print(
            f"ingest  events={events:>10,} peak_rss_mb={result['peak_rss_mb']:7.0f} "
            f"above_start_mb={result['peak_rss_mb'] - result['baseline_mb']:6.0f} seconds={result['seconds']:7.1f} "
            f"stored={result['rows']:,}",
            flush=True,
        )
        if result["rows"] != events:
            raise RuntimeError(f"ingest stored {result['rows']:,} of {events:,} events")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,3M,10M", help="window sizes (events), comma-separated")
    parser.add_argument("--layouts", default="ingest,one-row-group")
    parser.add_argument("--ingest", default="100k,1M", help="ingest sizes (events); empty: skip")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "drift":
            print(json.dumps(child_drift(*rest)))
        elif kind == "scan":
            print(json.dumps(child_scan(*rest)))
        else:
            print(json.dumps(child_ingest(rest[0], rest[1], int(rest[2]))))
        return 0

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    layouts = [layout.strip() for layout in args.layouts.split(",") if layout.strip()]
    drift: dict[tuple[str, int], dict] = {}
    for layout in layouts:
        for rows in sizes:
            temp = Path(tempfile.mkdtemp(prefix="driftline-bench-window-"))
            try:
                write_window(temp / "storage", rows, layout)
                write_reference(temp / "reference.parquet")
                ours = _child("drift", str(temp / "storage"), str(temp / "reference.parquet"))
                floor = _child("scan", str(temp / "storage"))
            finally:
                shutil.rmtree(temp, ignore_errors=True)
            if ours["rows"] != rows:
                raise RuntimeError(f"the check read {ours['rows']:,} of {rows:,} rows")
            ours["floor_seconds"] = floor["seconds"]
            drift[(layout, rows)] = ours
            print(
                f"drift   layout={layout:14s} rows={rows:>11,} peak_rss_mb={ours['peak_rss_mb']:7.0f} "
                f"baseline_mb={ours['baseline_mb']:6.0f} "
                f"above_baseline_mb={ours['peak_rss_mb'] - ours['baseline_mb']:6.0f} "
                f"seconds={ours['seconds']:7.1f} scan_floor_seconds={floor['seconds']:6.1f}",
                flush=True,
            )
    ingest = bench_ingest([parse_size(s) for s in args.ingest.split(",") if s.strip()])

    print()
    small, large = min(sizes), max(sizes)
    for layout in layouts:
        first, last = drift[(layout, small)], drift[(layout, large)]
        growth = (last["peak_rss_mb"] - last["baseline_mb"]) / max(first["peak_rss_mb"] - first["baseline_mb"], 1.0)
        tag = layout.replace("-", "_")
        print(f"drift_{tag}_peak_rss_mb_at_{large}={last['peak_rss_mb']:.0f}")
        print(f"drift_{tag}_baseline_rss_mb={last['baseline_mb']:.0f}")
        print(f"drift_{tag}_growth_above_baseline_{small}_to_{large}={growth:.2f}")
        print(f"drift_{tag}_seconds_vs_scan_floor_at_{large}={last['seconds'] / last['floor_seconds']:.2f}")
    if len(ingest) >= 2:
        growth = (ingest[-1]["peak_rss_mb"] - ingest[-1]["baseline_mb"]) / max(
            ingest[0]["peak_rss_mb"] - ingest[0]["baseline_mb"], 1.0
        )
        print(f"ingest_peak_rss_mb_at_{ingest[-1]['events']}={ingest[-1]['peak_rss_mb']:.0f}")
        print(f"ingest_growth_above_baseline_{ingest[0]['events']}_to_{ingest[-1]['events']}={growth:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
