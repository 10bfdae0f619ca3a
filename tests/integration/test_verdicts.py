"""`driftline verdicts` as Argo Rollouts' web metric and Flagger's webhooks call it: a real server process
following the real metrics topic answers for a good and a slow candidate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
from confluent_kafka import Producer

from driftline.infra.local_stack import free_port
from driftline.schemas.records import WindowMetrics
from driftline.schemas.settings import Settings
from driftline.streams.windows import LatencySketch

T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)


def window(version: str, start: datetime, n: int, latency: float, rng: np.random.Generator) -> WindowMetrics:
    sketch = LatencySketch()
    sketch.add_many(rng.lognormal(np.log(latency), 0.3, n))
    errors = int(rng.binomial(n, 0.01))
    return WindowMetrics(
        model="m", model_version=version, window_start=start, window_end=start + timedelta(minutes=5), count=n,
        errors=errors, error_rate=errors / n, latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None,
        latency_sketch=sketch.to_record(), partitions=[0],
    )  # fmt: skip


def call(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_argo_and_flagger_get_the_gates_verdict_over_http(driftline_env, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("DRIFTLINE_VERDICTS_PORT", str(port))
    monkeypatch.setenv("DRIFTLINE_CONFIG_DIR", str(tmp_path / "no-configs"))  # the default gates
    settings = Settings.from_env()
    rng = np.random.default_rng(4)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for w in range(12):
        start = T0 + timedelta(minutes=5 * w)
        for version, n, latency in (("v1", 4000, 20.0), ("v2", 300, 20.0), ("v3", 300, 40.0)):
            producer.produce(settings.topics.metrics, key=f"m|{version}".encode(),
                             value=window(version, start, n, latency, rng).to_json())  # fmt: skip
    assert producer.flush(10) == 0
    server = subprocess.Popen(
        [sys.executable, "-m", "driftline.infra.cli", "verdicts"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ}, text=True,
    )  # fmt: skip
    try:
        since = urllib.parse.quote(T0.isoformat())
        deadline, good = time.monotonic() + 30, None
        every = {"v1": 12 * 4000, "v2": 12 * 300, "v3": 12 * 300}
        while True:  # until the server has read the topic: every window of each version (they are on 3 partitions)
            try:
                status, good = call(port, f"/analysis?model=m&candidate=v2&stable=v1&since={since}")
                _, slow = call(port, f"/analysis?model=m&candidate=v3&stable=v1&since={since}")
                if {**good.get("events", {}), **slow.get("events", {})} == every:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                server.terminate()
                raise AssertionError(f"no answer with every window: {good}; "
                                     f"{server.communicate(timeout=20)[0][-3000:]}")  # fmt: skip
            time.sleep(0.5)
        assert (status, good["verdict"], good["decision"]) == (200, "pass", "advance")
        assert [g["metric"] for g in good["gates"]] == ["error_rate", "latency"]
        status, slow = call(port, f"/analysis?model=m&candidate=v3&stable=v1&since={since}")
        assert (status, slow["verdict"]) == (200, "fail")
        [latency] = [g for g in slow["gates"] if g["metric"] == "latency"]
        assert latency["verdict"] == "fail" and latency["candidate"] > 1.5 * latency["stable"]

        hook = {"name": "churn", "namespace": "ml", "phase": "Progressing"}

        def metadata(candidate: str, since: str = T0.isoformat()) -> dict:
            return {**hook, "metadata": {"model": "m", "candidate": candidate, "stable": "v1", "since": since}}

        assert call(port, "/flagger/check", metadata("v2"))[0] == 200
        status, body = call(port, "/flagger/check", metadata("v3"))
        assert status == 412 and "latency failed" in body["reason"]
        later = (T0 + timedelta(hours=5)).isoformat()  # no window yet: wait, which only the gate holds on
        assert call(port, "/flagger/check", metadata("v2", later))[0] == 200
        status, body = call(port, "/flagger/gate", metadata("v2", later))
        assert (status, body["verdict"]) == (412, "wait")
        status, body = call(port, "/analysis?model=m&candidate=v2")
        assert status == 400 and "missing stable" in body["error"]
    finally:
        server.terminate()
        server.wait(20)
    assert server.returncode == 0
