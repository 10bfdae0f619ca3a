"""Reading any layout in bounded batches, and telling formats by their bytes (issue 13, item 6)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.detectors import build_reference_profile, sources, window_profile
from driftline.detectors.profile import CategoricalSummary, NumericSummary
from driftline.detectors.sources import detect_format, open_batches


def _table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(size=rows),
            "n": rng.poisson(3, rows),
            "plan": rng.choice(["free", "pro", "team"], rows),
            "zip": pa.array([f"{v:05d}" for v in rng.integers(0, 500, rows)]),
        }
    )


def _layouts(tmp_path, table: pa.Table) -> dict[str, str]:
    paths = {}
    for name, rows in (("default", 10_000), ("one group", table.num_rows), ("small groups", 700)):
        paths[name] = str(tmp_path / f"{name.replace(' ', '-')}.parquet")
        pq.write_table(table, paths[name], row_group_size=rows)
    paths["csv"] = str(tmp_path / "data.csv")
    pacsv.write_csv(table, paths["csv"])
    return paths


def _same(one, other) -> None:
    assert one.rows == other.rows
    for name, mine in one.summaries.items():
        theirs = other.summaries[name]
        assert (mine.count, mine.missing) == (theirs.count, theirs.missing), name
        if isinstance(mine, NumericSummary):
            assert np.array_equal(mine.bin_counts, theirs.bin_counts), name
            assert (mine.minimum, mine.maximum) == (theirs.minimum, theirs.maximum)
            assert mine.mean == pytest.approx(theirs.mean, rel=1e-12)
        else:
            assert isinstance(mine, CategoricalSummary)
            assert mine.counts == theirs.counts, name


def test_every_layout_gives_the_same_window_profile_in_batches_of_bounded_size(tmp_path, monkeypatch):
    # Small limits so a 40,000-row table exercises every path: whole row groups, slices of one big row group,
    # slices across many tiny ones, and coalesced CSV blocks.
    monkeypatch.setattr(sources, "ROW_GROUP_BYTES", 512 << 10)
    monkeypatch.setattr(sources, "BATCH_BYTES", 256 << 10)
    monkeypatch.setattr(sources, "MIN_BATCH_ROWS", 100)
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 64 << 10)
    table = _table(40_000)
    reference = build_reference_profile(_table(5000, seed=1))
    paths = _layouts(tmp_path, table)
    profiles, largest = {}, {}
    for name, path in paths.items():
        with open_batches(path, columns=list(reference.feature_types), types=reference.arrow_types()) as (
            _,
            total,
            batches,
        ):
            seen = list(batches)
        assert total == (None if name == "csv" else 40_000)
        assert sum(b.num_rows for b in seen) == 40_000
        largest[name] = max(b.nbytes for b in seen)
        profiles[name] = window_profile(reference, iter(seen))
    # Row groups of 10,000 rows (~320 KiB) are read whole; one 40,000-row group (~1.3 MB) in slices of ~256 KiB,
    # not whole (200+ MB at 1M rows × 26 columns); 700-row groups in slices across them.
    assert largest["default"] > 256 << 10
    assert largest["one group"] <= 2 * (256 << 10)
    assert largest["small groups"] <= 2 * (256 << 10)
    assert largest["csv"] <= 2 * (256 << 10) + (64 << 10) * 4
    for name in ("one group", "small groups", "csv"):
        _same(profiles["default"], profiles[name])


def test_a_csv_is_typed_once_not_by_its_first_block(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CSV_INFER_BYTES", 1 << 10)
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 10)
    rows = [f"{i},{i % 7},a" for i in range(2000)] + ["2000,1.5,b", "2001,,c"]
    path = tmp_path / "late-decimals.csv"
    path.write_text("id,n,plan\n" + "\n".join(rows) + "\n")
    # Integers in the head are read as float64: the decimal and the empty value 2,000 rows later still read.
    table = sources.read_table(str(path))
    assert table.schema.field("n").type == pa.float64() and table.num_rows == 2002
    assert table.column("n").to_pylist()[-2:] == [1.5, None]
    # Text in a column the reference calls numeric, past the head: that column is read again as text (the rows
    # already passed on skipped, none twice) and its values are counted as a type change, as for Parquet.
    path.write_text("id,n,plan\n" + "\n".join(rows) + "\n2002,seven,d\n")
    with open_batches(str(path), types={"n": pa.float64()}) as (_, _, batches):
        held = list(batches)
    assert sum(b.num_rows for b in held) == 2003
    assert held[-1].schema.field("n").type == pa.string()
    assert [v for b in held for v in b.column("id").to_pylist()] == list(range(2003))
    assert sources.read_table(str(path)).column("n").to_pylist()[-1] == "seven"
    # A row that does not parse is an error naming the file and what is expected.
    path.write_text("id,n,plan\n" + "\n".join(rows) + "\n2002,3\n")
    with pytest.raises(ValueError, match=r"late-decimals.csv: .*every row must have as many fields as the header"):
        sources.read_table(str(path))


def test_a_csv_window_counts_categories_as_its_reference_spells_them(tmp_path):
    rng = np.random.default_rng(9)

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "flag": rng.random(n) < 0.3,
                "when": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 5, n), unit="D"),
                "x": rng.normal(size=n),
                "n": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(3, n)),
            }
        )

    reference = build_reference_profile(frame(3000))
    frame(2000).to_csv(tmp_path / "window.csv", index=False)
    from driftline.detectors import compare_profiles

    with open_batches(
        str(tmp_path / "window.csv"), columns=list(reference.feature_types), types=reference.arrow_types()
    ) as (schema, _, batches):
        window = window_profile(reference, batches)
    report = compare_profiles(reference, window, current_columns=schema.names)
    # Before: 'true' (CSV text) was not the reference's 'True', so 'flag' had 4 categories and the check failed;
    # timestamps drifted with total variation 1.
    assert report.verdict == "no_drift", report.to_dict()
    assert set(window.summaries["flag"].counts) == {"True", "False"}
    assert report.multivariate is not None and "flag" in report.multivariate.features


def test_dictionary_encoded_categories_profile_like_plain_strings(tmp_path):
    frame = _table(20_000, seed=4).to_pandas()
    reference = build_reference_profile(_table(5000, seed=5))
    frame.to_parquet(tmp_path / "plain.parquet")
    frame.astype({"plan": "category", "zip": "category"}).to_parquet(tmp_path / "dictionary.parquet")
    windows = []
    for name in ("plain", "dictionary"):
        with open_batches(str(tmp_path / f"{name}.parquet"), columns=list(reference.feature_types)) as (_, _, batches):
            windows.append(window_profile(reference, batches))
    _same(*windows)


def test_an_empty_parquet_file_has_no_batches(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(_table(10).slice(0, 0), path)
    with open_batches(str(path)) as (schema, total, batches):
        assert total == 0 and list(batches) == [] and "x" in schema.names


def test_formats_are_told_by_their_first_bytes(tmp_path):
    table = _table(50)
    pq.write_table(table, tmp_path / "a.csv")  # misnamed on purpose
    pacsv.write_csv(table, tmp_path / "b.parquet")
    (tmp_path / "c").write_bytes(gzip.compress((tmp_path / "b.parquet").read_bytes()))
    (tmp_path / "d.parquet").write_bytes(build_reference_profile(table).to_bytes())
    (tmp_path / "e.csv").write_bytes(b"")
    (tmp_path / "f").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    import zipfile

    with zipfile.ZipFile(tmp_path / "h.zip", "w") as archive:
        archive.writestr("notes.txt", "not a profile")
    (tmp_path / "g.csv").write_text("name,city\nJosé,Zürich\n")
    assert detect_format(str(tmp_path / "a.csv")) == ("parquet", None)
    assert detect_format(str(tmp_path / "b.parquet")) == ("csv", None)
    assert detect_format(str(tmp_path / "c")) == ("csv", "gzip")
    assert detect_format(str(tmp_path / "d.parquet")) == ("profile", None)
    assert detect_format(str(tmp_path / "g.csv")) == ("csv", None)
    with pytest.raises(ValueError, match="is empty"):
        detect_format(str(tmp_path / "e.csv"))
    with pytest.raises(ValueError, match="neither Parquet"):
        detect_format(str(tmp_path / "f"))
    with pytest.raises(ValueError, match="a zip archive but not a driftline profile"):
        detect_format(str(tmp_path / "h.zip"))
    with pytest.raises(ValueError, match="is a directory; pass one Parquet or CSV file"):
        detect_format(str(tmp_path))
    # The misnamed files read as what they are.
    assert sources.read_table(str(tmp_path / "a.csv")).num_rows == 50
    assert sources.read_table(str(tmp_path / "c")).num_rows == 50
    with pytest.raises(ValueError, match="is a driftline profile, not data"):
        sources.read_table(str(tmp_path / "d.parquet"))


def test_the_decoded_row_estimate_covers_dictionary_encoded_strings(tmp_path):
    frame = pd.DataFrame({"x": np.arange(10_000, dtype=float), "city": ["a-rather-long-city-name"] * 10_000})
    frame.to_parquet(tmp_path / "t.parquet")
    parquet = pq.ParquetFile(tmp_path / "t.parquet")
    decoded = pa.Table.from_pandas(frame).nbytes / len(frame)
    estimate = sources.decoded_row_bytes(parquet, ["x", "city"])
    # Dictionary pages hold ~0 bytes a row for this column; the decoded string is 8 (offset) + 23 bytes.
    assert decoded <= estimate <= 1.5 * decoded


def test_to_numpy_and_indices_round_trip_without_pyarrows_pandas_path():
    from driftline.detectors.profile import indices, to_numpy

    table = pq.read_table(pa.BufferReader(_parquet_bytes(_table(100))))
    sliced = table.column("x").combine_chunks().slice(10, 20)  # an offset into the buffer
    assert np.array_equal(to_numpy(sliced), np.asarray(table.column("x"))[10:30])
    assert to_numpy(pa.chunked_array([pa.array([1, 2], pa.int32()), pa.array([3], pa.int32())])).tolist() == [1, 2, 3]
    assert to_numpy(pa.array([True, False, True])).tolist() == [True, False, True]
    with_nulls = to_numpy(pa.array([1.0, None, 3.0, None]).slice(1))  # nulls from the validity bitmap, at an offset
    assert np.isnan(with_nulls[0]) and with_nulls[1] == 3.0 and np.isnan(with_nulls[2])
    assert to_numpy(pa.array([1, None, 2], pa.int64())).tolist()[::2] == [1.0, 2.0]
    assert table.column("x").take(indices(np.array([3, 1]))).to_pylist() == table.column("x").to_pylist()[3:0:-2]


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_checking_a_window_never_imports_pandas(tmp_path):
    # pyarrow's to_numpy and pa.array import pandas on first use: ~50 MB and ~0.4 s that a check never needed.
    import subprocess
    import sys

    reference = tmp_path / "reference.parquet"
    pq.write_table(_table(3000, seed=6), reference)
    with_nulls = _table(3000, seed=7)
    x = with_nulls.column("x").to_pylist()
    with_nulls = with_nulls.set_column(0, "x", pa.array([None if i % 10 == 0 else v for i, v in enumerate(x)]))
    pq.write_table(with_nulls, tmp_path / "current.parquet")  # nulls in a numeric column (fill_null imports pandas)
    pacsv.write_csv(_table(3000, seed=8), tmp_path / "current.csv")
    from driftline.infra.drift_cli import load_reference

    (tmp_path / "reference.npz").write_bytes(load_reference(str(reference)).to_bytes())
    script = f"""
import sys
from driftline.detectors import Profile, compare_profiles, window_profile
from driftline.detectors.sources import open_batches
reference = Profile.from_bytes(open({str(tmp_path / "reference.npz")!r}, "rb").read())
for name in ("current.parquet", "current.csv"):
    with open_batches({str(tmp_path)!r} + "/" + name, columns=list(reference.feature_types),
                      types=reference.arrow_types()) as (schema, _, batches):
        current = window_profile(reference, batches)
    compare_profiles(reference, current, current_columns=schema.names)
print("pandas" in sys.modules)
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
