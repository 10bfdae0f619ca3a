"""The router a serving process embeds next to the producer: which version answers a request, and whether to
mirror it to a shadow version.

It never blocks the serving path: :meth:`Router.route` reads an immutable routing table held in memory, and a
background thread keeps that table up to date by

* reading the model's stored deployment state (``models/<model>/routing.json``) at start-up, and again every
  ``storage_poll`` seconds (the fallback while Kafka is unreachable), and
* following the deployments topic (key: the model), where every change is published: a change reaches every
  router within a second or so;

and keeps whichever state has the highest revision. Before the table changes, the versions it names are
loaded from the model store (their digest, and their signature with a signing key, checked); a version that
cannot be loaded keeps no traffic: its share goes to the stable version and the error is in
:attr:`Router.problems`. Until a state is known, requests go to ``default_version`` (or :meth:`route` raises
:class:`NoDeploymentError` when there is none); :meth:`Router.wait_ready` waits for the first state at start-up.

**Affinity.** A key (a user, a session, a request id) is hashed with the rollout's id as salt into a point of
[0, 1); the versions' shares are consecutive intervals in the order of the state's ``weights``, the candidate
first. So a key keeps its version while the shares stay, and a key on the candidate stays on it as its share
grows (5 → 25 → 50 → 100 %); a new rollout draws new points. The shadow decision uses the other half of the
same hash, independent of the live one.

Example
-------
>>> router = Router.from_env("churn", default_version="v3")      # doctest: +SKIP
>>> route = router.route(user_id)                                  # doctest: +SKIP
>>> answer = route.model.predict(features)                         # doctest: +SKIP
>>> producer.log_prediction(model="churn", model_version=route.version, ...)  # doctest: +SKIP
>>> if route.shadow:                                               # doctest: +SKIP
...     shadow_answer = route.shadow_model.predict(features)       # never returned to the caller
...     producer.log_prediction(model="churn", model_version=route.shadow, shadow=True, ...)
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from driftline.schemas.records import DeploymentState, RecordError
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store

log = logging.getLogger(__name__)

SPACE = 1 << 64  # a key's point is a 64-bit number; shares are intervals of it


class NoDeploymentError(RuntimeError):
    """No deployment state is known yet and the router was given no ``default_version``."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes: ``version`` answers (``model`` is it, when the router loads models); ``shadow``,
    when set, gets a copy of the request whose answer is logged (``shadow=True``) and never returned."""

    version: str
    shadow: str | None = None
    model: Any = None
    shadow_model: Any = None
    revision: int = 0


def _salt(state: DeploymentState) -> bytes:
    return hashlib.blake2b(f"{state.model}|{state.rollout_id or ''}".encode(), digest_size=16).digest()


class RoutingTable:
    """One deployment state as intervals of the key space (module docstring). Immutable; :meth:`route` is the
    hot path."""

    __slots__ = ("_bounds", "_plain", "_salt", "_shadow_below", "_shadowed", "_single", "revision", "state")

    def __init__(self, state: DeploymentState, models: dict[str, Any] | None = None) -> None:
        models = models or {}
        self.state = state
        self.revision = state.revision
        shares = [(version, share) for version, share in state.shares().items() if share > 0]
        bounds, total = [], 0.0
        for _, share in shares:
            total += share
            bounds.append(min(SPACE, round(total * SPACE)))
        bounds[-1] = SPACE  # rounding never leaves a gap at the end
        self._bounds = tuple(bounds)
        self._salt = _salt(state)
        shadow = state.shadow if state.shadow and state.shadow_share > 0 else None
        self._shadow_below = round(state.shadow_share * SPACE) if shadow else 0
        self._plain = tuple(Route(version, None, models.get(version), None, state.revision) for version, _ in shares)
        self._shadowed = tuple(
            Route(version, shadow, models.get(version), models.get(shadow or ""), state.revision)
            for version, _ in shares
        )
        self._single = self._plain[0] if len(self._plain) == 1 and not self._shadow_below else None

    def route(self, key: str | bytes | int) -> Route:
        if self._single is not None:  # one version and no shadow: nothing to hash
            return self._single
        data = key if isinstance(key, bytes) else str(key).encode()
        point = int.from_bytes(hashlib.blake2b(data, digest_size=16, salt=self._salt).digest(), "big")
        index = bisect_right(self._bounds, point >> 64)
        if self._shadow_below and (point & 0xFFFF_FFFF_FFFF_FFFF) < self._shadow_below:
            return self._shadowed[index]
        return self._plain[index]

    def versions(self) -> list[str]:
        """The versions this table routes to or mirrors to."""
        live = [route.version for route in self._plain]
        return live + ([self._shadowed[0].shadow] if self._shadow_below and self._shadowed[0].shadow else [])


def routable(state: DeploymentState, unavailable: set[str]) -> DeploymentState:
    """``state`` without the versions that could not be loaded: their live share goes to the stable version and
    a shadow that cannot be loaded is not mirrored to."""
    if not unavailable:
        return state
    shares = state.shares()
    moved = sum(share for version, share in shares.items() if version in unavailable and version != state.serving)
    weights = {v: s for v, s in shares.items() if v not in unavailable or v == state.serving}
    weights[state.serving] = weights.get(state.serving, 0.0) + moved
    shadow = None if state.shadow in unavailable else state.shadow
    return state.model_copy(
        update={"weights": weights, "shadow": shadow, "shadow_share": state.shadow_share * bool(shadow)}
    )


@dataclass
class RouterStatus:
    revision: int | None = None
    source: str | None = None  # "storage" or "topic": where the state in use came from
    updated_at: float | None = None  # time.time() when the table last changed
    problems: dict[str, str] = field(default_factory=dict)  # version -> why it cannot be loaded


class Router:
    """Routes a model's requests by its deployment state, followed in the background (module docstring)."""

    def __init__(
        self,
        model: str,
        *,
        bootstrap_servers: str | None,
        topic: str = "driftline.deployments",
        storage: Storage | None = None,
        default_version: str | None = None,
        load_models: bool = True,
        signing_key: str | None = None,
        storage_poll: float = 30.0,
        kafka_config: dict[str, Any] | None = None,
        loader: Callable[[str], Any] | None = None,
    ) -> None:
        self.model = model
        self.topic = topic
        self.default_version = default_version
        self.status = RouterStatus()
        self._storage = storage
        self._bootstrap = bootstrap_servers
        self._kafka_config = kafka_config or {}
        self._storage_poll = storage_poll
        self._load_models = load_models
        self._loader = loader or (
            (lambda version: model_store.load_model(storage, model, version, signing_key=signing_key))
            if storage is not None
            else None
        )
        self._models: dict[str, Any] = {}
        self._table: RoutingTable | None = None
        self._fallback = Route(default_version) if default_version else None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._apply_lock = threading.Lock()
        self._assigned = False
        self._thread = threading.Thread(target=self._follow, name=f"driftline-router-{model}", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, model: str, **kwargs: Any) -> Router:
        kwargs.setdefault("storage", Storage.from_settings(settings))
        kwargs.setdefault("signing_key", settings.model_signing_key)
        kwargs.setdefault("kafka_config", dict(settings.kafka_options))
        return cls(model, bootstrap_servers=settings.bootstrap_servers, topic=settings.topics.deployments, **kwargs)

    @classmethod
    def from_env(cls, model: str, **kwargs: Any) -> Router:
        return cls.from_settings(Settings.from_env(), model, **kwargs)

    # -- the serving path -------------------------------------------------------------------------------------
    def route(self, key: str | bytes | int) -> Route:
        """The version that answers ``key``'s request (and a shadow to mirror it to). Never waits."""
        table = self._table
        if table is not None:
            return table.route(key)
        if self._fallback is not None:
            return self._fallback
        raise NoDeploymentError(
            f"no deployment state of model {self.model!r} is known yet (none stored, nothing on {self.topic}); "
            "pass default_version= to serve one until it is, or call wait_ready() at start-up"
        )

    @property
    def state(self) -> DeploymentState | None:
        table = self._table
        return table.state if table is not None else None

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait (at start-up, not per request) until a deployment state is in use; ``False`` on timeout."""
        return self._ready.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the background thread --------------------------------------------------------------------------------
    def apply(self, state: DeploymentState, source: str) -> bool:
        """Use ``state`` if it is newer than the one in use (loading its versions first); ``True`` if it was."""
        if state.model != self.model:
            return False
        with self._apply_lock:
            current = self._table
            if current is not None and state.revision <= current.revision:
                return False
            wanted = [v for v, share in state.shares().items() if share > 0]
            wanted += [state.shadow] if state.shadow and state.shadow_share > 0 else []
            if state.strategy == "blue_green" and state.previous:
                wanted.append(state.previous)  # kept warm: a rollback switches without loading
            unavailable = {version for version in dict.fromkeys(wanted) if not self._loaded(version)}
            if state.serving in unavailable and state.serving not in self._models and current is not None:
                log.error(
                    "router %s: stable version %s cannot be loaded; keeping revision %d",
                    self.model,
                    state.serving,
                    current.revision,
                )
                return False
            self._models = {v: self._models[v] for v in wanted if v in self._models}
            self._table = RoutingTable(routable(state, unavailable - {state.serving}), self._models)
            self.status.revision, self.status.source, self.status.updated_at = state.revision, source, time.time()
            self._ready.set()
            log.info("router %s: revision %d from %s: %s", self.model, state.revision, source, self._table.versions())
            return True

    def _loaded(self, version: str) -> bool:
        if not self._load_models or version in self._models:
            return True
        if self._loader is None:
            self.status.problems[version] = "no model store to load it from"
            return False
        try:
            self._models[version] = self._loader(version)
        except Exception as exc:  # noqa: BLE001 - any failure to load keeps the version out of traffic
            self.status.problems[version] = str(exc)
            log.error("router %s: version %s is not routed to: %s", self.model, version, exc)
            return False
        self.status.problems.pop(version, None)
        return True

    def _read_storage(self) -> None:
        if self._storage is None:
            return
        try:
            state = model_store.read_deployment_state(self._storage, self.model)
        except Exception as exc:  # noqa: BLE001 - storage unreachable: the topic and the state in use go on
            log.warning("router %s: cannot read the stored deployment state: %s", self.model, exc)
            return
        if state is not None:
            self.apply(state, "storage")

    def _follow(self) -> None:
        self._read_storage()
        next_storage_read = time.monotonic() + self._storage_poll
        consumer = self._consumer()
        try:
            while not self._stop.is_set():
                if consumer is not None and not self._assigned:
                    self._assign(consumer)
                message = consumer.poll(0.2) if consumer is not None else None
                if consumer is None:
                    self._stop.wait(0.2)
                if message is not None:
                    self._take(message)
                if time.monotonic() >= next_storage_read:
                    self._read_storage()
                    next_storage_read = time.monotonic() + self._storage_poll
        finally:
            if consumer is not None:
                consumer.close()

    def _consumer(self) -> Consumer | None:
        if not self._bootstrap:
            return None
        return Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"driftline-router-{self.model}",  # never joined: partitions are assigned
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                **self._kafka_config,
            }
        )

    def _assign(self, consumer: Consumer) -> None:
        try:
            metadata = consumer.list_topics(self.topic, timeout=1.0).topics.get(self.topic)
        except Exception as exc:  # noqa: BLE001 - the broker is unreachable: try again on the next turn
            log.debug("router %s: no metadata for %s: %s", self.model, self.topic, exc)
            self._stop.wait(1.0)
            return
        if metadata is None or metadata.error is not None or not metadata.partitions:
            self._stop.wait(1.0)  # the topic does not exist yet
            return
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(metadata.partitions)])
        self._assigned = True

    def _take(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.debug("router %s: %s", self.model, error)
            return
        if message.key() != self.model.encode() or message.value() is None:
            return
        try:
            state = DeploymentState.parse(message.value())
        except RecordError as exc:
            log.error(
                "router %s: skipping a message on %s that is not a deployment state: %s", self.model, self.topic, exc
            )
            return
        self.apply(state, "topic")
