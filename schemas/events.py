"""Versioned event contracts: what a serving node publishes.

Every event carries ``schema_version``, ``model``, ``model_version``,
``request_id`` and ``event_time``. Validation errors name the field, say what
was wrong and what would be right (see :func:`parse_event`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from driftline.schemas.names import NAME, ModelName
from driftline.schemas.settings import Settings

SCHEMA_VERSION: Final = 1

FeatureValue = float | int | str | bool | None
Name = Annotated[str, Field(min_length=1, max_length=256)]


TOMBSTONE_REASON = "tombstone: the message has no value; expected one JSON event per message"


class EventError(ValueError):
    """An event that does not match its schema; ``reason`` is meant for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    schema_version: Literal[1] = SCHEMA_VERSION
    model: ModelName  # one rule for names everywhere: schemas/names.py
    model_version: ModelName
    request_id: Name
    event_time: datetime = Field(description="When the prediction was made; UTC (naive times are read as UTC).")

    @field_validator("event_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class PredictionEvent(_Event):
    """One prediction served by a model version."""

    event_type: Literal["prediction"] = "prediction"
    features: dict[Name, FeatureValue]
    prediction: float | int | str | bool | None
    # Strict: "12.5" or true is a producer bug, not a latency.
    latency_ms: float = Field(ge=0, strict=True, description="Wall time of the prediction call in milliseconds.")
    error: str | None = Field(
        default=None,
        strict=True,
        description="Error class or message when the prediction failed; null on success.",
    )
    fallback: bool = Field(
        default=False,
        strict=True,
        description="True when the request was answered by a default (a fallback), not by the model.",
    )
    sample_rate: float = Field(
        default=1.0,
        gt=0,
        le=1,
        strict=True,
        description="The share of such requests the producer keeps (1: every one); each event stands for "
        "1/sample_rate requests, so counts stay unbiased.",
    )
    shadow: bool = Field(
        default=False,
        strict=True,
        description="True for a shadow prediction: the request was mirrored to this version and its answer was "
        "never returned (the version that answered logs its own event with the same request id).",
    )

    @field_validator("latency_ms")
    @classmethod
    def _finite_latency(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of milliseconds")
        return value


class LabelEvent(_Event):
    """The ground truth for an earlier prediction, joined on ``request_id``."""

    event_type: Literal["label"] = "label"
    label: float | int | str | bool


Event = PredictionEvent | LabelEvent
_BY_TYPE: dict[str, type[PredictionEvent] | type[LabelEvent]] = {"prediction": PredictionEvent, "label": LabelEvent}


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "event"
        got = item.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r:.80})"
        parts.append(f"field '{where}': {item['msg']}{got_text}")
    return "; ".join(parts)


def _no_constants(name: str) -> Any:
    raise EventError(f"{name} is not a JSON number; send a finite number, or null for a missing value")


def parse_event(
    raw: bytes | str | dict[str, Any], expected: str | None = None, *, max_bytes: int | None = None
) -> PredictionEvent | LabelEvent:
    """Decode and validate one event.

    Parameters
    ----------
    raw:
        JSON bytes/str or an already decoded mapping.
    expected:
        ``"prediction"`` or ``"label"`` to insist on one type; ``None`` reads
        the ``event_type`` field.
    max_bytes:
        Refuse encoded events larger than this (``Settings.max_event_bytes``).

    Raises
    ------
    EventError
        With a reason that names the field, what was wrong and what is expected.
    """
    if isinstance(raw, bytes | str):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if max_bytes is not None and size > max_bytes:
            raise EventError(
                f"event of {size:,} bytes exceeds the limit of {max_bytes:,} bytes (DRIFTLINE_MAX_EVENT_BYTES); "
                "send features that describe the request, not its payload"
            )
        try:
            data = json.loads(raw, parse_constant=_no_constants)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EventError(f"not valid JSON ({exc}); expected one JSON object per message") from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise EventError(f"expected a JSON object, got {type(data).__name__}")
    event_type = data.get("event_type", expected)
    if expected is not None and event_type != expected:
        raise EventError(f"field 'event_type': expected '{expected}' on this topic, got {event_type!r}")
    model_class = _BY_TYPE.get(event_type) if isinstance(event_type, str) else None
    if model_class is None:
        raise EventError(f"field 'event_type': expected one of {sorted(_BY_TYPE)}, got {event_type!r}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise EventError(
            f"field 'schema_version': this driftline reads version {SCHEMA_VERSION}, got {version!r}; "
            "upgrade the consumer or publish with a matching producer"
        )
    try:
        return model_class.model_validate(data)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


