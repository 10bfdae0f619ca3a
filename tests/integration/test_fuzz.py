"""`make fuzz` at a bounded size: generated hostile events through the producer, a real worker and ingest."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_hostile_events_are_dead_lettered_and_valid_ones_stored_without_a_crash_or_an_escape():
    completed = subprocess.run(
        [sys.executable, "-m", "driftline.infra.fuzz", "--events", "2000", "--seed", "2026"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = completed.stdout + completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    found = re.fullmatch(r"fuzz: events=(\d+) dead_lettered=(\d+) crashes=(\d+) lost=(\d+) outside_root=(\d+)", last)
    assert found, output
    events, dead_lettered, crashes, lost, outside_root = map(int, found.groups())
    summary = re.search(
        r"valid=(\d+) hostile=(\d+) hostile_missed=(\d+) hostile_stored=(\d+) valid_dead_lettered=(\d+)",
        completed.stdout,
    )
    assert summary, output
    valid, hostile, missed, stored, valid_dead = map(int, summary.groups())
    assert events == 2000 == valid + hostile and valid > 400 and hostile > 800, output
    assert (dead_lettered, missed, stored, valid_dead) == (hostile, 0, 0, 0), output
    assert (crashes, lost, outside_root) == (0, 0, 0), output
    assert completed.returncode == 0, output
