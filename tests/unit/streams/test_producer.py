"""Producer logic against a real librdkafka client whose broker is unreachable (nothing is delivered)."""

from __future__ import annotations

from driftline.streams.producer import DriftlineProducer


def make_producer(**kwargs) -> DriftlineProducer:
    return DriftlineProducer("127.0.0.1:9", extra_config={"message.timeout.ms": 100000, "log_level": 0}, **kwargs)


def test_invalid_events_go_to_the_dead_letter_topic_not_to_the_caller():
    producer = make_producer()
    request_id = producer.log_prediction(model="m", model_version="v1", features={"a": 1}, prediction=1, latency_ms=-5)
    assert request_id  # the serving path got its id back, no exception
    assert producer.stats.dead_lettered == 1 and producer.stats.enqueued == 0


def test_a_full_buffer_drops_and_counts_instead_of_blocking():
    producer = make_producer(max_buffered=5)
    for i in range(8):
        producer.log_prediction(
            model="m", model_version="v1", request_id=f"r{i}", features={}, prediction=1, latency_ms=1.0
        )
    assert producer.stats.enqueued == 5
    assert producer.stats.dropped_buffer_full == 3
    assert producer.stats_dict()["dropped"] == 3


def test_request_ids_are_generated_when_missing():
    producer = make_producer()
    first = producer.log_prediction(model="m", model_version="v1", features={}, prediction=1, latency_ms=1.0)
    second = producer.log_prediction(model="m", model_version="v1", features={}, prediction=1, latency_ms=1.0)
    assert first != second and len(first) == 32
