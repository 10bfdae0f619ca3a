"""A model service with driftline in it: the router picks the version that answers, the producer logs each
prediction. Run it with `pip install driftline` and the DRIFTLINE_* settings of your deployment
(docs/getting-started.md); `python churn_service.py [PORT]` serves POST /predict on 127.0.0.1:PORT (8000).

Your own models stay yours: here `MODELS` maps a version to a callable. With models stored by driftline's retrain
DAG, the router loads them itself (`route.model`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftline.streams.producer import DriftlineProducer
from driftline.streams.rollouts.router import Router

MODELS = {"v1": lambda features: 0.8 if features["plan"] == "free" else 0.2}  # your models, by version

producer = DriftlineProducer.from_env()
router = Router.from_env("churn", default_version="v1", load_models=False)


class Predict(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        features: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request_id = self.headers.get("X-Request-Id") or uuid.uuid4().hex
        started = time.perf_counter()
        route = router.route(features.get("user_id", request_id))  # a user keeps their version during a rollout
        error = None
        try:
            prediction = MODELS[route.version](features)
        except Exception as exc:  # noqa: BLE001 - the error is logged with the request; the service answers 500
            prediction, error = None, type(exc).__name__
        producer.log_prediction(  # never raises, never blocks the request
            model="churn",
            model_version=route.version,
            request_id=request_id,
            features=features,
            prediction=prediction,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=error,
        )
        body = json.dumps({"version": route.version, "prediction": prediction}).encode()
        self.send_response(500 if error else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000), Predict)
    # Kubernetes stops a pod with SIGTERM: stop serving, then close the producer, which sends what it holds.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        router.close()
        producer.close()
