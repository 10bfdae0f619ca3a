"""The model service of ``make stack``: a small HTTP service that embeds driftline's client, nothing else.

It runs in an environment where only ``pip install driftline`` (no extra) was installed: the producer, the router,
the event schemas. So it imports no other part of driftline and no library beyond the standard one and the
client's; ``make stack`` checks that the environment holds none of the other roles' libraries.

``python -m driftline.infra.stack_service --port PORT`` serves on 127.0.0.1:PORT, with the ``DRIFTLINE_*``
settings of the deployment:

- ``POST /predict`` with ``{"features": {...}, "request_id": "...", "user_id": "..."}`` (the ids are optional):
  the router picks the version that answers (a user keeps their version during a rollout), the version's model
  scores the features, the producer logs the prediction with the latency measured around the routing and the
  scoring, and the answer is ``{"request_id", "version", "prediction"}`` (500 with ``"error"`` when the model
  failed, logged as such; 400 for a body that is no such object, not logged: it is no prediction);
- ``GET /healthz``: 200 and the revision of the deployment state the router routes by (the service waits for a
  state before it listens).

The models are the versions driftline's model store holds: the router loads each version it routes to (digest
checked) and hands it over as ``route.model``. Here a model is plain data that :func:`score` evaluates in pure
Python: ``logistic`` (weights over standardized numeric features and one-hot categories) or ``knn_blend`` (a
logistic model blended with the outcome of the nearest of many remembered training rows: more accurate near
them, and slower, since it measures the distance to every row on each call).

On SIGTERM it stops taking requests, closes the router and the producer (which sends everything it holds) and,
with ``--stats FILE``, writes its counts there as JSON (:class:`ServiceStats`).
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from driftline.schemas.settings import Settings
from driftline.streams.producer import DriftlineProducer
from driftline.streams.rollouts.router import Router

LOOPBACK = "127.0.0.1"
MAX_BODY_BYTES = 1 << 20

log = logging.getLogger("driftline.stack_service")


# -- the models: plain data, scored in pure Python --------------------------------------------------------------


def design_row(model: Mapping[str, Any], features: Mapping[str, Any]) -> list[float]:
    """The model's inputs for ``features``: each numeric feature standardized, then one 0/1 per category level."""
    numeric = [
        (float(features[name]) - mean) / scale
        for name, mean, scale in zip(model["numeric"], model["means"], model["scales"], strict=True)
    ]
    return numeric + [1.0 if features[name] == level else 0.0 for name, level in model["categorical"]]


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)  # no overflow for large negative values
    return exp / (1.0 + exp)


def logistic_score(model: Mapping[str, Any], features: Mapping[str, Any]) -> float:
    row = design_row(model, features)
    return sigmoid(model["bias"] + sum(w * x for w, x in zip(model["weights"], row, strict=True)))


def nearest_outcome(point: Sequence[float], rows: Sequence[Sequence[float]], outcomes: Sequence[int], k: int) -> float:
    """The share of positive outcomes among the ``k`` rows nearest to ``point`` (squared Euclidean distance; ties
    by row order). The distance to every row is computed: the cost grows with the rows remembered."""
    distances = []
    for row in rows:
        total = 0.0
        for a, b in zip(point, row, strict=True):
            difference = a - b
            total += difference * difference
        distances.append(total)
    nearest = heapq.nsmallest(k, range(len(distances)), key=distances.__getitem__)
    return sum(outcomes[i] for i in nearest) / len(nearest)


def score(model: Mapping[str, Any], features: Mapping[str, Any]) -> float:
    """The probability of the positive class that ``model`` (module docstring) gives ``features``."""
    kind = model.get("kind")
    if kind == "logistic":
        return logistic_score(model, features)
    if kind == "knn_blend":
        base = model["base"]
        neighbours = nearest_outcome(design_row(base, features), model["rows"], model["outcomes"], model["k"])
        blend: float = model["blend"]
        return blend * logistic_score(base, features) + (1 - blend) * neighbours
    raise ValueError(f"unknown model kind {kind!r}; expected 'logistic' or 'knn_blend'")


# -- requests ---------------------------------------------------------------------------------------------------


class RequestError(ValueError):
    """The request body is not what POST /predict takes; the message says what was wrong."""


