"""``driftline profile`` and ``driftline check``: drift from the command line.

Exit codes of ``check``: 0 no drift, 1 drift, 2 error (bad arguments, unreadable data), 3 insufficient data (no
drift found, but some features had fewer than ``min_rows`` values and could not be judged: not "no drift").
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from driftline.detectors.profile import Profile

EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_ERROR, EXIT_INSUFFICIENT = 0, 1, 2, 3


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and only for runs longer than a second."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        # sys.stderr when called, not when imported: it may have been replaced since (a test's capture)
        self.total, self.stream, self.done = total, stream or sys.stderr, 0
        self.started = time.monotonic()
        self.enabled = self.stream.isatty()

    def __call__(self, rows: int) -> None:
        self.done += rows
        if not self.enabled or time.monotonic() - self.started < 1.0:
            return
        if self.total:
            share = self.done / self.total
            bar = "#" * int(share * 30)
            self.stream.write(f"\r[{bar:<30}] {share:6.1%} {self.done:,}/{self.total:,} rows")
        else:
            self.stream.write(f"\r{self.done:,} rows")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and time.monotonic() - self.started >= 1.0:
            self.stream.write("\n")


def _storage_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The settings' S3 options (endpoint) for ``s3://`` URLs; nothing for other URLs."""
    return options if url.startswith("s3://") else {}


def load_reference(
    path: str, config: Any = None, storage_options: dict[str, Any] | None = None, exclude: tuple[str, ...] = ()
) -> Profile:
    """A stored profile as it is, or data (Parquet/CSV) profiled now; which one the file's first bytes say,
    whatever its name. Columns in ``exclude``, the label (the config's, else ``label``) and columns that identify
    rows are left out of a profile made now; a stored profile left out what it left out when it was made."""
    import fsspec

    from driftline.detectors.profile import Profile
    from driftline.detectors.profiling import build_reference_profile
    from driftline.detectors.sources import detect_format, read_table

    options = _storage_options(path, storage_options or {})
    fmt, compression = detect_format(path, options)
    if fmt == "profile":
        with fsspec.open(path, "rb", compression=compression, **options) as handle:
            return Profile.from_bytes(handle.read())
    return build_reference_profile(
        read_table(path, options),
        config.features if config else None,
        exclude=exclude,
        label=config.label_column if config else "label",
    )


def cmd_profile(args: Any) -> int:
    import fsspec

    from driftline.detectors.profiling import build_reference_profile
    from driftline.detectors.sources import read_table
    from driftline.schemas.config import load_monitor_config

    config = load_monitor_config(args.config) if args.config else None
    started = time.monotonic()
    profile = build_reference_profile(
        read_table(args.data, _storage_options(args.data, args.storage_options)),
        config.features if config else None,
        exclude=tuple(args.exclude or ()) + tuple(config.exclude if config else ()),
        label=config.label_column if config else "label",
    )
    data = profile.to_bytes()
    with fsspec.open(args.output, "wb", **_storage_options(args.output, args.storage_options)) as handle:
        handle.write(data)
    print(
        f"profiled {profile.rows:,} rows × {len(profile.feature_types)} features in {time.monotonic() - started:.1f}s "
        f"→ {args.output} ({len(data) / 1024:.0f} KiB)"
    )
    return 0


