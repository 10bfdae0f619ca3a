"""``driftline verdicts``: driftline's candidate analysis over HTTP, for the routers teams already run.

Argo Rollouts (a ``web`` metric provider in an AnalysisTemplate) and Flagger (webhooks of a Canary) ask an
HTTP endpoint whether the canary may go on. This server answers with the same gates the embedded rollouts use
(:mod:`.gates`), from the same windows: it follows the metrics topic (each model version's closed
windows, as the stream worker publishes them), keeps the last ``--keep`` (default 24 h) of windows per
version in memory, and judges a candidate version against a stable one over the windows that started at or
after ``since`` (the canary's start; default: the last hour).

- ``GET /analysis?model=M&candidate=V2&stable=V1[&since=ISO]`` → 200 with JSON
  ``{"verdict": "pass" | "fail" | "wait", "decision": "advance" | "roll_back" | "hold" | "wait", "reason",
  "gates": [{"metric", "verdict", "candidate", "stable", "limit", "line"}], "events": {...}}``: for Argo's
  ``successCondition: result == "pass"`` / ``failureCondition: result == "fail"`` (anything else is inconclusive
  and Argo waits or pauses, as the gates do at low traffic).
- ``POST /flagger/check`` (a ``rollout`` webhook): 200 unless the candidate fails (then 412 with the reason),
  so Flagger's failure count and rollback follow driftline's verdict; waiting for evidence is not a failure.
- ``POST /flagger/gate`` (a ``confirm-rollout`` / ``confirm-promotion`` webhook): 200 only when the candidate
  passes, 412 otherwise; Flagger holds the step until then.

Flagger's webhook body carries ``metadata``: give it ``model``, ``candidate``, ``stable`` and, optionally,
``since``. The gates' thresholds are the model's ``deployment.gates`` (its monitor config) or the defaults.
Loopback by default (``DRIFTLINE_VERDICTS_HOST`` / ``DRIFTLINE_VERDICTS_PORT``, 6070). After a restart the
server reads the topic from the beginning and has its windows again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from driftline.schemas.config import GateSettings, MonitorConfig
from driftline.schemas.records import RecordError, WindowMetrics
from driftline.schemas.settings import Settings
from driftline.streams.rollouts.gates import Arm, judge_stage

log = logging.getLogger(__name__)

VERDICT = {"advance": "pass", "roll_back": "fail", "hold": "wait", "wait": "wait"}


class WindowStore:
    """The recent closed windows of each model version (thread-safe: the consumer thread adds, requests read)."""

    def __init__(self, keep: timedelta = timedelta(hours=24)) -> None:
        self.keep = keep
        self._windows: dict[tuple[str, str], deque[WindowMetrics]] = defaultdict(deque)
        self._seen: set[tuple[str, str, datetime]] = set()
        self._lock = threading.Lock()

    def add(self, metrics: WindowMetrics) -> None:
        key = (metrics.model, metrics.model_version)
        with self._lock:
            if (*key, metrics.window_start) in self._seen:
                return  # a window published again (a merger restarted): counted once
            self._seen.add((*key, metrics.window_start))
            windows = self._windows[key]
            windows.append(metrics)
            while windows and windows[0].window_end < metrics.window_end - self.keep:
                old = windows.popleft()
                self._seen.discard((*key, old.window_start))

    def since(self, model: str, version: str, start: datetime) -> list[WindowMetrics]:
        with self._lock:
            return [w for w in self._windows.get((model, version), ()) if w.window_start >= start]


def analyse(
    store: WindowStore, model: str, *, candidate: str, stable: str, since: datetime, gates: GateSettings
) -> dict[str, Any]:
    """The gates' verdict on ``candidate`` against ``stable`` over their windows from ``since``."""
    arms = {}
    last_end = since
    for version in (candidate, stable):
        arm = Arm()
        for window in store.since(model, version, since):
            arm.add(window)
            last_end = max(last_end, window.window_end)
        arms[version] = arm
    verdict = judge_stage(arms[candidate], arms[stable], gates, last_end - since)
    return {
        "model": model,
        "candidate": candidate,
        "stable": stable,
        "since": since.isoformat(),
        "verdict": VERDICT[verdict.decision],
        "decision": verdict.decision,
        "reason": verdict.reason,
        "events": {candidate: arms[candidate].events, stable: arms[stable].events},
        "gates": [
            {
                "metric": r.metric,
                "verdict": r.verdict,
                "candidate": r.candidate,
                "stable": r.stable,
                "limit": r.limit,
                "line": r.line,
            }
            for r in verdict.results
        ],
    }


