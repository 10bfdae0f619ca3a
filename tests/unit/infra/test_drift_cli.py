from __future__ import annotations

import json

import numpy as np
import pandas as pd

from driftline.infra.cli import main


def test_cli_profile_and_check_exit_codes(tmp_path, capsys):
    rng = np.random.default_rng(13)
    pd.DataFrame(
        {"x": rng.normal(size=4000), "plan": rng.choice(["a", "b"], 4000), "label": rng.integers(0, 2, 4000)}
    ).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame({"x": rng.normal(size=3000), "plan": rng.choice(["a", "b"], 3000)}).to_csv(
        tmp_path / "same.csv", index=False
    )
    pd.DataFrame({"x": rng.normal(2, 1, 3000), "plan": rng.choice(["a", "b"], 3000)}).to_parquet(
        tmp_path / "moved.parquet"
    )
    assert (
        main(["profile", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "ref.npz"), "--exclude", "label"]) == 0
    )
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "same.csv")]) == 0
    assert (
        main(
            [
                "check",
                str(tmp_path / "ref.npz"),
                str(tmp_path / "moved.parquet"),
                "--json",
                str(tmp_path / "r.json"),
                "--html",
                str(tmp_path / "r.html"),
            ]
        )
        == 1
    )
    assert json.loads((tmp_path / "r.json").read_text())["drifted_features"] == ["x"]
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    capsys.readouterr()
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "missing.parquet")]) == 2
    (tmp_path / "data.bin").write_bytes(b"\x00\x01\x02 not data")
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "data.bin")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "ref.npz")]) == 2
    assert "is a driftline profile, not data" in capsys.readouterr().err


def test_check_recognises_a_profile_and_data_by_their_content_whatever_their_names(tmp_path, capsys):
    import gzip

    rng = np.random.default_rng(15)
    train = pd.DataFrame({"x": rng.normal(size=2000), "plan": rng.choice(["a", "b"], 2000)})
    train.to_parquet(tmp_path / "train.parquet")
    assert main(["profile", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "reference.profile")]) == 0
    moved = pd.DataFrame({"x": rng.normal(2, 1, 1500), "plan": rng.choice(["a", "b"], 1500)})
    moved.to_parquet(tmp_path / "window.dat")
    (tmp_path / "window-csv.txt").write_text(moved.to_csv(index=False))
    (tmp_path / "window-csv.blob").write_bytes(gzip.compress(moved.to_csv(index=False).encode()))
    capsys.readouterr()
    for current in ("window.dat", "window-csv.txt", "window-csv.blob"):
        # the profile named .profile, the data named anything: both read for what they are
        assert main(["check", str(tmp_path / "reference.profile"), str(tmp_path / current), "--json", "-"]) == 1
        assert json.loads(capsys.readouterr().out)["drifted_features"] == ["x"]
    # Training data given as the reference (named like a profile) is profiled on the fly.
    (tmp_path / "train.npz").write_bytes((tmp_path / "train.parquet").read_bytes())
    assert main(["check", str(tmp_path / "train.npz"), str(tmp_path / "window.dat")]) == 1
    # A zip that is not a profile says so.
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    assert main(["check", str(tmp_path / "other.npz"), str(tmp_path / "window.dat")]) == 2
    assert "not a driftline profile" in capsys.readouterr().err
    # Data without any of the reference's features is an error that names them, not "insufficient data".
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "other.parquet")
    assert main(["check", str(tmp_path / "reference.profile"), str(tmp_path / "other.parquet")]) == 2
    assert "has none of the reference's features (x, plan); its columns are a" in capsys.readouterr().err


def test_check_exits_3_for_a_window_too_small_to_judge_and_1_for_gross_change_in_it(tmp_path, capsys):
    rng = np.random.default_rng(14)
    pd.DataFrame({"x": rng.normal(size=4000), "plan": rng.choice(["a", "b"], 4000)}).to_parquet(tmp_path / "t.parquet")
    pd.DataFrame({"x": rng.normal(size=30), "plan": rng.choice(["a", "b"], 30)}).to_parquet(tmp_path / "few.parquet")
    far = pd.DataFrame({"x": rng.normal(40, 1, 30), "plan": rng.choice(["a", "b"], 30)})
    far.to_parquet(tmp_path / "far.parquet")
    assert main(["profile", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "ref.npz")]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "few.parquet"), "--json", "-"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "insufficient_data" and sorted(report["insufficient_data"]) == ["plan", "x"]
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "far.parquet")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("DRIFT: 1 of 2 features drifted") and "out_of_range" in out
    assert "too few values to judge: plan" in out


def test_check_leaves_out_ids_and_the_label_finds_one_shifted_feature_and_takes_exclude(tmp_path, capsys):
    """A training CSV and production CSVs whose ids continue where training's stopped."""
    rng = np.random.default_rng(21)

    def rows(n: int, first: int, shift: float = 0.0, *, label: bool = False) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "customer_id": np.arange(first, first + n),
                "txn": [f"t{first + i}" for i in range(n)],
                "amount": rng.lognormal(3, 1, n),
                "age": rng.integers(18, 90, n),
                "tenure": rng.normal(24, 6, n) + shift,
                "region": rng.choice(["n", "s", "e", "w"], n),
            }
        )
        if label:
            frame["label"] = rng.integers(0, 2, n)
        return frame

    rows(5000, 0, label=True).to_csv(tmp_path / "train.csv", index=False)
    rows(3000, 5000).to_csv(tmp_path / "today.csv", index=False)
    rows(3000, 8000, shift=3.0).to_csv(tmp_path / "shifted.csv", index=False)
    capsys.readouterr()

    assert main(["check", str(tmp_path / "train.csv"), str(tmp_path / "today.csv")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NO DRIFT: 0 of 4 features drifted")
    assert (
        "  not tested: label (the label column (what the model predicts, not an input)); customer_id (an identifier: a "
        "different whole number on every row, increasing (a row number or a sequence)); txn (an identifier: a "
        "different value on every row)\n"
    ) in out
    assert "quality:" not in out

    report = tmp_path / "shifted.json"
    assert main(["check", str(tmp_path / "train.csv"), str(tmp_path / "shifted.csv"), "--json", str(report)]) == 1
    assert json.loads(report.read_text())["drifted_features"] == ["tenure"]

    capsys.readouterr()
    args = ["check", str(tmp_path / "train.csv"), str(tmp_path / "shifted.csv"), "--exclude", "tenure"]
    assert main(args) == 0
    assert "tenure (left out as asked)" in capsys.readouterr().out
    # A stored profile made without the exclusion gets it at check time.
    assert main(["profile", str(tmp_path / "train.csv"), "-o", str(tmp_path / "train.profile")]) == 0
    assert main(["check", str(tmp_path / "train.profile"), str(tmp_path / "shifted.csv"), "--exclude", "tenure"]) == 0
