"""The chaos check at CI size: real worker processes killed, joined, left; the broker restarted; exact windows."""

from __future__ import annotations

import pytest

from driftline.infra.chaos import ChaosPlan, run_chaos

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_a_backlog_kills_a_second_worker_and_a_broker_restart_change_no_figure(tmp_path):
    lines: list[str] = []
    result = run_chaos(ChaosPlan.ci(), tmp_path / "chaos", say=lines.append)
    report = "\n".join(lines)
    assert result.sent >= 20_000, report
    assert result.windows_expected > 10 and result.windows_exact == result.windows_expected, report
    assert result.counted == result.sent, report
    assert (result.lost, result.duplicated, result.valid_dead_lettered) == (0, 0, 0), report
    assert result.bad_events_sent == result.bad_events_dead_lettered == 3, report
    assert result.alerts_expected > 0 and result.alerts_delivered == result.alerts_expected, report
    assert (result.alerts_duplicated, result.alerts_lost, result.producer_raised) == (0, 0, 0), report
    assert result.labels_sent > 5_000 and result.performance_expected > 10, report
    assert result.performance_exact == result.performance_expected and not result.performance_wrong, report
    assert lines[-1] == result.line() and lines[-1].startswith(f"chaos: sent={result.sent} "), report
