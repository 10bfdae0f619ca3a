"""Drift-verdict quality: false alarms on no-drift splits and detections of injected shifts, driftline and Evidently.

For every setting of :mod:`benchmarks.quality_data` (high-cardinality categoricals, large windows, tiny windows,
zero-inflated counts, a correlation flip, real tables bundled in statsmodels and scikit-learn) each split is written
as a Parquet pair; driftline judges it here (``compare_profiles(alpha=0.05, min_rows=100)``; a false alarm or a
detection is the verdict ``drift``) while one Evidently process (``DataDriftPreset``, defaults) judges all splits in
the background. Evidently records two verdicts: dataset drift (share of drifted columns ≥ 0.5, the preset's default)
and any column drifted. The table is printed as Markdown at the end.

    make bench-quality                                 # or: .venv/bin/python -m benchmarks.drift_quality
    .venv/bin/python -m benchmarks.drift_quality --quick --no-evidently --seed 1

Evidently runs in ``benchmarks/.venv-evidently`` (``make bench-evidently-env``); that environment's statsmodels and
scikit-learn also export the real tables once to ``benchmarks/data/quality/``. Evidently's HTML widgets are not built
(its value-drift and preset ``render`` are replaced by no-ops in its process: the verdicts are the same, in a third of
the time); each column's ``drift_detected`` is read where the widget would have been built.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from benchmarks.quality_data import REAL_DIR, REAL_TABLES, Setting, ensure_real_tables, settings

HERE = Path(__file__).resolve().parent

EVIDENTLY_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics.column_statistics import ValueDriftCalculation
from evidently.presets import DataDriftPreset

flagged = {}
def _render(self, result, options, color_options):  # the widget is not built; the column's verdict is kept
    flagged[self.metric.column] = bool(result.drift_detected)
    return []
ValueDriftCalculation._render = _render
DataDriftPreset.render = lambda self, context, child_widgets=None: []

manifest = json.load(open(sys.argv[1]))
started, results = time.perf_counter(), []
for number, split in enumerate(manifest):
    flagged.clear()
    try:
        definition = DataDefinition(numerical_columns=split["numeric"], categorical_columns=split["categorical"])
        reference = Dataset.from_pandas(pd.read_parquet(split["reference"]), data_definition=definition)
        current = Dataset.from_pandas(pd.read_parquet(split["current"]), data_definition=definition)
        result = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference).dict()
        share, drift_share = None, 0.5
        for metric in result["metrics"]:
            if metric.get("config", {}).get("type", "").endswith("DriftedColumnsCount"):
                share, drift_share = metric["value"]["share"], metric["config"].get("drift_share", 0.5)
        drifted = sorted(column for column, is_drifted in flagged.items() if is_drifted)
        if share is None:
            share = len(drifted) / max(len(flagged), 1)
        results.append({"id": split["id"], "share": share, "dataset_drift": share >= drift_share,
                        "any": bool(drifted), "drifted": drifted, "error": None})
    except Exception as error:  # recorded for the split; the run goes on
        results.append({"id": split["id"], "error": f"{type(error).__name__}: {error}"[:300]})
    if (number + 1) % 100 == 0:
        print(f"  Evidently: {number + 1}/{len(manifest)} splits", file=sys.stderr, flush=True)
print(json.dumps({"seconds": time.perf_counter() - started, "results": results}))
"""


def evidently_python() -> str | None:
    candidate = HERE / ".venv-evidently" / "bin" / "python"
    if candidate.exists():
        probe = subprocess.run([str(candidate), "-c", "import evidently"], capture_output=True, check=False)
        if probe.returncode == 0:
            return str(candidate)
    return None