# -- the hot path: one decode into typed structs --------------------------------------------------------------
#
# The worker and ingest read every event of the topics, and parse_event (json.loads, then pydantic) costs about
# 35 µs an event. read_event decodes and checks in one msgspec pass (about 4 µs) into plain records. It never
# decides differently from parse_event: it takes the fast path only for events in the form driftline's producer
# writes (event_time as RFC 3339 with 'T', at most 6 decimals, 'Z' or an offset), and every event msgspec or the
# checks after it refuse is handed to parse_event, which accepts it (other forms pydantic reads, such as a Unix
# time) or refuses it with its reason. tests/unit/schemas/test_events.py holds the two to the same answers.


class PredictionRecord(msgspec.Struct, frozen=True, gc=False):
    """A valid prediction as the stream worker and ingest hold it (the fields of :class:`PredictionEvent`)."""

    model: str
    model_version: str
    request_id: str
    event_time: datetime
    features: dict[str, FeatureValue]
    prediction: float | int | str | bool | None
    latency_ms: float
    error: str | None = None
    fallback: bool = False
    sample_rate: float = 1.0
    shadow: bool = False


class LabelRecord(msgspec.Struct, frozen=True, gc=False):
    """A valid label as ingest holds it (the fields of :class:`LabelEvent`)."""

    model: str
    model_version: str
    request_id: str
    event_time: datetime
    label: float | int | str | bool


_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _WirePrediction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    model: str
    model_version: str
    request_id: _Text
    event_time: str
    features: dict[_Text, FeatureValue]
    prediction: float | int | str | bool | None
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    error: str | None = None
    fallback: bool = False
    sample_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    shadow: bool = False
    schema_version: Literal[1] = SCHEMA_VERSION
    event_type: Literal["prediction"] = "prediction"


class _WireLabel(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    model: str
    model_version: str
    request_id: _Text
    event_time: str
    label: float | int | str | bool
    schema_version: Literal[1] = SCHEMA_VERSION
    event_type: Literal["label"] = "label"


_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "prediction": msgspec.json.Decoder(_WirePrediction),
    "label": msgspec.json.Decoder(_WireLabel),
}
_PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?")


_GOOD_NAMES: set[str] = set()  # names that passed NAME: a stream repeats a few models and versions


def _good_name(name: str) -> bool:
    if name in _GOOD_NAMES:
        return True
    if not NAME.fullmatch(name):
        return False
    if len(_GOOD_NAMES) >= 10_000:  # bounded: a stream of ever-new names only loses the shortcut
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(name)
    return True


def _fast(raw: bytes | str, expected: str) -> PredictionRecord | LabelRecord | None:
    """The event when it is valid and in the producer's form; ``None`` sends it to :func:`parse_event`."""
    try:
        wire = _DECODERS[expected].decode(raw)
    except (msgspec.MsgspecError, ValueError):  # ValueError: bytes that are not UTF-8
        return None
    if not (_PLAIN_TIME.fullmatch(wire.event_time) and _good_name(wire.model) and _good_name(wire.model_version)):
        return None
    try:
        event_time = datetime.fromisoformat(wire.event_time)
    except ValueError:
        return None
    event_time = event_time.replace(tzinfo=UTC) if event_time.tzinfo is None else event_time.astimezone(UTC)
    if isinstance(wire, _WireLabel):
        return LabelRecord(wire.model, wire.model_version, wire.request_id, event_time, wire.label)
    if not math.isfinite(wire.latency_ms):
        return None
    return PredictionRecord(
        wire.model,
        wire.model_version,
        wire.request_id,
        event_time,
        wire.features,
        wire.prediction,
        float(wire.latency_ms),
        wire.error,
        wire.fallback,
        float(wire.sample_rate),
        wire.shadow,
    )


