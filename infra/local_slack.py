"""A local Slack Web API endpoint on loopback, for the integration tests and ``make chaos``.

slack-sdk talks to it through ``DRIFTLINE_SLACK_BASE_URL`` exactly as it talks to
Slack; it answers like Slack, records every call, and can fail the next N
calls with HTTP 503 (a Slack outage).
"""

from __future__ import annotations

import json
import threading
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
