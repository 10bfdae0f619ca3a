"""A local Slack Web API endpoint on loopback, for the integration tests and ``make chaos``.

slack-sdk talks to it through ``DRIFTLINE_SLACK_BASE_URL`` exactly as it talks to
Slack; it answers like Slack, records every call, and can fail the next N
calls with HTTP 503 (a Slack outage).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

LOOPBACK = "127.0.0.1"


class SlackEndpoint:
    """Answers Slack Web API calls like Slack does; can fail the first N calls with HTTP 503."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_next = 0
        self.failed = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if endpoint.fail_next > 0:
                    endpoint.fail_next -= 1
                    endpoint.failed += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    payload = json.loads(body)
                else:
                    payload = {k: v[0] for k, v in parse_qs(body).items()}
                endpoint.calls.append({"path": self.path, "auth": self.headers.get("Authorization"), **payload})
                answer = json.dumps({"ok": True, "channel": payload.get("channel"), "ts": "1.0"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.base_url = f"http://{LOOPBACK}:{self.server.server_port}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        """The text of every ``chat.postMessage`` call, in order."""
        return [str(c.get("text", "")) for c in self.calls if c["path"].endswith("chat.postMessage")]

    def messages(self) -> list[dict[str, Any]]:
        """Every ``chat.postMessage`` call's payload (text, channel, blocks), in order."""
        return [c for c in self.calls if c["path"].endswith("chat.postMessage")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class SlackMessage:
    """One message Slack received: its kind (read back from the header's title), header and text."""

    kind: str
    text: str
    header: str = ""

    @property
    def version(self) -> str | None:
        """The model version an alert names (``version *v2*``)."""
        found = re.search(r"version \*([^*]+)\*", self.text)
        return found[1] if found else None


def slack_messages(calls: Iterable[Mapping[str, Any]]) -> list[SlackMessage]:
    """The ``chat.postMessage`` payloads as :class:`SlackMessage`; the kind is read back from the header block
    (``WARNING · data drift · churn``) through the alert titles, ``unknown`` without one."""
    from driftline.streams.alerts.formatting import KIND_TITLE

    kinds = {title: kind for kind, title in KIND_TITLE.items()}
    messages = []
    for call in calls:
        blocks = call.get("blocks")
        if isinstance(blocks, str):  # slack-sdk sends the blocks as JSON text in a form body
            blocks = json.loads(blocks)
        header = next((b["text"]["text"] for b in blocks or [] if b.get("type") == "header"), "")
        parts = header.split(" · ")
        kind = kinds.get(parts[1], "unknown") if len(parts) >= 3 else "unknown"
        messages.append(SlackMessage(kind, str(call.get("text", "")), header))
    return messages
