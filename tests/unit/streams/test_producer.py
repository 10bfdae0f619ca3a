"""Producer logic against a real librdkafka client whose broker is unreachable (nothing is delivered)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from driftline.schemas.records import DeadLetter
from driftline.streams.producer import DriftlineProducer


def make_producer(**kwargs) -> DriftlineProducer:
    return DriftlineProducer("127.0.0.1:9", extra_config={"message.timeout.ms": 100000, "log_level": 0}, **kwargs)


def test_invalid_events_go_to_the_dead_letter_topic_not_to_the_caller():
    producer = make_producer()
    request_id = producer.log_prediction(model="m", model_version="v1", features={"a": 1}, prediction=1, latency_ms=-5)
    assert request_id  # the serving path got its id back, no exception
    assert producer.stats.dead_lettered == 1 and producer.stats.enqueued == 1  # one message, to the dead-letter topic
    assert producer.stats.pending == 1 and producer.stats.delivered == 0


def test_a_full_buffer_drops_and_counts_instead_of_blocking():
    producer = make_producer(max_buffered=5)
    for i in range(8):
        producer.log_prediction(
            model="m", model_version="v1", request_id=f"r{i}", features={}, prediction=1, latency_ms=1.0
        )
    assert producer.stats.enqueued == 5
    assert producer.stats.dropped_buffer_full == 3
    assert producer.stats_dict()["dropped"] == 3
    assert producer.stats.pending == 5


def test_request_ids_are_generated_when_missing():
    producer = make_producer()
    first = producer.log_prediction(model="m", model_version="v1", features={}, prediction=1, latency_ms=1.0)
    second = producer.log_prediction(model="m", model_version="v1", features={}, prediction=1, latency_ms=1.0)
    assert first != second and len(first) == 32


def test_a_fatal_client_error_rebuilds_the_client_and_counts_what_it_held_as_failed():
    producer = make_producer()
    for i in range(4):
        producer.log_prediction(
            model="m", model_version="v1", request_id=f"r{i}", features={}, prediction=1, latency_ms=1.0
        )
    assert producer.stats.pending == 4
    first_client = producer._producer
    producer._fatal_error = KafkaError(KafkaError._FATAL, "simulated fatal error", fatal=True)
    producer.log_prediction(
        model="m", model_version="v1", request_id="after", features={}, prediction=1, latency_ms=1.0
    )
    assert producer._producer is not first_client and producer.stats.producers_rebuilt == 1
    assert producer.stats.delivery_failed == 4  # purged from the discarded client: failed, never silently lost
    assert (producer.stats.enqueued, producer.stats.pending) == (5, 1)
    assert producer.flush(0.1) == 1


def test_a_kafka_exception_from_the_client_is_counted_not_raised():
    producer = make_producer()

    class Exploding:
        def produce(self, *args, **kwargs):
            raise KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True))

        def poll(self, timeout):
            raise KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True))

        def __len__(self):
            return 0

        def purge(self, **kwargs):
            pass

    producer._producer = Exploding()
    producer.log_label(model="m", model_version="v1", request_id="r", label=1)  # must not raise
    assert producer.stats.dropped_error == 1 and producer._fatal_error is not None
    producer.log_label(model="m", model_version="v1", request_id="r2", label=1)  # a fresh client takes it
    assert producer.stats.producers_rebuilt == 1 and producer.stats.enqueued == 1


def test_an_oversized_event_is_dead_lettered_without_its_payload():
    producer = make_producer(max_event_bytes=500)
    sent: list[tuple[str, bytes]] = []
    producer._enqueue = lambda topic, value, key, dead=False: sent.append((topic, value))  # capture, no client
    producer.log_prediction(
        model="m", model_version="v1", request_id="big", features={"blob": "x" * 1000}, prediction=1, latency_ms=1.0
    )
    [(topic, value)] = sent
    dead = DeadLetter.parse(value)
    assert topic == producer.dead_letter_topic and len(value) < 500
    assert (
        dead.reason.startswith("event of 1,")
        and "exceeds the limit of 500 bytes (DRIFTLINE_MAX_EVENT_BYTES)" in dead.reason
    )
    assert dead.original == {"event_type": "prediction", "model": "m", "model_version": "v1", "request_id": "big"}


def test_after_close_the_client_is_gone_and_calls_are_counted_not_raised():
    producer = make_producer()
    producer.close(0.1)
    assert producer._producer is None and producer.flush(0) == 0
    producer.log_label(model="m", model_version="v1", request_id="late", label=1)
    assert producer.stats.dropped_error == 1


def test_a_hostile_version_name_is_dead_lettered_with_the_rule():
    producer = make_producer()
    sent: list[tuple[str, bytes]] = []
    producer._enqueue = lambda topic, value, key, dead=False: sent.append((topic, value))  # capture, no client
    producer.log_prediction(model="m", model_version="../../outside", features={"a": 1}, prediction=1, latency_ms=1.0)
    [(topic, value)] = sent
    dead = DeadLetter.parse(value)
    assert topic == producer.dead_letter_topic
    assert "field 'model_version'" in dead.reason and "'../../outside' is not a valid name" in dead.reason
