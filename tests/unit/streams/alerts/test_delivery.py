from __future__ import annotations

from typing import Any

import pytest

from driftline.streams.alerts.delivery import AlertDeliveryError, ConsoleNotifier, SlackNotifier, deliver_with_retry


class FlakyNotifier:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures, self.sent = failures, []

    def send(self, text: str, channel: str | None = None, blocks: list[dict[str, Any]] | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise AlertDeliveryError("Slack answered HTTP 503: unavailable")
        self.sent.append((text, channel))


def test_delivery_retries_with_capped_backoff_until_it_succeeds():
    notifier, waits = FlakyNotifier(failures=5), []
    attempts = deliver_with_retry(notifier, "hi", "#c", initial_delay=1.0, max_delay=4.0, sleep=waits.append)
    assert attempts == 6 and notifier.sent == [("hi", "#c")]
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_bounded_delivery_gives_up_with_the_last_error():
    notifier = FlakyNotifier(failures=3)
    with pytest.raises(AlertDeliveryError, match="HTTP 503"):
        deliver_with_retry(notifier, "hi", max_attempts=2, sleep=lambda _: None)
    assert notifier.sent == [] and notifier.failures == 1


def test_console_notifier_prints_with_the_channel():
    lines: list[str] = []
    ConsoleNotifier(printer=lines.append).send("text", "#ml")
    assert lines == ["[driftline alert → #ml] text"]


def test_slack_needs_a_webhook_or_a_token_and_a_channel():
    with pytest.raises(ValueError, match="DRIFTLINE_SLACK_WEBHOOK_URL or both DRIFTLINE_SLACK_TOKEN and"):
        SlackNotifier(token="xoxb-1")