class VerdictServer:
    """The HTTP server and the thread that follows the metrics topic (module docstring)."""

    def __init__(
        self, settings: Settings, configs: dict[str, MonitorConfig], *, keep: timedelta = timedelta(hours=24)
    ) -> None:
        self.settings = settings
        self.configs = configs
        self.store = WindowStore(keep)
        self._stop = threading.Event()
        handler = _handler(self)
        self.http = ThreadingHTTPServer((settings.verdicts_host, settings.verdicts_port), handler)
        self.port = self.http.server_address[1]
        self._follower = threading.Thread(target=self._follow, name="driftline-verdicts-metrics", daemon=True)

    def gates(self, model: str) -> GateSettings:
        config = self.configs.get(model)
        return config.deployment.gates if config else GateSettings()

    def serve(self) -> None:
        """Follow the topic and answer requests until :meth:`close`."""
        self._follower.start()
        log.info("driftline verdicts on http://%s:%d", self.settings.verdicts_host, self.port)
        try:
            self.http.serve_forever(poll_interval=0.2)
        finally:
            self._stop.set()
            self.http.server_close()

    def close(self) -> None:
        self._stop.set()
        self.http.shutdown()

    def _follow(self) -> None:
        topic = self.settings.topics.metrics
        consumer = Consumer(
            self.settings.kafka_client_config(
                **{"group.id": f"{self.settings.topic_prefix}-verdicts", "enable.auto.commit": False}
            )
        )
        try:
            partitions: list[int] = []
            while not partitions and not self._stop.is_set():
                metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
                partitions = sorted(metadata.partitions) if metadata and not metadata.error else []
                if not partitions:
                    self._stop.wait(1.0)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("metrics topic: %s", error)
                        continue
                    try:
                        self.store.add(WindowMetrics.parse(message.value() or b""))
                    except RecordError as exc:
                        log.error("skipping a message on %s that is not a window: %s", topic, exc)
        finally:
            consumer.close()


def _since(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC) - timedelta(hours=1)
    # An unencoded "+00:00" in a query string arrives as " 00:00": read it as meant.
    moment = datetime.fromisoformat(value.strip().replace(" ", "+").replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _handler(server: VerdictServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _judge(self, fields: dict[str, Any]) -> dict[str, Any] | None:
            missing = [name for name in ("model", "candidate", "stable") if not fields.get(name)]
            if missing:
                self._answer(
                    HTTPStatus.BAD_REQUEST,
                    {
                        "error": f"missing {', '.join(missing)}: give model, candidate and stable (and since, an ISO "
                        "time; default the last hour)"
                    },
                )
                return None
            try:
                since = _since(fields.get("since"))
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"since={fields['since']!r} is not an ISO 8601 time"})
                return None
            model = str(fields["model"])
            return analyse(
                server.store,
                model,
                candidate=str(fields["candidate"]),
                stable=str(fields["stable"]),
                since=since,
                gates=server.gates(model),
            )

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/livez":
                self._answer(HTTPStatus.OK, {"status": "ok"})
                return
            if url.path != "/analysis":
                self._answer(HTTPStatus.NOT_FOUND, {"error": "GET /analysis or POST /flagger/check|gate"})
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            result = self._judge(query)
            if result is not None:
                self._answer(HTTPStatus.OK, result)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            if url.path not in {"/flagger/check", "/flagger/gate"}:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "POST /flagger/check or /flagger/gate"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {exc}"})
                return
            result = self._judge(dict(payload.get("metadata") or {}))
            if result is None:
                return
            blocked = result["verdict"] == "fail" if url.path == "/flagger/check" else result["verdict"] != "pass"
            self._answer(HTTPStatus.PRECONDITION_FAILED if blocked else HTTPStatus.OK, result)

    return Handler
