"""Columns that identify rows are recognised in the reference and left out, each named with its reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftline.detectors.engine import compare_profiles
from driftline.detectors.identifiers import ID_NAME, identifier_reason
from driftline.detectors.profiling import build_reference_profile, window_profile


@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("session", [f"s-{i:05d}" for i in range(500)], "an identifier: a different value on every row"),
        (
            "n",
            list(range(1000, 1500)),
            "an identifier: a different whole number on every row, increasing (a row number or a sequence)",
        ),
        (
            "countdown",
            list(range(500, 0, -1)),
            "an identifier: a different whole number on every row, decreasing (a row number or a sequence)",
        ),
        (
            "customerId",
            [i % 400 for i in range(500)],
            "an identifier: named like an id, 400 distinct values in 500 rows",
        ),
        # Features, whatever else they look like:
        ("income", list(np.random.default_rng(1).permutation(500) * 37), None),  # unique whole numbers, unordered
        ("store_id", [i % 40 for i in range(500)], None),  # an id name, 40 stores: a segment-like feature
        ("score", list(np.random.default_rng(2).normal(size=500)), None),  # continuous: unique, never taken
        ("plan", ["free", "pro"] * 250, None),
        ("short", [f"u{i}" for i in range(19)], None),  # too few rows to tell
    ],
)
def test_identifier_reason(name, values, reason):
    assert identifier_reason(name, pa.chunked_array([pa.array(values)])) == reason


def test_dictionary_encoded_text_and_nulls():
    ids = pa.array([f"r{i}" if i % 10 else None for i in range(300)]).dictionary_encode()
    assert identifier_reason("request", ids) == "an identifier: a different value on every row"


@pytest.mark.parametrize(
    ("name", "matches"),
    [("id", True), ("ID", True), ("user_id", True), ("request-id", True), ("orderID", True), ("uuid", True),
     ("Unnamed: 0", True), ("row_number", True), ("paid", False), ("valid", False), ("grid", False),
     ("idle", False), ("identity", False), ("monkey", False)],
)  # fmt: skip
def test_id_names(name, matches):
    assert bool(ID_NAME.search(name)) is matches


def training(rng: np.random.Generator, rows: int, first_id: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row_id": np.arange(first_id, first_id + rows),
            "request": [f"q{first_id + i}" for i in range(rows)],
            "x": rng.normal(size=rows),
            "plan": rng.choice(["free", "pro"], rows),
            "label": rng.integers(0, 2, rows),
        }
    )


def test_the_reference_leaves_out_the_label_and_identifiers_and_the_report_names_them():
    rng = np.random.default_rng(3)
    reference = build_reference_profile(training(rng, 3000, 0), label="label")
    assert sorted(reference.feature_types) == ["plan", "x"]
    assert reference.excluded == {
        "label": "the label column (what the model predicts, not an input)",
        "row_id": "an identifier: a different whole number on every row, increasing (a row number or a sequence)",
        "request": "an identifier: a different value on every row",
    }
    # Production rows whose ids continue where training's stopped: no drift, and no "extra column" finding.
    production = training(rng, 2000, 3000).drop(columns="label")
    current = window_profile(reference, iter(pa.Table.from_pandas(production).to_batches()))
    report = compare_profiles(reference, current, current_columns=list(production.columns)).to_dict()
    assert report["verdict"] == "no_drift" and report["quality"] == []
    assert [c["column"] for c in report["excluded_columns"]] == ["label", "row_id", "request"]


def test_named_features_are_the_users_choice_but_the_label_and_exclusions_stay_out():
    rng = np.random.default_rng(4)
    reference = build_reference_profile(
        training(rng, 500, 0), {"row_id": "numeric", "x": "numeric", "label": "numeric"}, exclude=["x"], label="label"
    )
    assert list(reference.feature_types) == ["row_id"]
    assert reference.excluded == {
        "x": "left out as asked",
        "label": "the label column (what the model predicts, not an input)",
    }


def test_a_reference_of_identifiers_only_says_what_to_do():
    with pytest.raises(
        ValueError, match=r"^no column of the reference is left to test: id \(an identifier: .*'features:'"
    ):
        build_reference_profile(pd.DataFrame({"id": range(100)}))


def test_the_exclusions_survive_a_stored_profile():
    from driftline.detectors.profile import Profile

    reference = build_reference_profile(training(np.random.default_rng(5), 500, 0), label="label")
    assert Profile.from_bytes(reference.to_bytes()).excluded == reference.excluded
    fewer = reference.without(["plan"])
    assert list(fewer.feature_types) == ["x"] and fewer.excluded["plan"] == "left out as asked"
