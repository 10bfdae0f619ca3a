"""Secrets never reach a log line, a traceback or a delivery error, whichever library writes them."""

from __future__ import annotations

import logging
import socket

import pytest

from driftline.schemas.secrets import MASK, protect, redact
from driftline.schemas.settings import Settings
from driftline.streams.alerts.delivery import AlertDeliveryError, SlackNotifier, deliver_with_retry


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_registered_secret_is_masked_in_messages_and_tracebacks_of_any_logger(caplog):
    token = "xoxb-unit-secret-4242"
    protect(Settings(slack_token=token, slack_channel="#c"))
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        log.warning("calling Slack with %s", token)
        try:
            raise RuntimeError(f"auth failed for {token}")
        except RuntimeError:
            log.exception("delivery to %s failed", "#alerts")  # the secret is only in the traceback
    formatter = logging.Formatter()
    text = "\n".join(formatter.format(record) for record in caplog.records)
    assert token not in text
    assert f"calling Slack with {MASK}" in text and f"RuntimeError: auth failed for {MASK}" in text
    assert "delivery to #alerts failed" in text  # the message keeps its arguments


def test_a_webhook_url_is_masked_whole_and_by_its_path():
    url = "https://hooks.slack.example/services/T000/B000/webhooksecret123"
    protect(Settings(slack_webhook_url=url))
    assert redact(f"POST {url} failed") == f"POST {MASK} failed"
    assert redact("POST /services/T000/B000/webhooksecret123") == f"POST {MASK}"


def test_an_unreachable_webhook_is_never_written_out(caplog):
    url = f"http://127.0.0.1:{closed_port()}/services/T9/B9/unreachablesecret"
    protect(Settings(slack_webhook_url=url))
    notifier = SlackNotifier(webhook_url=url, timeout=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(AlertDeliveryError) as error:
        deliver_with_retry(notifier, "drift!", max_attempts=3, sleep=lambda _: None)
    assert "Slack unreachable" in str(error.value)
    written = str(error.value) + "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "unreachablesecret" not in written
    assert len(caplog.records) >= 2  # the retries were logged, masked