def as_record(event: PredictionEvent | LabelEvent) -> PredictionRecord | LabelRecord:
    if isinstance(event, LabelEvent):
        return LabelRecord(event.model, event.model_version, event.request_id, event.event_time, event.label)
    return PredictionRecord(
        event.model,
        event.model_version,
        event.request_id,
        event.event_time,
        dict(event.features),
        event.prediction,
        event.latency_ms,
        event.error,
        event.fallback,
        event.sample_rate,
        event.shadow,
    )


def read_event(raw: bytes, expected: str, *, max_bytes: int | None = None) -> PredictionRecord | LabelRecord:
    """:func:`parse_event` for one message of the ``expected`` type's topic, at the speed the stream needs:
    the same events are accepted, with the same values, and the same are refused, with the same reasons."""
    if max_bytes is None or len(raw) <= max_bytes:
        fast = _fast(raw, expected)
        if fast is not None:
            return fast
    return as_record(parse_event(raw, expected=expected, max_bytes=max_bytes))


def read_prediction(raw: bytes, *, max_bytes: int | None = None) -> PredictionRecord:
    record = read_event(raw, "prediction", max_bytes=max_bytes)
    assert isinstance(record, PredictionRecord)  # read_event checked event_type
    return record


@dataclass(frozen=True)
class EventLimits:
    """What the worker and ingest both accept: the same event is refused by both, with the same reason."""

    max_bytes: int
    max_age: timedelta
    max_future: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> EventLimits:
        return cls(
            max_bytes=settings.max_event_bytes,
            max_age=timedelta(seconds=settings.max_event_age_seconds),
            max_future=timedelta(seconds=settings.max_event_future_seconds),
        )

    def time_problem(
        self, event_time: datetime, broker_time: datetime | None, now: datetime | None = None
    ) -> str | None:
        """Why ``event_time`` is not believable; ``None`` when it is.

        An event may be stamped at most ``max_future`` after the broker's time for it, and never more than
        that after ``now`` (the reader's clock, default: the wall clock): a producer can set a message's
        timestamp too, so the broker's time alone cannot bound the future. It may be at most ``max_age``
        older than the broker's time; a message without one (an old log format) has no age bound, since an
        old event cannot move a window forward, and a backlog read late is not old.
        """
        now = now or datetime.now(UTC)
        latest = now if broker_time is None else min(broker_time, now)
        if event_time > latest + self.max_future:
            against = "the broker received it" if latest == broker_time else "it was read"
            return (
                f"event_time {event_time.isoformat()} is {event_time - latest} after {against} "
                f"({latest.isoformat()}); at most {self.max_future} ahead is accepted "
                "(DRIFTLINE_MAX_EVENT_FUTURE_SECONDS): check the serving node's clock"
            )
        if broker_time is not None and event_time < broker_time - self.max_age:
            return (
                f"event_time {event_time.isoformat()} is {broker_time - event_time} before the broker "
                f"received it ({broker_time.isoformat()}); at most {self.max_age} old is accepted "
                "(DRIFTLINE_MAX_EVENT_AGE_SECONDS)"
            )
        return None


def encode_event(event: PredictionEvent | LabelEvent) -> bytes:
    """The wire form: compact UTF-8 JSON."""
    return event.model_dump_json().encode()


def json_schemas() -> dict[str, dict[str, Any]]:
    """The language-neutral JSON Schemas, as checked in under ``schemas/jsonschema/``."""
    return {
        f"{name}.v{SCHEMA_VERSION}.json": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://driftline.dev/schemas/{name}.v{SCHEMA_VERSION}.json",
            **model.model_json_schema(),
        }
        for name, model in (("prediction", PredictionEvent), ("label", LabelEvent))
    }
