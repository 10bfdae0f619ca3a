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
    assert main(["check", str(tmp_path / "ref.npz"), str(tmp_path / "data.txt")]) == 2
    assert "expected a .parquet or .csv path" in capsys.readouterr().err


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
