from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from driftline.schemas.records import (
    Alert,
    DeadLetter,
    ModelVersion,
    RecordError,
    RetrainRequest,
    original_text,
)
from driftline.schemas.write_jsonschema import FOLDER, RECORDS, render
from driftline.schemas.write_jsonschema import record_schemas as json_schemas

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def test_a_record_round_trips_through_its_wire_form():
    alert = Alert(alert_id="a1", kind="drift", model="m", window_start=T0, window_end=T0, text="hello")
    assert Alert.parse(alert.to_json()) == alert
    assert Alert.parse(alert.to_jsonable()) == alert
    assert alert.to_jsonable()["window_start"] == "2026-05-01T10:00:00Z"


def test_a_newer_shape_names_the_unknown_field():
    payload = {**RetrainRequest(model="m", reason="r", report="x").to_jsonable(), "priority": "high"}
    with pytest.raises(RecordError) as error:
        RetrainRequest.parse(payload)
    assert str(error.value) == (
        "retrain_request record: field 'priority' is unknown to this driftline (written by a newer release?)"
    )


def test_an_older_shape_names_the_missing_field():
    payload = RetrainRequest(model="m", reason="r", report="x").to_jsonable()
    del payload["report"]
    with pytest.raises(RecordError, match=r"^retrain_request record: field 'report' is missing \(written by an older"):
        RetrainRequest.parse(payload)


def test_another_schema_version_is_refused_by_name():
    payload = {**DeadLetter(reason="r", source="worker", original="x").to_jsonable(), "schema_version": 2}
    with pytest.raises(RecordError, match="dead_letter record: field 'schema_version': this driftline reads version 1"):
        DeadLetter.parse(payload)


def test_wrong_types_name_the_field_and_the_value():
    with pytest.raises(RecordError, match="model_version record: field 'sha256': String should match pattern"):
        ModelVersion.parse({"model": "m", "version": "v1", "artifact": "model.pkl", "sha256": "abc"})
    with pytest.raises(RecordError, match="not valid JSON"):
        Alert.parse(b"{")


def test_naive_times_are_read_as_utc():
    alert = Alert.parse(
        {"alert_id": "a", "kind": "drift", "model": "m", "window_start": "2026-05-01T10:00:00", "window_end": T0}
    )
    assert alert.window_start == T0


def test_checked_in_record_schemas_are_current_and_accept_what_the_models_write():
    for name, schema in json_schemas().items():
        path = FOLDER / name
        assert path.exists(), f"{name} missing: run 'make schemas'"
        assert path.read_text() == render(schema), f"{name} is stale: run 'make schemas'"
    assert len(json_schemas()) == len(RECORDS)
    dead = DeadLetter(reason="bad", source="ingest", topic="t", partition=0, offset=4, original={"a": 1})
    jsonschema.validate(json.loads(dead.to_json()), json_schemas()["dead_letter.v1.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**dead.to_jsonable(), "extra": 1}, json_schemas()["dead_letter.v1.json"])


def test_a_dead_letter_keeps_at_most_64_kib_of_the_original():
    assert original_text(b"x" * 70_000) == "x" * 65_536 + "…[4,464 more bytes not kept]"
    assert original_text(b"\xff\xfe") == "fffe"  # not UTF-8: hex
    assert original_text(b'{"a": 1}') == '{"a": 1}'
