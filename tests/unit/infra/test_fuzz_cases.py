"""The fuzz suite's labels are right: what it calls valid, the schema accepts; what it calls hostile, it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from driftline.infra.fuzz import Case, FuzzResult, fits_the_producer, generate, materialize, tally
from driftline.schemas.events import EventError, EventLimits, PredictionEvent, parse_event
from driftline.schemas.settings import Settings

LIMITS = EventLimits.from_settings(Settings())
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def verdict(case: Case) -> bool:
    """Whether the event would be accepted: the schema, the size limit of the fuzz run, the time bounds."""
    if case.tombstone:
        return False
    value = case.raw if case.raw is not None else json.dumps(case.payload).encode()
    try:
        event = parse_event(value, expected="prediction", max_bytes=16_384)
    except EventError:
        return False
    assert isinstance(event, PredictionEvent)
    return LIMITS.time_problem(event.event_time, case.message_time or NOW, now=NOW) is None


def test_generated_cases_are_repeatable_and_labelled_as_the_schema_judges_them():
    drawn = generate(400, 7)
    assert len(drawn) == 400 and drawn == generate(400, 7)
    cases = [materialize(i, kind, spec, NOW) for i, (kind, spec) in enumerate(drawn)]
    wrong = [(case.request_id, case.what) for case in cases if verdict(case) != case.valid]
    assert wrong == []
    kinds = {case.what for case in cases}
    assert {
        "valid",
        "valid, stamped minutes ahead",
        "tombstone",
        "stamped ahead",
        "model name breaks the rule",
    } <= kinds
    assert "stamped ahead, its message too" in kinds
    assert any(fits_the_producer(case) for case in cases if not case.valid)  # the embedded producer gets hostile ones


def test_the_tally_fails_a_run_that_lost_stored_or_missed_anything():
    sent = [Case("v-0", True, "valid", payload={}), Case("h-1", False, "tombstone", tombstone=True)]
    clean = FuzzResult()
    tally(clean, sent, dead={"h-1"}, stored={"v-0"}, outside=[])
    assert clean.ok and (clean.dead_lettered, clean.lost) == (1, 0)
    for dead, stored, outside in (
        ({"h-1"}, set(), []),
        (set(), {"v-0"}, []),
        ({"h-1"}, {"v-0", "h-1"}, []),
        ({"h-1"}, {"v-0"}, [Path("/escaped")]),
    ):
        result = FuzzResult()
        tally(result, sent, dead=dead, stored=stored, outside=outside)
        assert not result.ok
