"""The embedded producer keeps its promise while its broker is killed and restarted under load (real processes)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from driftline.infra.local_stack import free_port, start_broker, stop_process
from driftline.schemas.settings import Settings
from driftline.streams.producer import DriftlineProducer
from driftline.streams.topics import ensure_topics
from tests.integration.conftest import consume_all

pytestmark = pytest.mark.integration
RATE_PER_SECOND = 500


def test_a_broker_restart_under_load_never_raises_and_the_counters_add_up(tmp_path):
    port = free_port()
    settings = replace(Settings(), bootstrap_servers=f"127.0.0.1:{port}", topic_prefix="restart", partitions=2)
    pid = start_broker(port, tmp_path / "broker.log")
    raised: list[BaseException] = []
    sent = 0
    stop = threading.Event()
    # Short delivery timeout so messages stuck while the broker is away resolve within the test.
    producer = DriftlineProducer.from_settings(settings, extra_config={"message.timeout.ms": 8000})

    def send_steadily() -> None:
        nonlocal sent
        while not stop.is_set():
            try:
                producer.log_prediction(
                    model="m",
                    model_version="v1",
                    request_id=f"r{sent}",
                    features={"x": 1.0},
                    prediction=1,
                    latency_ms=1.0,
                )
            except BaseException as exc:  # noqa: BLE001 - the promise under test: nothing reaches the caller
                raised.append(exc)
            sent += 1
            time.sleep(1 / RATE_PER_SECOND)

    try:
        ensure_topics(settings)
        sender = threading.Thread(target=send_steadily)
        sender.start()
        time.sleep(3)
        stop_process(pid)  # the broker goes away (memory storage: its topics and producer ids too)
        time.sleep(3)
        pid = start_broker(port, tmp_path / "broker.log")
        ensure_topics(settings)
        time.sleep(6)
        stop.set()
        sender.join()
        before_flush = producer.stats.delivered
        producer.flush(15)
        stats = producer.stats
        print(f"sent={sent} {producer.stats_dict()}")
        assert raised == []
        assert stats.enqueued + stats.dropped_buffer_full + stats.dropped_error == sent
        assert stats.pending == 0  # every enqueued message was resolved: delivered or failed, none stuck
        assert stats.delivered + stats.delivery_failed == stats.enqueued
        # After the restart it delivers again (a fatal UnknownProducerId would leave it delivering nothing).
        after_restart = consume_all(settings.bootstrap_servers, settings.topics.predictions, expected=1, timeout=20)
        assert after_restart, f"nothing delivered after the broker restart; stats {producer.stats_dict()}"
        assert stats.delivered >= before_flush > 0
        # Only what was sent while the broker was away (3 of ~12 s) and timed out can be lost.
        assert stats.delivered >= 0.6 * sent, producer.stats_dict()
    finally:
        stop.set()
        producer.close(1)
        stop_process(pid)