def cmd_check(args: Any) -> int:
    from driftline.detectors.engine import compare_profiles
    from driftline.detectors.html import render_html
    from driftline.detectors.profiling import window_profile
    from driftline.detectors.sources import open_batches
    from driftline.schemas.config import load_monitor_config

    config = load_monitor_config(args.config) if args.config else None
    exclude = tuple(args.exclude or ()) + tuple(config.exclude if config else ())
    reference = load_reference(args.reference, config, args.storage_options, exclude)
    if exclude and reference.feature_types.keys() & set(exclude):  # a stored profile made without the exclusion
        reference = reference.without(exclude)
    with open_batches(
        args.current,
        columns=list(reference.feature_types),
        storage_options=_storage_options(args.current, args.storage_options),
        types=reference.arrow_types(),
    ) as (schema, total, batches):
        if not any(name in schema.names for name in reference.feature_types):
            raise ValueError(
                f"{args.current} has none of the reference's features ({', '.join(reference.feature_types)}); "
                f"its columns are {', '.join(schema.names) or 'none'}: pass the model's inputs and predictions"
            )
        progress = Progress(total)
        current = window_profile(reference, batches, progress=progress)
        progress.close()
    drift = config.drift if config else None
    report = compare_profiles(
        reference,
        current,
        alpha=args.alpha if args.alpha is not None else (drift.alpha if drift else 0.05),
        correction=args.correction or (drift.correction if drift else "fdr"),
        min_rows=drift.min_rows if drift else 100,
        tests=drift.tests if drift else None,
        thresholds=drift.thresholds if drift else None,
        effect_floors=drift.effect_floors if drift else None,
        min_effect={str(k): v for k, v in drift.min_effect.items()} if drift else None,
        multivariate=drift.multivariate if drift else True,
        current_columns=schema.names,
        metadata={
            "reference": args.reference,
            "current": args.current,
            "current_rows": current.rows,
            "reference_rows": reference.rows,
            **({"model": config.model} if config else {}),
        },
    ).to_dict()
    if args.json:
        text = json.dumps(report, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    if args.html:
        Path(args.html).write_text(render_html(report))
    if args.json != "-":
        _print_summary(report)
    return {"drift": EXIT_DRIFT, "insufficient_data": EXIT_INSUFFICIENT}.get(report["verdict"], EXIT_NO_DRIFT)


_VERDICT_WORDS = {"drift": "DRIFT", "minor": "minor", "no_drift": "ok", "insufficient_data": "insufficient data"}


def _print_summary(report: dict[str, Any]) -> None:
    print(
        f"{report['verdict'].replace('_', ' ').upper()}: {len(report['drifted_features'])} of "
        f"{len(report['features'])} features drifted "
        f"({report['current_rows']:,} current vs {report['reference_rows']:,} reference rows; "
        f"α={report['alpha']}, {report['correction']})"
    )
    for f in report["features"]:
        verdict = _VERDICT_WORDS.get(f["verdict"], f["verdict"])
        score = "" if f["p_value"] is None else f"  p={f['p_value']:.3g}"
        statistic = "–" if f["statistic"] is None else f"{f['statistic']:.4g}"
        effect = "" if f.get("effect") is None else f"  effect={f['effect']:.3g}"
        if f.get("effect_floor") is not None and f.get("effect") is not None:
            effect += f" (floor {f['effect_floor']:.3g})"
        print(
            f"  {f['feature']:24s} {f['test']:17s} {statistic:>10s}{score}  threshold={f['threshold']:.3g}"
            f"{effect}  {verdict}"
        )
    joint = report.get("multivariate") or {}
    if joint.get("status") == "ok":
        print(
            f"  {'(all features together)':24s} {joint['test']:17s} {joint['statistic']:>10.4g}  "
            f"p={joint['p_value']:.3g}  threshold={joint['threshold']:.3g}  effect={joint['effect']:.3g} "
            f"(floor {joint['effect_floor']:.3g})  {_VERDICT_WORDS.get(joint['verdict'], joint['verdict'])}"
        )
    elif joint.get("status") not in (None, "off"):
        print(f"  (all features together): {joint['status'].replace('_', ' ')}: {joint.get('message', '')}")
    if report.get("insufficient_data"):
        print(
            f"  too few values to judge: {', '.join(report['insufficient_data'])} (only gross change was tested; "
            "exit code 3)"
        )
    for issue in report["quality"]:
        print(f"  quality: {issue['message']}")
    if report.get("excluded_columns"):
        left_out = "; ".join(f"{c['column']} ({c['reason']})" for c in report["excluded_columns"])
        print(f"  not tested: {left_out}")


def run(command: Callable[[Any], int], args: Any, storage_options: dict[str, Any]) -> int:
    """Run a subcommand with the settings' storage options; any error becomes a message and exit code 2."""
    args.storage_options = storage_options
    try:
        return command(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
