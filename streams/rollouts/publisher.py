"""Publishing deployment states on the deployments topic, where routers follow them (streams/router.py).

The topic is keyed by model and created compacted (``cleanup.policy=compact``): the last state of each model
is what a router starting up needs, and it reads the topic from the beginning. (The embedded broker does not
compact; the topic then keeps every change, a few hundred bytes each.) The stored state beside the model is
written first and stays the truth: a publish that fails leaves routers to read it on their next storage poll.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException, Producer

from driftline.schemas.records import DeploymentState
from driftline.schemas.settings import Settings

log = logging.getLogger(__name__)


class DeploymentPublisher:
    """Sends each state to the deployments topic and waits (up to ``timeout``) for the broker to take it."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.topic = settings.topics.deployments
        self.timeout = timeout
        self._config = settings.kafka_client_config(**{"linger.ms": 0, "acks": "all"})
        self._producer: Producer | None = (
            None  # made at the first publish: a worker that never publishes connects to nothing
        )

    def __call__(self, state: DeploymentState) -> None:
        if self._producer is None:
            self._producer = Producer(self._config)
        failures: list[str] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                failures.append(str(error))

        try:
            self._producer.produce(self.topic, key=state.model.encode(), value=state.to_json(), on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            failures.append(str(exc))
        left = self._producer.flush(self.timeout)
        if left or failures:
            why = "; ".join(failures) or f"not delivered within {self.timeout:g} s"
            log.warning(
                "deployment state of %s (revision %d) is stored but not on %s (%s): routers read it from storage "
                "on their next poll",
                state.model,
                state.revision,
                self.topic,
                why,
            )
