"""Producer logic against a real librdkafka client whose broker is unreachable (nothing is delivered)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
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


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """An address that takes the connection and never answers: the client holds its messages as with a refused
    connection, but queues no connection-error callbacks, which flush() counts with the messages (against a refused
    one, retried while the machine was busy, flush returned 2 for one message)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_fatal_client_error_rebuilds_the_client_and_counts_what_it_held_as_failed(silent_broker):
    producer = DriftlineProducer(silent_broker, extra_config={"message.timeout.ms": 100000, "log_level": 0})
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


def captured(producer: DriftlineProducer) -> list[tuple[str, dict]]:
    """What the producer hands to its client: (topic, event), by replacing the hand-over."""
    import json

    sent: list[tuple[str, dict]] = []

    def enqueue(topic: str, value: bytes, key: bytes | None, dead: bool = False) -> None:
        sent.append((topic, json.loads(value)))

    producer._enqueue = enqueue  # type: ignore[method-assign]
    return sent


def test_sampling_keeps_the_share_asked_for_by_request_id_and_records_it():
    producer = make_producer(sample_rate=0.2)
    sent = captured(producer)
    for n in range(10_000):
        producer.log_prediction(model="m", model_version="v1", request_id=f"r{n}", features={}, prediction=1,
                                latency_ms=1.0)  # fmt: skip
    assert 1_850 <= len(sent) <= 2_150  # binomial(10,000, 0.2): ±3.75 sd
    assert producer.stats.sampled_out == 10_000 - len(sent)
    assert {event["sample_rate"] for _, event in sent} == {0.2}
    kept = {event["request_id"] for _, event in sent}
    again = make_producer(sample_rate=0.2)
    resent = captured(again)
    for n in range(10_000):  # the same requests, another process: the same ones are kept
        again.log_label(model="m", model_version="v1", request_id=f"r{n}", label=1)
    assert {event["request_id"] for _, event in resent} == kept
    assert all(topic == again.labels_topic for topic, _ in resent)


def test_failed_requests_are_always_kept_at_rate_one_and_fallbacks_are_recorded():
    producer = make_producer(sample_rate=0.01)
    sent = captured(producer)
    for n in range(100):
        producer.log_prediction(model="m", model_version="v1", request_id=f"e{n}", features={}, prediction=None,
                                latency_ms=1.0, error="Timeout", fallback=True)  # fmt: skip
    assert len(sent) == 100 and {e["sample_rate"] for _, e in sent} == {1.0} and all(e["fallback"] for _, e in sent)
    keeps_nothing_extra = make_producer(sample_rate=0.01, keep_errors=False)
    fewer = captured(keeps_nothing_extra)
    for n in range(100):
        keeps_nothing_extra.log_prediction(model="m", model_version="v1", request_id=f"e{n}", features={},
                                           prediction=None, latency_ms=1.0, error="Timeout")  # fmt: skip
    assert len(fewer) < 10


def test_a_sample_rate_outside_zero_to_one_is_refused_when_the_producer_is_made():
    import pytest

    for rate in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"share of requests kept, in \(0, 1\]"):
            make_producer(sample_rate=rate)


def unreachable_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_an_unreachable_broker_is_said_once_per_kind_and_nothing_reaches_stderr(capfd, caplog):
    """librdkafka reports every reconnection attempt (about 8 lines a second on stderr before); now its log lines go
    to Python's logging and each error kind is logged once (then once a minute)."""
    producer = DriftlineProducer(f"127.0.0.1:{unreachable_port()}", extra_config={"reconnect.backoff.ms": 50})
    with caplog.at_level("WARNING", logger="driftline.streams.producer"):
        for i in range(5):
            producer.log_prediction(model="m", model_version="v1", request_id=f"r{i}", features={}, prediction=1,
                                    latency_ms=1.0)  # fmt: skip
        producer.flush(3.0)  # polls for 3 s: dozens of failed connection attempts
        producer.close(10.0)
    assert capfd.readouterr().err == ""
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("driftline producer: ")]
    assert 1 <= len(said) == len({m.split(": ", 2)[1] for m in said}), said  # one line per kind of error
    assert producer.stats.delivery_failed == 5 and producer.stats.pending == 0  # given up on at close, and counted
    [closed] = [r.getMessage() for r in caplog.records if "closed after" in r.getMessage()]
    assert closed == (
        "driftline producer closed after 1.0s with 5 events undelivered (no broker answered); counted in "
        "stats.delivery_failed"
    )


def test_close_waits_its_whole_timeout_only_while_a_broker_answers():
    producer = make_producer()
    waits: list[float] = []
    producer.flush = lambda timeout=10.0: waits.append(timeout) or 0  # type: ignore[method-assign]
    producer.close(10.0)
    assert waits == [10.0]  # nothing said the brokers are down
    down = make_producer(unreachable_close_seconds=0.5)
    down._on_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    down.flush = lambda timeout=10.0: waits.append(timeout) or 0  # type: ignore[method-assign]
    down.close(10.0)
    assert waits == [10.0, 0.5]
