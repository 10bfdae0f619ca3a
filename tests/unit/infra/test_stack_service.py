"""make stack's model service apart from its processes: the models it scores, POST /predict's logic and its HTTP
server in this process (with a recording producer and a fixed router), and that it imports only the client."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from driftline.infra.stack_service import (
    PredictionService,
    PredictRequest,
    RequestError,
    make_server,
    nearest_outcome,
    score,
    sigmoid,
)
from driftline.streams.rollouts.router import Route

ROOT = Path(__file__).resolve().parents[3]
LOGISTIC = {
    "kind": "logistic",
    "numeric": ["x0", "x1"],
    "means": [1.0, 0.0],
    "scales": [2.0, 1.0],
    "categorical": [["plan", "basic"], ["plan", "pro"]],
    "weights": [0.5, -1.0, 0.25, 2.0],
    "bias": -0.5,
}


class FixedRouter:
    """Routes every request to one version, as a router with one version serving does."""

    def __init__(self, version: str, model: Any, revision: int = 3) -> None:
        self.route_to = Route(version, model=model, revision=revision)
        self.state = SimpleNamespace(serving=version, revision=revision)  # the fields the service reads

    def route(self, key: str | bytes | int) -> Route:
        return self.route_to


class RecordingProducer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def log_prediction(self, **event: Any) -> str:
        self.events.append(event)
        return str(event["request_id"])


def service(model: Any = LOGISTIC) -> tuple[PredictionService, RecordingProducer]:
    producer = RecordingProducer()
    return PredictionService("churn", FixedRouter("v1", model), producer), producer  # type: ignore[arg-type]


def test_a_logistic_model_scores_the_standardized_features_and_the_one_hot_plan():
    # (3 - 1) / 2 = 1 and (-1 - 0) / 1 = -1: 0.5 * 1 - 1.0 * -1 + 2.0 (pro) - 0.5 = 3.0
    assert score(LOGISTIC, {"x0": 3, "x1": -1, "plan": "pro"}) == pytest.approx(1 / (1 + 2.718281828459045**-3.0))


def test_the_sigmoid_takes_large_values_of_either_sign():
    assert sigmoid(1000.0) == 1.0
    assert sigmoid(-1000.0) == 0.0
    assert sigmoid(0.0) == 0.5


def test_the_nearest_rows_outcome_is_the_positive_share_of_the_k_closest():
    rows = [[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [5.0, 5.0]]
    outcomes = [1, 0, 1, 1]
    assert nearest_outcome([0.1, 0.0], rows, outcomes, k=2) == 0.5  # rows 0 and 1
    assert nearest_outcome([0.1, 0.0], rows, outcomes, k=3) == pytest.approx(2 / 3)  # and row 2
    assert nearest_outcome([0.5, 0.0], rows, outcomes, k=1) == 1.0  # a tie: the first row


def test_a_knn_blend_is_half_the_logistic_and_half_the_neighbours():
    features = {"x0": 3, "x1": -1, "plan": "pro"}
    model = {
        "kind": "knn_blend",
        "base": LOGISTIC,
        "rows": [[1.0, -1.0, 0.0, 1.0]],
        "outcomes": [0],
        "k": 1,
        "blend": 0.5,
    }
    assert score(model, features) == pytest.approx(0.5 * score(LOGISTIC, features))


def test_an_unknown_model_kind_is_named():
    with pytest.raises(ValueError, match="unknown model kind 'tree'; expected 'logistic' or 'knn_blend'"):
        score({"kind": "tree"}, {"x0": 1})


def test_a_request_needs_features_and_takes_string_ids():
    request = PredictRequest.parse(b'{"features": {"x0": 1}, "request_id": "r1", "user_id": "u1"}')
    assert request == PredictRequest({"x0": 1}, "r1", "u1")
    assert PredictRequest.parse(b'{"features": {"x0": 1}, "request_id": "r1"}').user_id == "r1"
    for body, message in (
        (b"{nope", "the body is not JSON"),
        (b"[1]", "the body must be a JSON object, got list"),
        (b'{"features": {}}', "'features' must be a non-empty object"),
        (b'{"features": {"x0": 1}, "request_id": 7}', "'request_id' and 'user_id' must be strings"),
    ):
        with pytest.raises(RequestError, match=message):
            PredictRequest.parse(body)


def test_a_prediction_is_routed_scored_and_logged_with_its_measured_latency():
    predictions, producer = service()
    status, answer = predictions.predict(b'{"features": {"x0": 3, "x1": -1, "plan": "pro"}, "request_id": "r1"}')
    assert status == 200
    assert answer == {
        "request_id": "r1",
        "version": "v1",
        "prediction": score(LOGISTIC, {"x0": 3, "x1": -1, "plan": "pro"}),
    }
    [event] = producer.events
    assert {k: event[k] for k in ("model", "model_version", "request_id", "prediction", "error")} == {
        "model": "churn",
        "model_version": "v1",
        "request_id": "r1",
        "prediction": answer["prediction"],
        "error": None,
    }
    assert 0 <= event["latency_ms"] < 1000
    assert predictions.stats.logged == 1


def test_a_model_that_fails_answers_500_and_is_logged_as_an_error():
    predictions, producer = service()
    status, answer = predictions.predict(b'{"features": {"x0": 3}, "request_id": "r2"}')  # no x1
    assert (status, answer) == (500, {"request_id": "r2", "version": "v1", "prediction": None, "error": "KeyError"})
    assert (producer.events[0]["prediction"], producer.events[0]["error"]) == (None, "KeyError")


def test_a_bad_body_is_answered_400_and_not_logged():
    predictions, producer = service()
    status, answer = predictions.predict(b"[]")
    assert status == 400 and "JSON object" in answer["error"]
    assert producer.events == [] and predictions.stats.rejected == 1


def test_the_http_server_answers_on_one_kept_alive_connection_and_counts_what_it_answered():
    predictions, producer = service()
    server = make_server(0, predictions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        answers = []
        for body in (b'{"features": {"x0": 1, "x1": 0, "plan": "basic"}}', b'{"features": {"x0": 1}}', b"{}"):
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read()).get("version")))
        connection.request("GET", "/healthz")
        health = connection.getresponse()
        assert (health.status, json.loads(health.read())) == (200, {"model": "churn", "revision": 3, "serving": "v1"})
        connection.request("GET", "/nothing")
        assert connection.getresponse().status == 404
    finally:
        connection.close()
        server.shutdown()
        server.server_close()
    assert answers == [(200, "v1"), (500, "v1"), (400, None)]
    stats = predictions.stats
    assert (stats.answered, stats.logged, stats.errors, stats.rejected, stats.by_version) == (2, 2, 1, 1, {"v1": 2})
    assert len(producer.events) == 2


def test_the_service_imports_no_other_roles_library():
    """What the import contract forbids the client (pyproject's [tool.importlinter], "client"), at run time."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [client] = [contract for contract in contracts if contract["id"] == "client"]
    probe = (
        "import sys, json, driftline.infra.stack_service\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {client['forbidden_modules']!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == []
