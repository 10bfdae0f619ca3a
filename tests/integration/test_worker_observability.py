"""Two real workers on one host, one configured port: both serve /metrics, /livez and /readyz; readiness follows a
real broker going away and coming back; every metric the shipped Grafana dashboard reads is served."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from driftline.infra.chaos_processes import DurableBroker
from driftline.infra.local_stack import free_port, stop_child
from driftline.schemas.settings import Settings
from driftline.streams.producer import DriftlineProducer
from driftline.streams.topics import ensure_topics

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).parents[2] / "infra" / "deploy" / "grafana" / "driftline-worker.json"
EVENTS = 300


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""  # nothing listens (yet)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def samples(port: int) -> dict[tuple[str, frozenset], float]:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def total(ports: list[int], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for port in ports for (n, ls), v in samples(port).items() if n == name and wanted <= ls)


@pytest.fixture
def stack(tmp_path):
    broker = DurableBroker(tmp_path)
    broker.start_storage()
    broker.start()
    yield broker
    broker.stop()


def test_two_workers_on_one_port_serve_metrics_and_readiness_follows_the_broker(stack, tmp_path):
    config_dir = tmp_path / "models"
    config_dir.mkdir()
    (config_dir / "svc.yaml").write_text(
        "model: svc\nreference: unused.parquet\nmetrics: {window: 1m, latency_p95_ms: 12, min_count: 5}\n"
        "performance: {label_deadline: 1m, min_labels: 10}\n"
    )
    port = free_port()
    settings = replace(
        Settings(),
        home=str(tmp_path / "home"),
        storage_url=str(tmp_path / "home" / "storage"),
        bootstrap_servers=stack.bootstrap_servers,
        topic_prefix="obs",
        partitions=2,
        config_dir=str(config_dir),
        worker_port=port,
        fast_group_timeouts=True,
        idle_close_seconds=2.0,
    )
    ensure_topics(settings)
    env = {**os.environ, **settings.to_env()}
    workers = []
    for name in ("a", "b"):
        with open(tmp_path / f"worker-{name}.log", "ab") as log:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "warn"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        if name == "a":  # the second one starts once the first holds the port
            wait_for(lambda: get(f"http://127.0.0.1:{port}/livez")[0] == 200, 60, "worker a serves /livez")
    try:
        targets = Path(settings.home) / "worker" / "prometheus"
        listed = wait_for(
            lambda: sorted(targets.glob("obs-*.json")) if len(list(targets.glob("*.json"))) == 2 else None,
            60,
            "both workers list themselves for Prometheus",
        )
        ports = sorted(int(re.search(r"obs-(\d+)\.json", p.name).group(1)) for p in listed)  # type: ignore[union-attr]
        assert ports[0] == port and port < ports[1] < port + 64  # the second took the next free port
        for p in ports:
            assert json.loads((targets / f"obs-{p}.json").read_text())[0]["targets"] == [f"127.0.0.1:{p}"]
        for p in ports:
            wait_for(lambda p=p: get(f"http://127.0.0.1:{p}/readyz")[0] == 200, 60, f"worker on {p} is ready")

        t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
        with DriftlineProducer.from_settings(settings) as producer:
            for i in range(EVENTS):
                classifier = i % 10 == 1  # a tenth of the events: version v2 answers with classes, some by default
                producer.log_prediction(
                    model="svc",
                    model_version="v2" if classifier else "v1",
                    request_id=f"r{i}",
                    features={"x": 1.0},
                    prediction=("yes" if i % 20 == 1 else "no") if classifier else 0.5,
                    latency_ms=10.0 + i % 7,
                    error="Timeout" if i % 10 == 0 else None,
                    event_time=t0 + timedelta(seconds=i * 0.1),
                    fallback=classifier and i % 40 == 1,
                )
            for i in range(0, EVENTS, 3):  # labels for a third of the requests, a minute later
                producer.log_label(model="svc", model_version="v2" if i % 10 == 1 else "v1", request_id=f"r{i}",
                                   label=1, event_time=t0 + timedelta(minutes=1))  # fmt: skip
        raw = Producer({"bootstrap.servers": settings.bootstrap_servers})
        raw.produce(settings.topics.predictions, value=b"not json", key=b"k")
        raw.flush(10)

        wait_for(lambda: total(ports, "driftline_model_events_total", model="svc") == EVENTS,
                 90, f"{EVENTS} events counted for svc across both workers")  # fmt: skip
        assert total(ports, "driftline_model_events_total", model="svc", model_version="v2") == EVENTS // 10
        assert total(ports, "driftline_events_total", outcome="counted") == EVENTS
        wait_for(lambda: total(ports, "driftline_dead_letters_total", reason="invalid") == 1, 30, "one dead letter")
        wait_for(lambda: total(ports, "driftline_window_events", model="svc", model_version="v1") > 0
                 and total(ports, "driftline_window_events", model="svc", model_version="v2") > 0, 90,
                 "a published window's gauges")  # fmt: skip
        assert total(ports, "driftline_merging") == 1  # exactly one worker runs the merger
        assert total(ports, "driftline_partitions_assigned") == 2
        v1, v2 = {"model": "svc", "model_version": "v1"}, {"model": "svc", "model_version": "v2"}
        assert total(ports, "driftline_window_error_rate", **v1) == pytest.approx(1 / 9)  # every event 0, 10, 20…
        assert total(ports, "driftline_window_errors", cause="Timeout", **v1) > 0
        assert total(ports, "driftline_window_prediction_mean", **v1) == 0.5
        assert total(ports, "driftline_window_prediction_class_share", **{"class": "yes"}, **v2) == pytest.approx(0.5)
        assert total(ports, "driftline_window_fallback_rate", **v2) == pytest.approx(8 / 30)  # i = 1, 41, …, 281

        wait_for(lambda: total(ports, "driftline_alerts_total", kind="threshold", outcome="delivered") >= 1, 60,
                 "the latency alert's delivery counted")  # fmt: skip

        wait_for(lambda: total(ports, "driftline_window_label_coverage", **v1) > 0, 90, "the joined labels' gauges")
        labelled_v1 = len([i for i in range(0, EVENTS, 3) if i % 10 != 1])
        assert total(ports, "driftline_window_label_coverage", **v1) == pytest.approx(labelled_v1 / (EVENTS * 9 // 10))
        assert total(ports, "driftline_window_realized", metric="accuracy", **v1) == 1.0  # 0.5 ≥ threshold: class 1

        # Every metric the dashboard reads is served by the workers.
        served = {name for p in ports for name, _ in samples(p)}
        queried = set(re.findall(r"\b(driftline_[a-z_]+)", DASHBOARD.read_text()))
        # A labelled counter has no series until its first increment (no drift in this test: none detected).
        assert queried and queried - {"driftline_prediction_drift_detections_total"} <= served, sorted(queried - served)

        # The broker goes away: the workers stay alive but are not ready; back: ready again.
        stack.stop_broker()
        for p in ports:
            _, body = wait_for(lambda p=p: (r := get(f"http://127.0.0.1:{p}/readyz"))[0] == 503 and r, 40,
                                    f"worker on {p} not ready without its broker")  # fmt: skip
            assert "the broker has not answered for" in json.loads(body)["problems"][0]
            assert get(f"http://127.0.0.1:{p}/livez")[0] == 200
            assert samples(p)[("driftline_broker_up", frozenset())] == 0
        stack.start()
        for p in ports:
            wait_for(lambda p=p: get(f"http://127.0.0.1:{p}/readyz")[0] == 200, 60, f"worker on {p} ready again")
            assert samples(p)[("driftline_broker_up", frozenset())] == 1
        assert all(w.poll() is None for w in workers), [w.returncode for w in workers]
    finally:
        for worker in workers:
            stop_child(worker, 30)
    assert not list(targets.glob("*.json"))  # a stopped worker takes its Prometheus target away
