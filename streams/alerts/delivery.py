"""Delivery of alerts to Slack (slack-sdk) or, with no Slack settings, the console.

Delivery never drops an alert: :func:`deliver_with_retry` retries with capped exponential backoff until the
notifier succeeds. In the Faust worker the alert is not acknowledged until delivered, so a Slack outage only
delays alerts and a crash re-delivers them; the DAG tasks keep an outbox in storage for the same reason
(:mod:`.outbox`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from driftline.schemas.errors import UserError
from driftline.schemas.secrets import redact
from driftline.schemas.settings import Settings
from driftline.streams.alerts.formatting import Blocks

log = logging.getLogger("driftline.alerts")


class AlertDeliveryError(UserError):
    """Slack did not take a message; the message says what it answered (secrets redacted)."""


class Notifier(Protocol):
    name: str

    def send(self, text: str, channel: str | None = None, blocks: Blocks | None = None) -> None: ...


class ConsoleNotifier:
    """Used when no Slack settings are configured: prints and logs the alert."""

    name = "console"

    def __init__(self, printer: Callable[[str], None] = print) -> None:
        self._printer = printer

    def send(self, text: str, channel: str | None = None, blocks: Blocks | None = None) -> None:
        line = f"[driftline alert{' → ' + channel if channel else ''}] {text}"
        self._printer(line)
        log.warning(line)


class SlackNotifier:
    """Posts with ``chat.postMessage`` (bot token + channel) or an incoming webhook."""

    name = "slack"

    def __init__(
        self,
        *,
        token: str | None = None,
        channel: str | None = None,
        webhook_url: str | None = None,
        base_url: str | None = None,
        timeout: int = 10,
    ) -> None:
        if not webhook_url and not (token and channel):
            raise ValueError(
                "Slack needs either DRIFTLINE_SLACK_WEBHOOK_URL or both DRIFTLINE_SLACK_TOKEN and "
                "DRIFTLINE_SLACK_CHANNEL"
            )
        self.channel = channel
        self._webhook = WebhookClient(webhook_url, timeout=timeout) if webhook_url else None
        self._client = None
        if not self._webhook:
            kwargs: dict[str, Any] = {"token": token, "timeout": timeout}
            if base_url:
                kwargs["base_url"] = base_url
            self._client = WebClient(**kwargs)

    def send(self, text: str, channel: str | None = None, blocks: Blocks | None = None) -> None:
        """Post ``blocks`` (Block Kit) with ``text`` as the notification's and the fallback's text."""
        try:
            if self._webhook is not None:
                response = self._webhook.send(text=text, blocks=blocks)
                if response.status_code != 200:
                    raise AlertDeliveryError(
                        redact(f"Slack webhook answered HTTP {response.status_code}: {response.body!r}")
                    )
            else:
                assert self._client is not None and self.channel is not None  # the constructor insists on both
                self._client.chat_postMessage(channel=channel or self.channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", "?")
            detail = exc.response.get("error") if status == 200 else str(exc).split(":", 1)[0]
            raise AlertDeliveryError(redact(f"Slack answered HTTP {status}: {detail}")) from exc
        except AlertDeliveryError:
            raise
        except Exception as exc:  # network errors, HTTP 5xx surfaced by the SDK
            # The exception may quote the webhook URL, itself a secret.
            raise AlertDeliveryError(redact(f"Slack unreachable: {type(exc).__name__}: {exc}")) from exc


def notifier_from_settings(settings: Settings) -> Notifier:
    if settings.slack_configured:
        return SlackNotifier(
            token=settings.slack_token,
            channel=settings.slack_channel,
            webhook_url=settings.slack_webhook_url,
            base_url=settings.slack_base_url,
        )
    return ConsoleNotifier()


def deliver_with_retry(
    notifier: Notifier,
    text: str,
    channel: str | None = None,
    *,
    blocks: Blocks | None = None,
    max_attempts: int | None = None,
    initial_delay: float = 0.5,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send until it succeeds; returns the number of attempts. ``max_attempts=None`` retries forever."""
    attempt, delay = 0, initial_delay
    while True:
        attempt += 1
        try:
            notifier.send(text, channel, blocks)
            return attempt
        except AlertDeliveryError as exc:
            if max_attempts is not None and attempt >= max_attempts:
                raise
            log.warning("alert delivery attempt %d failed (%s); retrying in %.1fs", attempt, exc, delay)
            sleep(delay)
            delay = min(delay * 2, max_delay)
