"""Drift engine benchmark: driftline vs the scan floor vs Evidently, measured in one run.

    make bench            # or: .venv/bin/python -m benchmarks.drift_engine [--current-rows N]

Each contender runs in a child process of its own, so its peak RSS is its own;
seconds exclude interpreter start and imports for every contender alike.

* driftline: load the stored reference profile, stream the current file into a
  window profile, compare (all 26 features). scipy.stats, which the tests import
  when they first run, is imported between the two, outside the clock (its
  seconds are printed).
* scan floor: pyarrow reads the whole current file (``pq.read_table`` /
  ``pyarrow.csv.read_csv``), one ``np.histogram`` pass over every numeric column
  and one ``value_counts`` over every categorical one.
* Evidently 0.7 ``DataDriftPreset`` on the same two files (the first layout),
  when an interpreter with Evidently is found: ``--evidently-python PATH`` or
  ``benchmarks/.venv-evidently/bin/python`` (``make bench-evidently-env``;
  Evidently needs pandas < 3, so it cannot share driftline's environment).

The current file is measured in every layout of ``LAYOUTS`` (issue 13, item 6):
row groups of 131,072 rows (as the generator writes it), one row group of all
1M rows, row groups of 5,000 rows, and CSV — driftline and the scan floor on the
same file in the same run, so each layout's ratio is against its own floor.

Targets (issues 3 and 13): driftline ≤ 1/30 of Evidently's time; in every
layout ≤ 2× the scan floor and peak RSS ≤ 400 MB; all 7 shifted columns found
and none of the 19 others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux keeps that across
    ``exec``, so a child would report its parent's RSS at the fork when that was larger."""
    return status_mb("VmHWM")


def run_driftline(profile_path: str, current_path: str) -> dict:
    from driftline.detectors import Profile, available_tests, compare_profiles, window_profile
    from driftline.detectors.sources import open_batches

    available_tests()  # imports every test module: outside the clock, like every contender's imports
    started = time.perf_counter()
    with open(profile_path, "rb") as handle:
        reference = Profile.from_bytes(handle.read())
    with open_batches(current_path, columns=list(reference.feature_types), types=reference.arrow_types()) as (
        schema,
        _,
        batches,
    ):
        current = window_profile(reference, batches)
    # The tests import scipy.stats when they first run (not before: it costs ~75 MB). That import is outside the
    # clock like every contender's imports, and where the CLI makes it, after the window is read: peak RSS is
    # what `driftline check` has.
    profiled = time.perf_counter()
    import scipy.stats  # noqa: F401

    imported = time.perf_counter()
    report = compare_profiles(reference, current, current_columns=schema.names)
    seconds = (profiled - started) + (time.perf_counter() - imported)
    return {
        "seconds": seconds,
        "import_seconds": imported - profiled,
        "peak_rss_mb": _peak_rss_mb(),
        "drifted": sorted(report.drifted_features),
        "tests": sorted({f.result.test for f in report.features}),
    }


def run_scan_floor(current_path: str) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pacsv.read_csv(current_path) if current_path.endswith(".csv") else pq.read_table(current_path)
    for column in table.column_names:
        values = table.column(column)
        if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
            np.histogram(values.to_numpy(), bins=100)
        else:
            pc.value_counts(values)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()}


EVIDENTLY_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
reference_path, current_path = sys.argv[1], sys.argv[2]
numeric, categorical = sys.argv[3].split(","), sys.argv[4].split(",")
started = time.perf_counter()
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
reference = Dataset.from_pandas(pd.read_parquet(reference_path), data_definition=definition)
current = Dataset.from_pandas(pd.read_parquet(current_path), data_definition=definition)
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
result = snapshot.dict()
seconds = time.perf_counter() - started
drifted = []
for metric in result["metrics"]:
    config = metric.get("config", {})
    if config.get("type", "").endswith("ValueDrift"):
        value, threshold, method = metric["value"], config.get("threshold"), config.get("method", "")
        is_p_value = "p_value" in method or "test" in method.lower() and "distance" not in method.lower()
        flagged = value <= threshold if is_p_value else value >= threshold
        if flagged:
            drifted.append(config["column"])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "peak_rss_mb": int(hwm.split()[1]) / 1024,
                  "drifted": sorted(drifted)}))
"""


# name: (format, rows per row group; None: all rows in one)
LAYOUTS: dict[str, tuple[str, int | None]] = {
    "parquet, row groups of 131,072": ("parquet", 131_072),
    "parquet, one row group": ("parquet", None),
    "parquet, row groups of 5,000": ("parquet", 5_000),
    "csv": ("csv", None),
}


def write_layout(current_path: Path, layout: str) -> Path:
    """The current data in ``layout`` beside ``current_path`` (written once; the first layout is the file itself)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt, rows = LAYOUTS[layout]
    if layout == next(iter(LAYOUTS)):
        return current_path
    slug = "csv" if fmt == "csv" else f"rg{rows or 'all'}"
    path = current_path.with_name(f"{current_path.stem}-{slug}.{fmt}")
    if not path.exists():
        table = pq.read_table(current_path)
        partial = path.with_name(path.name + ".partial")
        if fmt == "csv":
            pacsv.write_csv(table, partial)
        else:
            pq.write_table(table, partial, row_group_size=rows or max(table.num_rows, 1))
        partial.rename(path)
    return path


