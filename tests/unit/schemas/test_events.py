from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from driftline.schemas.events import EventError, LabelEvent, PredictionEvent, encode_event, json_schemas, parse_event
from driftline.schemas.write_jsonschema import FOLDER, render

VALID = {
    "event_type": "prediction",
    "model": "churn",
    "model_version": "v1",
    "request_id": "r1",
    "event_time": "2026-05-01T10:00:00Z",
    "features": {"age": 41, "plan": "pro"},
    "prediction": 0.8,
    "latency_ms": 12.5,
    "error": None,
}


def test_valid_prediction_round_trips_through_the_wire_form():
    event = parse_event(json.dumps(VALID))
    assert isinstance(event, PredictionEvent)
    assert event.event_time == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_event(encode_event(event)) == event


def test_naive_event_time_is_read_as_utc():
    event = parse_event({**VALID, "event_time": "2026-05-01T10:00:00"})
    assert event.event_time.tzinfo == UTC


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"latency_ms": -1}, "field 'latency_ms': Input should be greater than or equal to 0"),
        ({"model": ""}, "field 'model': Value error, '' is not a valid name: use 1 to 128 letters"),
        ({"model_version": "../../outside"}, "field 'model_version': Value error, '../../outside' is not a valid"),
        ({"model": "churn model"}, "'churn model' is not a valid name"),
        ({"model": "-rf"}, "'-rf' is not a valid name"),
        ({"model_version": "v" * 129}, "is not a valid name"),
        ({"event_time": "yesterday"}, "field 'event_time'"),
        ({"surprise": 1}, "field 'surprise': Extra inputs are not permitted"),
        ({"schema_version": 2}, "field 'schema_version': this driftline reads version 1, got 2"),
        ({"event_type": "click"}, "field 'event_type': expected one of ['label', 'prediction'], got 'click'"),
    ],
)
def test_invalid_events_name_the_field(change, expected):
    with pytest.raises(EventError) as error:
        parse_event({**VALID, **change})
    assert expected in error.value.reason


def test_missing_field_and_bad_json_are_explained():
    with pytest.raises(EventError, match="field 'request_id': Field required"):
        parse_event({k: v for k, v in VALID.items() if k != "request_id"})
    with pytest.raises(EventError, match="not valid JSON"):
        parse_event(b"{nope")
    with pytest.raises(EventError, match="expected 'label' on this topic, got 'prediction'"):
        parse_event(VALID, expected="label")


def test_checked_in_json_schemas_match_the_python_models():
    for name, schema in json_schemas().items():
        assert (FOLDER / name).read_text() == render(schema), f"regenerate with `make schemas` ({name})"


def test_json_schema_accepts_what_python_accepts_and_rejects_what_it_rejects():
    prediction_schema = json.loads((FOLDER / "prediction.v1.json").read_text())
    label_schema = json.loads((FOLDER / "label.v1.json").read_text())
    jsonschema.validate(json.loads(encode_event(parse_event(VALID))), prediction_schema)
    label = LabelEvent(model="churn", model_version="v1", request_id="r1", event_time=datetime(2026, 5, 1), label=1)
    jsonschema.validate(json.loads(encode_event(label)), label_schema)
    for bad in (
        {**VALID, "latency_ms": -1},
        {**VALID, "surprise": 1},
        {k: v for k, v in VALID.items() if k != "model"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, prediction_schema)
        with pytest.raises(EventError):
            parse_event(bad)
