"""The example service of docs/getting-started.md works as the guide says: it answers, logs every prediction
through the producer, and stops on SIGTERM without losing one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from driftline.infra.local_stack import free_port
from driftline.schemas.settings import Settings
from tests.integration.conftest import consume_all

pytestmark = pytest.mark.integration

SERVICE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "churn_service.py"


def post(port: int, features: dict[str, object], request_id: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict",
        data=json.dumps(features).encode(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def test_the_example_service_answers_logs_each_prediction_and_stops_on_sigterm(driftline_env, tmp_path):
    port = free_port()
    service = subprocess.Popen([sys.executable, str(SERVICE), str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        answers = []
        for i in range(5):
            while True:
                try:
                    answers.append(post(port, {"user_id": f"u{i}", "age": 40 + i, "plan": "free"}, f"r{i}"))
                    break
                except OSError:
                    assert time.monotonic() < deadline and service.poll() is None, "the service did not start"
                    time.sleep(0.2)
        assert answers == [{"version": "v1", "prediction": 0.8}] * 5
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
    settings = Settings.from_env()
    logged = [json.loads(v) for v in consume_all(settings.bootstrap_servers, settings.topics.predictions, expected=5)]
    assert sorted(event["request_id"] for event in logged) == [f"r{i}" for i in range(5)]
    assert {(event["model"], event["model_version"], event["prediction"]) for event in logged} == {("churn", "v1", 0.8)}