@dataclass(frozen=True)
class PredictRequest:
    features: dict[str, Any]
    request_id: str
    user_id: str

    @classmethod
    def parse(cls, body: bytes) -> PredictRequest:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise RequestError(f"the body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise RequestError(f"the body must be a JSON object, got {type(payload).__name__}")
        features = payload.get("features")
        if not isinstance(features, dict) or not features:
            raise RequestError("'features' must be a non-empty object of feature name to value")
        request_id = payload.get("request_id") or uuid.uuid4().hex
        user_id = payload.get("user_id") or request_id
        if not isinstance(request_id, str) or not isinstance(user_id, str):
            raise RequestError("'request_id' and 'user_id' must be strings when given")
        return cls(features, request_id, user_id)


@dataclass
class ServiceStats:
    """What the service did. ``answered``: requests answered with a prediction or a model error, each logged
    before its answer was written (``logged`` counts the log calls, ``answered`` the answers written after them);
    ``rejected``: bodies answered with 400, not logged; ``by_version``: answered per version; ``producer``: the
    producer's own counts at close (delivered, dropped, pending)."""

    answered: int = 0
    logged: int = 0
    rejected: int = 0
    errors: int = 0
    by_version: dict[str, int] = field(default_factory=dict)
    producer: dict[str, int] = field(default_factory=dict)
    driftline_path: str = ""


class PredictionService:
    """POST /predict's logic, apart from HTTP: route, score, log, count. Thread-safe."""

    def __init__(self, model: str, router: Router, producer: DriftlineProducer) -> None:
        self.model = model
        self.router = router
        self.producer = producer
        self.stats = ServiceStats()
        self._lock = threading.Lock()

    def predict(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer of one request; logs the prediction (not a rejected body)."""
        try:
            request = PredictRequest.parse(body)
        except RequestError as exc:
            with self._lock:
                self.stats.rejected += 1
            return 400, {"error": str(exc)}
        started = time.perf_counter()
        route = self.router.route(request.user_id)
        prediction: float | None = None
        error = None
        try:
            if route.model is None:
                raise LookupError(f"version {route.version} was not loaded")
            prediction = score(route.model, request.features)
        except Exception as exc:  # noqa: BLE001 - the error is logged with the request; the service answers 500
            error = type(exc).__name__
        latency_ms = (time.perf_counter() - started) * 1000
        self.producer.log_prediction(  # never raises, never blocks the request
            model=self.model,
            model_version=route.version,
            request_id=request.request_id,
            features=request.features,
            prediction=prediction,
            latency_ms=latency_ms,
            error=error,
        )
        with self._lock:
            self.stats.logged += 1
        answer: dict[str, Any] = {"request_id": request.request_id, "version": route.version, "prediction": prediction}
        if error:
            answer["error"] = error
        return (500 if error else 200), answer

    def health(self) -> dict[str, Any]:
        """GET /healthz's answer: the model, and the deployment state the router routes by."""
        state = self.router.state
        return {
            "model": self.model,
            "revision": state.revision if state else None,
            "serving": state.serving if state else None,
        }

    def answered(self, version: str, *, error: bool) -> None:
        """Count an answer written to its client."""
        with self._lock:
            self.stats.answered += 1
            self.stats.errors += int(error)
            self.stats.by_version[version] = self.stats.by_version.get(version, 0) + 1


def make_server(port: int, service: PredictionService) -> ThreadingHTTPServer:
    """The HTTP server of ``service`` on loopback (``port`` 0: a free one)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client sends its requests on one connection

        def setup(self) -> None:
            super().setup()
            # The headers and the body are two writes: with Nagle's algorithm the body waits for the client's
            # delayed ACK of the headers (40 ms on Linux) on a kept-alive connection.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._send(404, {"error": f"no {self.path}; POST /predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"})
                return
            status, answer = service.predict(self.rfile.read(length))
            self._send(status, answer)
            if status != 400:
                service.answered(answer["version"], error=status == 500)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, service.health())
            else:
                self._send(404, {"error": f"no {self.path}; GET /healthz"})

        def _send(self, status: int, answer: dict[str, Any]) -> None:
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # one line per request would be most of the log

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftline.infra.stack_service", description="make stack's model service (client only)"
    )
    parser.add_argument("--port", type=int, required=True, help="the loopback port to serve on")
    parser.add_argument("--model", default="churn", help="the model it serves (default: %(default)s)")
    parser.add_argument("--stats", type=Path, help="where to write its counts as JSON when it stops")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for the deployment state")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import driftline

    # Kubernetes stops a pod with SIGTERM: stop serving, then close the producer, which sends what it holds. A
    # SIGTERM while the router still waits for the deployment state stops the wait.
    stopping = threading.Event()
    server: ThreadingHTTPServer | None = None

    def on_sigterm(*_: object) -> None:
        stopping.set()
        if server is not None:
            threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    settings = Settings.from_env()
    producer = DriftlineProducer.from_settings(settings)
    router = Router.from_settings(settings, args.model, storage_poll=5.0)  # loads the versions it routes to
    service = PredictionService(args.model, router, producer)
    service.stats.driftline_path = str(Path(driftline.__file__).parent)
    try:
        deadline = time.monotonic() + args.ready_timeout
        while not router.wait_ready(0.2):
            if stopping.is_set():
                return 0
            if time.monotonic() > deadline:
                print(f"error: no deployment state of {args.model!r} within {args.ready_timeout:g} s", file=sys.stderr)
                return 2
        server = make_server(args.port, service)
        if stopping.is_set():
            return 0
        log.info("serving %s on %s:%d (driftline from %s)", args.model, LOOPBACK, args.port, driftline.__file__)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        router.close()
        producer.close(timeout=30)
        service.stats.producer = producer.stats_dict()
        log.info("stopped: %s", json.dumps(asdict(service.stats)))
        if args.stats:
            args.stats.write_text(json.dumps(asdict(service.stats)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