def evidently_python(given: str | None = None) -> str | None:
    candidates = [given, str(HERE / ".venv-evidently" / "bin" / "python")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import evidently"], capture_output=True, check=False)
            if probe.returncode == 0:
                return candidate
    return None


def run_child(module: str, *args: str) -> dict:
    """Run ``python -m module --child ARGS`` in a process of its own (so its peak RSS is its own) and return the
    JSON object its last output line holds."""
    completed = subprocess.run(
        [sys.executable, "-m", module, "--child", *args],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-3000:])
    result: dict = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _child(*args: str) -> dict:
    return run_child("benchmarks.drift_engine", *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is reported")
    parser.add_argument("--evidently-python", help="an interpreter with Evidently installed (default: .venv-evidently)")
    parser.add_argument("--layouts", help=f"';'-separated layouts to measure (default all: {'; '.join(LAYOUTS)})")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *paths = args.child
        print(json.dumps(run_driftline(*paths) if kind == "driftline" else run_scan_floor(*paths)))
        return 0

    from benchmarks.data_generator import CATEGORICAL, COLUMNS, NUMERIC, SHIFTED, ensure_data
    from driftline.detectors import build_reference_profile
    from driftline.detectors.sources import read_table

    print(
        f"data: reference {args.reference_rows:,} rows, current {args.current_rows:,} rows, {len(COLUMNS)} columns "
        f"({len(SHIFTED)} shifted) in {DATA}",
        flush=True,
    )
    reference_path, current_path = ensure_data(DATA, args.reference_rows, args.current_rows)
    started = time.perf_counter()
    profile = build_reference_profile(read_table(str(reference_path)))
    profile_path = DATA / f"{reference_path.stem}.profile.npz"
    profile_path.write_bytes(profile.to_bytes())
    size_kib = profile_path.stat().st_size / 1024
    print(f"reference profile built once in {time.perf_counter() - started:.2f}s: {size_kib:.0f} KiB")

    def median_of(runs: list[dict]) -> dict:
        ordered = sorted(runs, key=lambda r: r["seconds"])
        chosen = dict(ordered[len(ordered) // 2])
        chosen["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        return chosen

    chosen = [name for name in LAYOUTS if not args.layouts or name in args.layouts.split(";")]
    measured: dict[str, dict[str, dict]] = {}
    for layout in chosen:
        path = str(write_layout(current_path, layout))
        measured[layout] = {
            "driftline": median_of([_child("driftline", str(profile_path), path) for _ in range(args.repeat)]),
            "scan floor": median_of([_child("scan", path) for _ in range(args.repeat)]),
        }
        print(f"  measured {layout}", flush=True)
    results = dict(measured[chosen[0]])
    evidently = evidently_python(args.evidently_python)
    if evidently:
        completed = subprocess.run(
            [
                evidently,
                "-c",
                EVIDENTLY_SCRIPT,
                str(reference_path),
                str(current_path),
                ",".join([*NUMERIC, "prediction"]),
                ",".join(CATEGORICAL),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode == 0:
            results["evidently"] = json.loads(completed.stdout.strip().splitlines()[-1])
        else:
            print(f"Evidently failed: {completed.stderr[-1500:]}")
    else:
        print("Evidently: not found (make bench-evidently-env, or --evidently-python PATH) — its ratio is skipped")

    print(f"\n{'layout':32s} {'driftline s':>11s} {'floor s':>8s} {'ratio':>6s} {'driftline MB':>12s} {'floor MB':>9s}")
    for layout, pair in measured.items():
        ours, floor = pair["driftline"], pair["scan floor"]
        print(
            f"{layout:32s} {ours['seconds']:11.3f} {floor['seconds']:8.3f} {ours['seconds'] / floor['seconds']:6.2f} "
            f"{ours['peak_rss_mb']:12.0f} {floor['peak_rss_mb']:9.0f}"
        )
    if "evidently" in results:
        theirs = results["evidently"]
        label = f"Evidently ({chosen[0]})"
        print(f"{label:32s} {theirs['seconds']:11.3f} {'':>8s} {'':>6s} {theirs['peak_rss_mb']:12.0f}")
    ours = results["driftline"]
    unshifted = [c for c in COLUMNS if c not in SHIFTED]
    checks = []
    for layout, pair in measured.items():
        mine, floor = pair["driftline"], pair["scan floor"]
        found = sorted(set(SHIFTED) & set(mine["drifted"]))
        false = sorted(set(unshifted) & set(mine["drifted"]))
        false_named = f" {false}" if false else ""
        checks += [
            (
                f"{layout}: driftline / scan floor = {mine['seconds'] / floor['seconds']:.2f}",
                mine["seconds"] <= 2 * floor["seconds"],
                "≤ 2",
            ),
            (f"{layout}: driftline peak RSS = {mine['peak_rss_mb']:.0f} MB", mine["peak_rss_mb"] <= 400, "≤ 400 MB"),
            (f"{layout}: shifted columns found = {len(found)}/{len(SHIFTED)}", len(found) == len(SHIFTED), "7/7"),
            (
                f"{layout}: unshifted columns flagged = {len(false)}/{len(unshifted)}{false_named}",
                not false,
                "0/19",
            ),
        ]
    if "evidently" in results:
        theirs = results["evidently"]
        checks.insert(
            0,
            (
                f"driftline / Evidently = 1/{theirs['seconds'] / ours['seconds']:.0f} "
                f"({ours['seconds']:.2f}s vs {theirs['seconds']:.2f}s)",
                ours["seconds"] * 30 <= theirs["seconds"],
                "≤ 1/30",
            ),
        )
        e_found = len(set(SHIFTED) & set(theirs["drifted"]))
        e_false = sorted(set(unshifted) & set(theirs["drifted"]))
        print(
            f"Evidently found {e_found}/{len(SHIFTED)} shifted, "
            f"flagged {len(e_false)}/{len(unshifted)} unshifted {e_false or ''}"
        )
    print(
        f"driftline tests used: {', '.join(ours['tests'])}; scipy.stats import (outside the clock) "
        f"{ours['import_seconds']:.2f}s"
    )
    print()
    for text, ok, target in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}  (target {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