def column_kinds(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns as both tools see them: numbers numeric, everything else categorical."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]
    return numeric, [c for c in frame.columns if c not in numeric]


def driftline_verdict(reference_path: Path, current_path: Path) -> tuple[str, list[str]]:
    """The report's verdict and what drifted: feature names, ``<multivariate>`` for the joint check."""
    from driftline.detectors import build_reference_profile, compare_profiles, window_profile

    ref = build_reference_profile(pq.read_table(reference_path))
    cur = window_profile(ref, iter(pq.read_table(current_path).to_batches()))
    report = compare_profiles(ref, cur, alpha=0.05, min_rows=100).to_dict()
    joint = ["<multivariate>"] if report["multivariate"].get("drifted") else []
    return report["verdict"], [*report["drifted_features"], *joint]


@dataclass
class Row:
    setting: Setting
    driftline: list[str] = field(default_factory=list)  # verdicts
    flagged: Counter[str] = field(default_factory=Counter)  # what driftline called drifted, over the splits
    dataset_drift: list[bool] = field(default_factory=list)
    any_column: list[bool] = field(default_factory=list)
    evidently_errors: list[str] = field(default_factory=list)

    def rate(self, verdict: str = "drift") -> float:
        return float(np.mean([v == verdict for v in self.driftline])) if self.driftline else float("nan")


def _pct(value: float) -> str:
    return "—" if value != value else f"{100 * value:.1f} %"  # NaN → —


def _share(values: list[bool]) -> float:
    return float(np.mean(values)) if values else float("nan")


def render(rows: list[Row], *, evidently: str, seed: int, seconds: float, sources: dict[str, str]) -> str:
    lines = [
        f"Drift-verdict quality — {dt.date.today().isoformat()}, seed {seed}, {seconds:.0f} s "
        f"(driftline alpha 0.05, min_rows 100; Evidently {evidently}, DataDriftPreset defaults). "
        "The rates are false alarms where the shift is 'none', detections elsewhere.",
        "",
        "| data | ref / cur rows | shift | splits | driftline drift | driftline insufficient_data "
        "| Evidently dataset drift | Evidently any column |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row.setting
        errors = f" ({len(row.evidently_errors)} errors)" if row.evidently_errors else ""
        lines.append(
            f"| {s.kind} | {s.n_ref:,} / {s.n_cur:,} | {s.shift} | {len(row.driftline)} | {_pct(row.rate())} "
            f"| {_pct(row.rate('insufficient_data'))} | {_pct(_share(row.dataset_drift))}{errors} "
            f"| {_pct(_share(row.any_column))}{errors} |"
        )
    calm = [r for r in rows if not r.setting.drifted]
    shifted = [r for r in rows if r.setting.drifted]
    n_calm = sum(len(r.driftline) for r in calm)
    real_calm = sum(len(r.driftline) for r in calm if r.setting.kind.startswith("real"))

    def pooled(values: list[list[Any]], hit: Any = True) -> float:
        flat = [v for group in values for v in group]
        return float(np.mean([v == hit for v in flat])) if flat else float("nan")

    def mean_rate(groups: list[list[Any]], hit: Any = True) -> float:
        rates = [np.mean([v == hit for v in group]) for group in groups if group]
        return float(np.mean(rates)) if rates else float("nan")

    lines += [
        "",
        f"- False-alarm rate over all {n_calm} no-drift splits ({real_calm} of them real-table splits): "
        f"driftline {_pct(pooled([r.driftline for r in calm], 'drift'))} "
        f"(insufficient_data {_pct(pooled([r.driftline for r in calm], 'insufficient_data'))}); "
        f"Evidently dataset drift {_pct(pooled([r.dataset_drift for r in calm]))}, "
        f"any column {_pct(pooled([r.any_column for r in calm]))}.",
        f"- Mean detection rate over the {len(shifted)} shift settings: "
        f"driftline {_pct(mean_rate([r.driftline for r in shifted], 'drift'))}; "
        f"Evidently dataset drift {_pct(mean_rate([r.dataset_drift for r in shifted]))}, "
        f"any column {_pct(mean_rate([r.any_column for r in shifted]))}.",
    ]
    if sources:
        lines.append(
            "- Real tables: " + ", ".join(f"{name} ({package})" for name, package in sorted(sources.items())) + "."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="3 splits per setting, for development")
    parser.add_argument("--no-evidently", action="store_true", help="driftline only")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    python = evidently_python()
    sources = ensure_real_tables(python)
    if not sources:
        print("real tables: none (make bench-evidently-env: its statsmodels and scikit-learn export them)")
    real = {name: pd.read_parquet(REAL_DIR / f"{name}.parquet") for name in REAL_TABLES if name in sources}
    use_evidently = not args.no_evidently and python is not None
    if not args.no_evidently and python is None:
        print("Evidently: not found (make bench-evidently-env) — its columns are left empty")
    evidently_version = "—"
    if use_evidently and python is not None:
        probe = [python, "-c", "from importlib.metadata import version; print(version('evidently'))"]
        evidently_version = subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip()

    plan = settings(real, quick=args.quick)
    rows = [Row(s) for s in plan]
    with tempfile.TemporaryDirectory(prefix="drift-quality-") as tmp:
        manifest: list[dict[str, Any]] = []
        splits: list[tuple[int, Path, Path]] = []
        for number, setting in enumerate(plan):
            for split in range(setting.n_splits):
                ref, cur = setting.make(np.random.default_rng([args.seed, number, split]))
                reference_path, current_path = (
                    Path(tmp, f"{number}-{split}-ref.parquet"),
                    Path(tmp, f"{number}-{split}-cur.parquet"),
                )
                ref.to_parquet(reference_path, index=False)
                cur.to_parquet(current_path, index=False)
                numeric, categorical = column_kinds(ref)
                manifest.append(
                    {
                        "id": [number, split],
                        "reference": str(reference_path),
                        "current": str(current_path),
                        "numeric": numeric,
                        "categorical": categorical,
                    }
                )
                splits.append((number, reference_path, current_path))
        print(
            f"{len(plan)} settings, {len(splits)} splits written in {time.perf_counter() - started:.0f} s", flush=True
        )
        child = None
        if use_evidently and python is not None:
            manifest_path = Path(tmp, "manifest.json")
            manifest_path.write_text(json.dumps(manifest))
            child = subprocess.Popen(
                [python, "-c", EVIDENTLY_SCRIPT, str(manifest_path)], stdout=subprocess.PIPE, text=True
            )
        driftline_started = time.perf_counter()
        for done, (number, reference_path, current_path) in enumerate(splits, 1):
            verdict, drifted = driftline_verdict(reference_path, current_path)
            rows[number].driftline.append(verdict)
            rows[number].flagged.update(drifted)
            if done % 200 == 0:
                print(f"  driftline: {done}/{len(splits)} splits", flush=True)
        driftline_seconds = time.perf_counter() - driftline_started
        print(f"driftline: {len(splits)} splits in {driftline_seconds:.0f} s", flush=True)
        if child is not None:
            out, _ = child.communicate()
            if child.returncode != 0 or not out.strip():
                print(f"Evidently failed (exit {child.returncode}); its columns are left empty")
            else:
                answer = json.loads(out.strip().splitlines()[-1])
                for result in answer["results"]:
                    row = rows[result["id"][0]]
                    if result["error"] is not None:
                        row.evidently_errors.append(result["error"])
                        continue
                    row.dataset_drift.append(bool(result["dataset_drift"]))
                    row.any_column.append(bool(result["any"]))
                print(f"Evidently: {len(answer['results'])} splits in {answer['seconds']:.0f} s", flush=True)
    for row in rows:
        if not row.setting.drifted and row.flagged:
            top = ", ".join(f"{name} {count}×" for name, count in row.flagged.most_common(4))
            print(f"driftline false alarms in {row.setting.kind} ({row.setting.n_ref:,}/{row.setting.n_cur:,}): {top}")
        if row.evidently_errors:
            print(f"Evidently errors in {row.setting.kind} / {row.setting.shift}: {row.evidently_errors[0]}")
    print()
    print(
        render(
            rows,
            evidently=evidently_version,
            seed=args.seed,
            seconds=time.perf_counter() - started,
            sources=sources,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
