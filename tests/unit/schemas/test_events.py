from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from driftline.infra.fuzz import generate, materialize
from driftline.schemas.events import (
    EventError,
    EventLimits,
    LabelEvent,
    PredictionEvent,
    as_record,
    encode_event,
    json_schemas,
    parse_event,
    read_event,
)
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


class TestTimeBounds:
    LIMITS = EventLimits(max_bytes=1000, max_age=timedelta(days=1), max_future=timedelta(minutes=5))
    NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)

    def problem(self, event_time: datetime, broker_time: datetime | None) -> str | None:
        return self.LIMITS.time_problem(event_time, broker_time, now=self.NOW)

    def test_on_time_events_and_the_edges_pass(self):
        assert self.problem(self.NOW, self.NOW) is None
        assert self.problem(self.NOW + timedelta(minutes=5), self.NOW) is None
        assert self.problem(self.NOW - timedelta(days=1), self.NOW) is None

    def test_an_event_past_the_brokers_time_is_refused_with_the_setting_that_allows_it(self):
        reason = self.problem(self.NOW + timedelta(minutes=5, seconds=1), self.NOW)
        assert reason is not None and "after the broker received it" in reason
        assert "DRIFTLINE_MAX_EVENT_FUTURE_SECONDS" in reason

    def test_a_producer_that_stamps_the_message_in_2099_too_cannot_move_time(self):
        # A message's CreateTime is set by the producer: the reader's clock bounds the future as well.
        far = datetime(2099, 1, 1, tzinfo=UTC)
        reason = self.problem(far, far)
        assert reason is not None and "after it was read" in reason

    def test_a_message_without_a_broker_time_is_bounded_by_the_readers_clock_and_has_no_age_limit(self):
        assert "after it was read" in (self.problem(datetime(2099, 1, 1, tzinfo=UTC), None) or "")
        assert self.problem(self.NOW + timedelta(minutes=5), None) is None
        assert self.problem(datetime(1970, 1, 1, tzinfo=UTC), None) is None

    def test_an_event_older_than_the_age_limit_is_refused(self):
        reason = self.problem(self.NOW - timedelta(days=1, seconds=1), self.NOW)
        assert reason is not None and "before the broker received it" in reason


# -- read_event (the hot path) decides as parse_event does ----------------------------------------------------
def _decision(reader, raw: bytes) -> tuple[str, object]:
    try:
        return "accepted", reader(raw)
    except EventError as exc:
        return "refused", exc.reason


def _same_decision(raw: bytes, expected: str = "prediction") -> tuple[str, object]:
    fast = _decision(lambda r: read_event(r, expected, max_bytes=16_384), raw)
    slow = _decision(lambda r: as_record(parse_event(r, expected=expected, max_bytes=16_384)), raw)
    assert fast == slow, raw
    if fast[0] == "accepted":  # equal values of equal types (1 and 1.0 and True compare equal)
        record = fast[1]
        reference = slow[1]
        for field in record.__struct_fields__:
            assert type(getattr(record, field)) is type(getattr(reference, field)), (field, raw)
    return fast


@pytest.mark.parametrize(
    "event_time",
    [
        "2026-05-01T10:00:00Z",
        "2026-05-01T10:00:00.5Z",
        "2026-05-01T10:00:00.123456Z",
        "2026-05-01T10:00:00.1234567Z",  # 7 decimals: not the fast path's form; parse_event decides
        "2026-05-01T10:00:00+02:00",
        "2026-05-01T10:00:00-11:30",
        "2026-05-01T10:00:00",  # naive: UTC
        "2026-05-01 10:00:00Z",
        "2026-05-01T10:00:00z",
        "2026-05-01T24:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-05-01T23:59:60Z",
        "2026-05-01",
        "20260501T100000Z",
        "1777629600",
        "",
    ],
)
def test_read_event_decides_every_time_form_as_parse_event_does(event_time):
    payload = {
        "event_type": "prediction",
        "model": "churn",
        "model_version": "v1",
        "request_id": "r1",
        "event_time": event_time,
        "features": {"x": 1},
        "prediction": 0.5,
        "latency_ms": 3,
    }
    _same_decision(json.dumps(payload).encode())
    _same_decision(json.dumps({**payload, "event_time": 1777629600}).encode())


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"latency_ms": 12},
        {"latency_ms": True},
        {"latency_ms": "12.5"},
        {"latency_ms": -0.0},
        {"latency_ms": 1e308},
        {"prediction": True},
        {"prediction": 1},
        {"prediction": "1"},
        {"prediction": 2**70},
        {"features": {"x": 2**70}},
        {"features": {"": 1}},
        {"features": {"x" * 257: 1}},
        {"features": {"x": [1]}},
        {"request_id": "é" * 256},
        {"request_id": "é" * 257},
        {"model": "../x"},
        {"model": "a" * 129},
        {"model_version": "v 1"},
        {"error": 5},
        {"schema_version": 2},
        {"event_type": "label"},
        {"extra": 1},
    ],
)
def test_read_event_decides_every_field_form_as_parse_event_does(change):
    payload = {
        "model": "churn",
        "model_version": "v1",
        "request_id": "r1",
        "event_time": "2026-05-01T10:00:00Z",
        "features": {"x": 1.5, "plan": "pro", "flag": False, "gone": None},
        "prediction": 0.5,
        "latency_ms": 3.25,
        **change,
    }
    _same_decision(json.dumps(payload).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"a","model":"churn","model_version":"v1","request_id":"r","event_time":"2026-05-01T10:00:00Z",'
        b'"features":{},"prediction":1,"latency_ms":1}',  # a repeated key: the last one counts, in both
        b'{"model":"churn","model_version":"v1","request_id":"r","event_time":"2026-05-01T10:00:00Z",'
        b'"features":{"x":1e999},"prediction":1,"latency_ms":1}',  # an infinite feature value
        b'{"model":"churn","model_version":"v1","request_id":"r","event_time":"2026-05-01T10:00:00Z",'
        b'"features":{"x":"\\ud800"},"prediction":1,"latency_ms":1}',  # a lone surrogate
        b'{"model":"churn","model_version":"v1","request_id":"r","event_time":"2026-05-01T10:00:00Z",'
        b'"features":{},"prediction":1,"latency_ms":NaN}',
        b"[]",
        b"\xff\xfe",
        b"",
    ],
)
def test_read_event_decides_odd_json_as_parse_event_does(raw):
    _same_decision(raw)


def test_read_event_decides_labels_as_parse_event_does():
    label = {"model": "churn", "model_version": "v1", "request_id": "r1", "event_time": "2026-05-01T10:00:00Z"}
    for value in [1, 0.5, "yes", True, None, [1]]:
        _same_decision(json.dumps({**label, "label": value}).encode(), "label")
    _same_decision(json.dumps({**label, "label": 1, "features": {}}).encode(), "label")


def test_read_event_decides_the_fuzzers_events_as_parse_event_does():
    """The hostile and valid events `make fuzz` sends, 600 of them from a fixed seed."""
    now = datetime(2026, 5, 1, 10, tzinfo=UTC)
    accepted = 0
    for index, (kind, spec) in enumerate(generate(600, run_seed=5)):
        case = materialize(index, kind, spec, now)
        if case.tombstone:
            continue
        raw = case.raw if case.raw is not None else json.dumps(case.payload, default=str).encode()
        accepted += _same_decision(raw)[0] == "accepted"
    assert accepted > 200  # the valid ones, and the time mutations (judged later, against the broker's time)
