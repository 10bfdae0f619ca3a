"""The library a serving node embeds to publish predictions and labels.

It never raises into the serving path and never blocks it:

* events are validated against the schema; an invalid one is sent to the
  dead-letter topic with the reason instead of the main topic;
* librdkafka's local queue is bounded (``max_buffered``); when it is full the
  event is dropped, counted in :attr:`DriftlineProducer.stats` and logged at
  most once per ``log_every`` drops;
* delivery failures are counted and logged from the delivery callback;
* while the broker is unreachable it says so once (and once a minute after, with the count), not once per
  connection attempt: librdkafka's own log lines go to Python's logging (logger ``driftline.streams.producer``),
  never straight to stderr; :meth:`DriftlineProducer.close` then waits at most ``unreachable_close_seconds``
  (not its whole timeout) and counts every event it gives up on as ``delivery_failed``.

**Sampling** for very high-volume services: ``sample_rate=0.1`` keeps one request in ten, chosen by a hash
of its request id (so a later :meth:`~DriftlineProducer.log_label` for the same request is kept exactly when
its prediction was), and failed requests always (``keep_errors``). Each kept event records the rate it was
kept at, so the stream worker counts it as ``1/sample_rate`` requests: counts, error and fallback rates and
throughput stay unbiased (docs/operations.md, "What the worker measures"). Requests left out are counted in
``stats.sampled_out``.

Example
-------
>>> with DriftlineProducer.from_env() as producer:            # doctest: +SKIP
...     producer.log_prediction(model="churn", model_version="v3", request_id="r1",
...                             features={"age": 41}, prediction=0.82, latency_ms=12.5)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import KafkaError, Message, Producer
from pydantic import ValidationError

from driftline.schemas.events import LabelEvent, PredictionEvent, describe_validation_error, encode_event
from driftline.schemas.records import DeadLetter
from driftline.schemas.settings import Settings, Topics

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection attempts, timeouts), routed here instead of stderr; quiet unless asked.
client_log = logging.getLogger(f"{__name__}.librdkafka")
client_log.setLevel(logging.ERROR)
REPEAT_LOG_SECONDS = 60.0


@dataclass
class ProducerStats:
    """Counters since the producer was created; every message ends in exactly one outcome.

    ``enqueued`` counts messages handed to the client (``dead_lettered`` of them
    went to the dead-letter topic). Each ends ``delivered`` or ``delivery_failed``
    (timed out, refused, or purged from a client discarded after a fatal error);
    until then it is ``pending``. A message never handed over was dropped at the
    call: ``dropped_buffer_full`` or ``dropped_error``.
    """

    enqueued: int = 0
    dead_lettered: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    dropped_buffer_full: int = 0
    dropped_error: int = 0
    producers_rebuilt: int = 0
    sampled_out: int = 0  # requests sampling left out on purpose (never sent, not a loss)

    @property
    def pending(self) -> int:
        return self.enqueued - self.delivered - self.delivery_failed

    @property
    def dropped(self) -> int:
        return self.dropped_buffer_full + self.dropped_error + self.delivery_failed


class DriftlineProducer:
    """Publishes prediction and label events; safe to call from request handlers."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Topics | None = None,
        max_buffered: int = 100_000,
        linger_ms: int = 5,
        log_every: int = 1000,
        max_event_bytes: int | None = None,
        extra_config: dict[str, Any] | None = None,
        sample_rate: float = 1.0,
        keep_errors: bool = True,
        unreachable_close_seconds: float = 1.0,
    ) -> None:
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be at least 1, got {max_buffered}")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate is the share of requests kept, in (0, 1]; got {sample_rate}")
        self.sample_rate = sample_rate
        self.keep_errors = keep_errors
        # A request is kept when the first 8 bytes of its id's hash, as a number, fall below this.
        self._keep_below = int(sample_rate * 2**64)
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max_buffered,
            # Not idempotent by default: an idempotent client whose broker lost its producer state (a restart
            # of a broker without durable state, a fenced id) stops delivering until it is replaced. A
            # monitoring producer prefers a rare duplicate on a lost ack (request ids identify them) to an
            # outage; pass extra_config={"enable.idempotence": True} to choose the other way.
            "enable.idempotence": False,
            "acks": "all",
            "client.id": "driftline-producer",
            "logger": client_log,
            **(extra_config or {}),
            "error_cb": self._on_client_error,
        }
        self._unreachable_close_seconds = unreachable_close_seconds
        self._unreachable_since: float | None = None  # all brokers down, as librdkafka last said
        self._errors_logged: dict[int, tuple[float, int]] = {}  # error code -> (last logged, repeats since)
        self._fatal_error: KafkaError | None = None
        self._producer: Producer | None = Producer(self._config)
        topics = topics or Topics()
        self.predictions_topic = topics.predictions
        self.labels_topic = topics.labels
        self.dead_letter_topic = topics.dead_letter
        self.stats = ProducerStats()
        self._log_every = log_every
        self._max_event_bytes = Settings().max_event_bytes if max_event_bytes is None else max_event_bytes
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> DriftlineProducer:
        kwargs.setdefault("max_event_bytes", settings.max_event_bytes)
        kwargs["extra_config"] = {**settings.kafka_options, **(kwargs.get("extra_config") or {})}
        return cls(settings.bootstrap_servers, topics=settings.topics, **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> DriftlineProducer:
        """Settings from the ``DRIFTLINE_*`` environment variables (see the README's configuration table)."""
        return cls.from_settings(Settings.from_env(), **kwargs)

    # -- public API -------------------------------------------------------------------------
    def log_prediction(
        self,
        *,
        model: str,
        model_version: str,
        features: dict[str, Any],
        prediction: Any,
        latency_ms: float,
        request_id: str | None = None,
        error: str | None = None,
        event_time: datetime | None = None,
        fallback: bool = False,
        shadow: bool = False,
    ) -> str:
        """Publish one prediction; returns its request id (generated when not given). ``fallback``: the request
        was answered by a default, not by the model. ``shadow``: a copy of the request answered by a shadow
        version (``Route.shadow``), its answer never returned; log it with the request's id. With sampling, a
        request left out is not sent (its shadow copy neither: the hash of the id decides both)."""
        request_id = request_id or uuid.uuid4().hex
        rate = 1.0
        if self.sample_rate < 1 and not (error is not None and self.keep_errors):
            if not self._sampled_in(request_id):
                with self._lock:
                    self.stats.sampled_out += 1
                return request_id
            rate = self.sample_rate
        payload = {
            "event_type": "prediction",
            "model": model,
            "model_version": model_version,
            "request_id": request_id,
            "event_time": event_time or datetime.now(UTC),
            "features": features,
            "prediction": prediction,
            "latency_ms": latency_ms,
            "error": error,
            "fallback": fallback,
            "sample_rate": rate,
            "shadow": shadow,
        }
        self._publish(self.predictions_topic, payload, PredictionEvent)
        return request_id

    def _sampled_in(self, request_id: str) -> bool:
        digest = hashlib.blake2b(str(request_id).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < self._keep_below

    def log_label(
        self,
        *,
        model: str,
        model_version: str,
        request_id: str,
        label: Any,
        event_time: datetime | None = None,
    ) -> None:
        """Publish the ground truth for an earlier prediction (left out when sampling left its prediction out)."""
        if self.sample_rate < 1 and not self._sampled_in(request_id):
            with self._lock:
                self.stats.sampled_out += 1
            return
        payload = {
            "event_type": "label",
            "model": model,
            "model_version": model_version,
            "request_id": request_id,
            "event_time": event_time or datetime.now(UTC),
            "label": label,
        }
        self._publish(self.labels_topic, payload, LabelEvent)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` seconds for buffered events; returns how many are still queued."""
        if self._producer is None:
            return 0  # closed: everything was flushed (or counted) then
        try:
            self._recover_if_fatal()
            return int(self._client().flush(timeout))
        except Exception:  # flush must not raise into a shutdown path either
            log.exception("driftline producer flush failed")
            return self.stats.pending

    def close(self, timeout: float = 10.0) -> None:
        """Send what is buffered, waiting up to ``timeout`` seconds (``unreachable_close_seconds`` when no broker
        answers); what is still undelivered then is counted as ``delivery_failed`` and logged once."""
        if self._closed:
            return
        wait = min(timeout, self._unreachable_close_seconds) if self._unreachable_since is not None else timeout
        remaining = self.flush(wait)
        if remaining and self._producer is not None:
            try:
                self._producer.purge(in_queue=True, in_flight=True)
                self._producer.poll(0)  # the purged messages' delivery callbacks count them as failed
            except Exception:  # closing: the client is thrown away next
                log.debug("purging the driftline producer at close raised", exc_info=True)
            why = " (no broker answered)" if self._unreachable_since is not None else ""
            log.warning(
                "driftline producer closed after %.1fs with %d events undelivered%s; counted in stats.delivery_failed",
                wait,
                remaining,
                why,
            )
        self._closed = True
        # Drop the client now (its callbacks refer back to this object, so it would otherwise wait for the
        # garbage collector and keep reconnecting to a broker that is gone).
        self._producer = None

    def __enter__(self) -> DriftlineProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _publish(
        self, topic: str, payload: dict[str, Any], model_class: type[PredictionEvent] | type[LabelEvent]
    ) -> None:
        try:
            event = model_class.model_validate(payload)
            value, key = encode_event(event), event.request_id.encode()
            if len(value) > self._max_event_bytes:
                raise EventTooLargeError(
                    f"event of {len(value):,} bytes exceeds the limit of {self._max_event_bytes:,} bytes "
                    "(DRIFTLINE_MAX_EVENT_BYTES); send features that describe the request, not its payload"
                )
        except Exception as exc:  # noqa: BLE001 - validation must never raise into the serving path
            reason = _reason(exc)
            if isinstance(exc, EventTooLargeError):  # the dead letter keeps who sent it, not the payload
                payload = {key: payload.get(key) for key in ("event_type", "model", "model_version", "request_id")}
            self._enqueue(
                self.dead_letter_topic,
                dead_letter_value(payload, reason, source="producer"),
                None,
                dead=True,
            )
            return
        self._enqueue(topic, value, key)

    def _enqueue(self, topic: str, value: bytes, key: bytes | None, dead: bool = False) -> None:
        if self._closed:
            with self._lock:
                self.stats.dropped_error += 1
            log.warning("driftline producer is closed; an event was dropped")
            return
        try:
            self._recover_if_fatal()
            self._client().produce(topic, value=value, key=key, on_delivery=self._on_delivery)
        except BufferError:
            with self._lock:
                self.stats.dropped_buffer_full += 1
                dropped = self.stats.dropped_buffer_full
            if dropped == 1 or dropped % self._log_every == 0:
                log.warning("driftline producer buffer full: %d events dropped so far (raise max_buffered?)", dropped)
        except Exception as exc:  # noqa: BLE001 - anything else from the client is counted, not raised
            self._note_fatal(exc)
            with self._lock:
                self.stats.dropped_error += 1
            log.warning("driftline producer could not enqueue an event: %s", exc)
        else:
            with self._lock:
                self.stats.enqueued += 1
                self.stats.dead_lettered += int(dead)
        try:
            self._client().poll(0)
        except Exception as exc:  # noqa: BLE001 - a fatal error surfaces here too; recover on the next call
            self._note_fatal(exc)
            log.warning("driftline producer poll failed: %s", exc)

    def _client(self) -> Producer:
        assert self._producer is not None, "the producer is closed"
        return self._producer

    # -- fatal errors: the client is unusable (e.g. UnknownProducerId after a broker lost its state) ---------
    def _on_client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal_error = error
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
        # Each kind of error once, then at most once a minute with how often it came back: a broker that is down
        # makes librdkafka report every reconnection attempt.
        now = time.monotonic()
        last, repeats = self._errors_logged.get(error.code(), (None, 0))
        if last is None or now - last >= REPEAT_LOG_SECONDS:
            again = f" (and {repeats} more times in the last {now - last:.0f}s)" if last is not None and repeats else ""
            log.warning("driftline producer: %s%s", error, again)
            self._errors_logged[error.code()] = (now, 0)
        else:
            self._errors_logged[error.code()] = (last, repeats + 1)

    def _note_fatal(self, exc: Exception) -> None:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.fatal():
            self._fatal_error = error

    def _recover_if_fatal(self) -> None:
        """Replace a client that hit a fatal error; what it still held is counted as failed, not lost silently."""
        if self._fatal_error is None:
            return
        error, old = self._fatal_error, self._client()
        self._fatal_error = None
        stranded = len(old)
        try:
            old.purge(in_queue=True, in_flight=True)
            old.poll(0)  # runs the purged messages' delivery callbacks: they count as failed
        except Exception:  # the old client is being thrown away
            log.debug("purging the failed driftline producer raised", exc_info=True)
        self._producer = Producer(self._config)
        with self._lock:
            self.stats.producers_rebuilt += 1
        log.warning(
            "driftline producer hit a fatal error (%s); replaced the client, %d queued events failed", error, stranded
        )

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.stats.delivered += 1
                if self._unreachable_since is not None:
                    self._unreachable_since = None
                    self._errors_logged.clear()
                return
            self.stats.delivery_failed += 1
            failed = self.stats.delivery_failed
        if failed == 1 or failed % self._log_every == 0:
            log.warning("driftline producer delivery failed (%s); %d failures so far", error, failed)

    def stats_dict(self) -> dict[str, int]:
        return {**asdict(self.stats), "dropped": self.stats.dropped, "pending": self.stats.pending}


class EventTooLargeError(ValueError):
    pass


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    if isinstance(exc, EventTooLargeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _jsonable(payload: Any) -> Any:
    return json.loads(json.dumps(payload, default=str))


def dead_letter_value(
    original: Any,
    reason: str,
    *,
    source: Literal["producer", "worker", "ingest"],
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> bytes:
    """The dead-letter record's wire form: the original payload (or its text) with the reason and origin."""
    record = DeadLetter(
        reason=reason, source=source, topic=topic, partition=partition, offset=offset, original=_jsonable(original)
    )
    return record.to_json()
