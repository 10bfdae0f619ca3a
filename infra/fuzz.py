"""``make fuzz``: generated malformed and hostile events through the producer, the worker and ingest, on real parts.

On the embedded broker, with a real ``driftline worker`` process and ingest writing Parquet to local storage,
it sends Hypothesis-generated cases, each valid or hostile by construction:

* valid events with awkward but legal content: feature names of any Unicode text (``../x``, spaces, dots),
  values that change type from event to event, huge integers, long strings, every kind of prediction;
* hostile events: names that break the name rule (``..``, ``../../../../outside``, separators, control
  characters, Unicode, 200 characters), times years ahead or behind, latencies that are negative, text or
  booleans, missing and unknown fields, the wrong event type or schema version, features that are not a
  mapping or hold nested values, JSON that is not an object, ``NaN`` and ``Infinity``, bytes that are not
  JSON or not UTF-8, tombstones, and events over the size limit.

Half of each kind goes through the embedded producer (which dead-letters what it refuses itself), half straight
to the predictions topic through a bare Kafka producer, as a careless service would send it. Then it checks that
every hostile case was dead-lettered and none reached storage, that every valid event reached storage, that
the worker never exited and ingest never raised, and that no file appeared outside the storage root (the root
is nested eight folders deep inside a sandbox that is scanned whole).

It ends with the line ``fuzz: events=<n> dead_lettered=<n> crashes=<n> lost=<n> outside_root=<n>`` and exits 1
when a hostile case was not dead-lettered or was stored, or anything crashed, was lost or escaped. ``--events``
sets the size (CI runs 2,000 through tests/integration/test_fuzz.py); ``--seed`` makes a run repeatable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from driftline.dags.tasks.ingest import ingest_topic
from driftline.infra.chaos_checks import read_topic
from driftline.infra.chaos_processes import Worker
from driftline.infra.local_stack import free_port, start_broker, stop_process
from driftline.schemas.records import DeadLetter
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.streams.producer import DriftlineProducer
from driftline.streams.topics import ensure_topics

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # the rule of schemas/names.py, restated as the spec
MAX_EVENT_BYTES = 16_384
REQUEST_ID = re.compile(r'"request_id":\s*"([hv]-\d+)"')


# -- the cases ----------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One generated event: ``payload`` (a mapping the embedded producer can take) or ``raw`` bytes, or neither
    (a tombstone). ``valid`` is known by construction; ``what`` says which mutation made a hostile one."""

    request_id: str
    valid: bool
    what: str
    payload: dict[str, Any] | None = None
    raw: bytes | None = None
    tombstone: bool = False
    message_time: datetime | None = None  # the Kafka timestamp a bare producer sets (its own clock when None)


text = st.text(st.characters(codec="utf-8"), max_size=40)  # any Unicode that UTF-8 can encode
valid_names = st.sampled_from(["churn", "fraud", "m-1.2_x", "v1", "Ranker.v2"])
bad_names = st.one_of(
    st.sampled_from(
        [
            ".",
            "..",
            "../../../../outside",
            "..\\..\\outside",
            "a/b",
            "/abs",
            "a\\b",
            "",
            " lead",
            "-flag",
            "_x",
            "é",
            "nul\x00",
            "new\nline",
            "tab\tx",
            "x" * 200,
            "ok/../..",
            "%2e%2e",
        ]
    ),
    text.filter(lambda value: not NAME.fullmatch(value)),
)
feature_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: larger than any Parquet integer column holds
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
valid_features = st.dictionaries(
    st.one_of(st.sampled_from(["x", "age", "plan", "../x", "a.b", " ", "features.x"]), text.filter(bool)),
    feature_value,
    max_size=6,
)


@st.composite
def valid_payload(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event_type": "prediction",
        "model": draw(valid_names),
        "model_version": draw(valid_names),
        "features": draw(valid_features),
        "prediction": draw(
            st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(-1e9, 1e9), text)
        ),
        "latency_ms": draw(st.floats(0, 1e6)),
        "error": draw(st.one_of(st.none(), text)),
    }


# Mutations of a valid payload that make it invalid, each with what it is.
def _set(key: str, values: st.SearchStrategy[Any], what: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return values.map(lambda value: (what, {key: value}))


payload_mutations = st.one_of(
    _set("model", bad_names, "model name breaks the rule"),
    _set("model_version", bad_names, "version name breaks the rule"),
    _set("latency_ms", st.one_of(st.floats(max_value=-1e-9), st.just("12.5"), st.booleans(), st.none()), "latency"),
    _set("features", st.one_of(st.lists(feature_value, max_size=3), text, st.integers()), "features not a mapping"),
    _set("features", st.dictionaries(text.filter(bool), st.dictionaries(text, st.integers()), min_size=1), "nested"),
    _set("features", st.just({"blob": "x" * (MAX_EVENT_BYTES + 1)}), "over the size limit"),
    _set("event_type", st.sampled_from(["label", "metric", "", None]), "wrong event type"),
    _set("schema_version", st.sampled_from([0, 2, "1", None]), "schema version"),
    _set("surprise", text, "unknown field"),
    _set("request_id", st.just(""), "empty request id"),
)
time_mutations = st.one_of(
    st.integers(1, 80 * 365).map(lambda days: ("stamped ahead", timedelta(days=days))),
    st.integers(1, 80 * 365).map(lambda days: ("stamped ahead, its message too", timedelta(days=days))),
    st.integers(8, 80 * 365).map(lambda days: ("stamped long ago", -timedelta(days=days))),
)
# Valid events may be stamped up to a few minutes ahead (clocks differ); within the bound they are counted.
valid_shift = st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, 240)).map(lambda s: timedelta(seconds=s))
raw_garbage = st.one_of(
    st.binary(max_size=200).map(lambda data: ("arbitrary bytes", data)),
    st.just(("invalid UTF-8", b'{"event_type": "prediction", "model": "\xff\xfe"}')),
    st.sampled_from([b"[]", b"null", b"42", b'"text"', b"{", b"{}}", b"NaN"]).map(lambda d: ("JSON not an object", d)),
)


def _dropped(payload: dict[str, Any], missing: str) -> tuple[str, dict[str, Any]]:
    return f"missing {missing}", {k: v for k, v in payload.items() if k != missing}


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, Any]:
    """``("valid", payload)``, ``("mutated", (what, payload))``, ``("time", (what, payload, shift))``,
    ``("constant", payload)``, ``("raw", (what, bytes))`` or ``("tombstone", None)``."""
    kind = draw(st.sampled_from(["valid"] * 5 + ["mutated"] * 3 + ["time", "constant", "raw", "tombstone", "drop"]))
    payload = draw(valid_payload())
    specs: dict[str, st.SearchStrategy[Any]] = {
        "valid": valid_shift.map(lambda shift: (payload, shift)),
        "mutated": payload_mutations.map(lambda mutation: (mutation[0], {**payload, **mutation[1]})),
        "drop": st.sampled_from(["model", "model_version", "features", "latency_ms", "prediction"]).map(
            lambda missing: _dropped(payload, missing)
        ),
        "time": time_mutations.map(lambda mutation: (mutation[0], payload, mutation[1])),
        "constant": st.just(payload),
        "raw": raw_garbage,
        "tombstone": st.none(),
    }
    return ("mutated" if kind == "drop" else kind), draw(specs[kind])


def generate(count: int, run_seed: int) -> list[tuple[str, Any]]:
    """``count`` cases from Hypothesis, repeatable by ``run_seed``."""
    drawn: list[tuple[str, Any]] = []

    @seed(run_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(case: tuple[str, Any]) -> None:
        drawn.append(case)

    collect()
    if len(drawn) < count:
        raise RuntimeError(f"Hypothesis generated {len(drawn)} cases, not {count}; try another --seed")
    return drawn


def materialize(index: int, kind: str, spec: Any, now: datetime) -> Case:
    """The case ``index`` as it will be sent, stamped now (valid ones within a few seconds of it)."""
    if kind == "valid":
        payload, shift = spec
        payload = {**payload, "request_id": f"v-{index}", "event_time": (now + shift).isoformat()}
        return Case(f"v-{index}", True, "valid" if not shift else "valid, stamped minutes ahead", payload=payload)
    request_id = f"h-{index}"
    if kind == "mutated":
        what, payload = spec
        payload = {"request_id": request_id, **payload} if "request_id" not in payload else payload
        return Case(request_id, False, what, payload={**payload, "event_time": now.isoformat()})
    if kind == "time":
        what, payload, shift = spec
        return Case(
            request_id,
            False,
            what,
            payload={**payload, "request_id": request_id, "event_time": (now + shift).isoformat()},
            message_time=now + shift if "message too" in what else None,  # a producer that sets the timestamp
        )
    if kind == "constant":
        text_form = json.dumps({**spec, "request_id": request_id, "event_time": now.isoformat()})
        return Case(
            request_id,
            False,
            "NaN in JSON",
            raw=text_form.replace('"latency_ms": ', '"latency_ms": NaN, "x": ', 1).encode(),
        )
    if kind == "raw":
        what, data = spec
        return Case(request_id, False, what, raw=data)
    return Case(request_id, False, "tombstone", tombstone=True)


# -- the run ------------------------------------------------------------------------------------------------
@dataclass
class FuzzResult:
    events: int = 0
    valid: int = 0
    hostile: int = 0
    dead_lettered: int = 0
    crashes: int = 0
    lost: int = 0
    outside_root: int = 0
    hostile_missed: list[str] = field(default_factory=list)
    hostile_stored: list[str] = field(default_factory=list)
    valid_dead_lettered: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        problems = (self.hostile_missed, self.hostile_stored, self.valid_dead_lettered)
        return not (self.crashes or self.lost or self.outside_root or any(problems))

    def line(self) -> str:
        return (
            f"fuzz: events={self.events} dead_lettered={self.dead_lettered} crashes={self.crashes} "
            f"lost={self.lost} outside_root={self.outside_root}"
        )


@contextmanager
def broker(sandbox: Path) -> Iterator[str]:
    port = free_port()
    pid = start_broker(port, sandbox / "broker.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(pid)


PRODUCER_REQUIRED = {"model", "model_version", "features", "prediction", "latency_ms", "request_id", "event_time"}
PRODUCER_ARGUMENTS = PRODUCER_REQUIRED | {"error", "event_type"}


def fits_the_producer(case: Case) -> bool:
    """Whether the embedded producer's ``log_prediction`` can take the case as it is: its fields are the call's
    arguments, it says it is a prediction, and it names its request (an empty id would be replaced by a new one)."""
    payload = case.payload
    return (
        payload is not None
        and case.message_time is None  # the embedded producer leaves the message's time to the client
        and PRODUCER_REQUIRED <= set(payload) <= PRODUCER_ARGUMENTS
        and payload.get("event_type", "prediction") == "prediction"
        and bool(payload["request_id"])
    )


def send(cases_to_send: list[Case], settings_: Settings, result: FuzzResult) -> dict[tuple[int, int], str]:
    """Every case onto the predictions topic: even-numbered through the embedded producer when it has a mapping,
    the rest through a bare producer; returns (partition, offset) -> request id of the bare producer's."""
    raw_offsets: dict[tuple[int, int], str] = {}

    def delivered(request_id: str) -> Any:
        def callback(error: Any, message: Any) -> None:
            if error is None:
                raw_offsets[(message.partition(), message.offset())] = request_id
            else:  # the broker refused it: said, so a "lost" event can be told from one never stored
                result.notes.append(f"the broker refused {request_id}: {error}")

        return callback

    bare = Producer({"bootstrap.servers": settings_.bootstrap_servers, "linger.ms": 5})
    with DriftlineProducer.from_settings(settings_) as producer:
        for number, case in enumerate(cases_to_send):
            if number % 2 == 0 and fits_the_producer(case):
                assert case.payload is not None
                fields = {k: v for k, v in case.payload.items() if k != "event_type"}
                try:
                    producer.log_prediction(**fields | {"event_time": datetime.fromisoformat(fields["event_time"])})
                except Exception as exc:  # noqa: BLE001 - the embedded producer must never raise: a crash
                    result.crashes += 1
                    result.notes.append(f"producer raised on {case.request_id} ({case.what}): {exc!r}")
                continue
            if case.tombstone:
                value = None
            elif case.raw is not None:
                value = case.raw
            else:
                value = json.dumps(case.payload, allow_nan=True).encode()
            bare.produce(
                settings_.topics.predictions,
                value,
                key=case.request_id.encode(),
                on_delivery=delivered(case.request_id),
                timestamp=int(case.message_time.timestamp() * 1000) if case.message_time else 0,
            )
            bare.poll(0)
        left = bare.flush(60)
        if left:
            result.notes.append(f"{left} bare messages were not delivered within 60 s")
    return raw_offsets


def dead_letter_ids(settings_: Settings, raw_offsets: dict[tuple[int, int], str]) -> set[str]:
    ids: set[str] = set()
    for _, value in read_topic(settings_.bootstrap_servers, settings_.topics.dead_letter, idle=5.0):
        letter = DeadLetter.parse(value)
        if (
            letter.partition is not None
            and letter.offset is not None
            and (letter.partition, letter.offset) in raw_offsets
        ):
            ids.add(raw_offsets[(letter.partition, letter.offset)])
            continue
        found = REQUEST_ID.search(letter.original if isinstance(letter.original, str) else json.dumps(letter.original))
        if found:
            ids.add(found.group(1))
    return ids


def stored_ids(storage: Storage) -> set[str]:
    ids: set[str] = set()
    for path in storage.fs.glob(f"{storage.root}/predictions/**/*.parquet"):
        ids.update(pq.read_table(path, columns=["request_id"]).column(0).to_pylist())
    return ids


def files_outside(sandbox: Path, root: Path) -> list[Path]:
    """Files anywhere in the sandbox but under the storage root and driftline's own home and logs."""
    allowed = (root, sandbox / "home", sandbox / "logs", sandbox / "broker.log")
    return [
        path
        for path in sandbox.rglob("*")
        if path.is_file() and not any(path == a or a in path.parents for a in allowed)
    ]


def last_critical(log_path: Path, count: int = 3) -> list[str]:
    """The last CRITICAL and ERROR lines of a worker's log: why it exited, for the run's notes."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if "[CRITICAL]" in line or "[ERROR]" in line][-count:]


@contextmanager
def supervised_worker(settings_: Settings, logs: Path, result: FuzzResult) -> Iterator[Worker]:
    """A real worker, healthy before the cases are sent; any exit of it is a crash (counted, and restarted)."""
    worker = Worker("worker", settings_, logs)
    worker.start()
    stop = threading.Event()

    def supervise() -> None:
        while not stop.wait(1.0):
            before = len(worker.restarts)
            worker.supervise()
            if len(worker.restarts) > before:
                result.crashes += 1
                result.notes.append(f"the worker exited with {worker.restarts[-1]} and was restarted")
                result.notes += [f"  worker log: {line[:400]}" for line in last_critical(worker.log_path)]

    supervisor = threading.Thread(target=supervise, daemon=True)
    supervisor.start()
    try:
        deadline = time.monotonic() + 90
        while (health := worker.health()) is None or health[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not become healthy in 90 s; see {worker.log_path}")
            time.sleep(1)
        yield worker
    finally:
        stop.set()
        supervisor.join()
        if worker.process is not None and worker.process.poll() is not None:
            result.crashes += 1
            result.notes.append(f"the worker had exited with {worker.process.returncode}")
        worker.stop()


def ingest_everything(settings_: Settings, storage: Storage, result: FuzzResult) -> None:
    """Ingest until a run finds nothing new; an exception is a crash."""
    for attempt in range(3):
        try:
            report = ingest_topic(
                settings_, storage, settings_.topics.predictions, kind="predictions", idle_timeout=5.0
            )
        except Exception as exc:  # noqa: BLE001 - counted: ingest must not crash on any input
            result.crashes += 1
            result.notes.append(f"ingest raised: {exc!r}")
            return
        if attempt and not report.rows_written:
            return


def wait_for_dead_letters(settings_: Settings, raw_offsets: dict[tuple[int, int], str], wanted: set[str]) -> set[str]:
    deadline = time.monotonic() + 120
    while True:
        dead = dead_letter_ids(settings_, raw_offsets)
        if wanted <= dead or time.monotonic() > deadline:
            return dead


def tally(result: FuzzResult, sent: list[Case], dead: set[str], stored: set[str], outside: list[Path]) -> None:
    by_id = {case.request_id: case for case in sent}
    valid_ids = {case.request_id for case in sent if case.valid}
    hostile_ids = set(by_id) - valid_ids
    result.dead_lettered = len(dead & hostile_ids)
    result.valid_dead_lettered = len(dead & valid_ids)
    result.hostile_missed = sorted(hostile_ids - dead)
    result.hostile_stored = sorted(hostile_ids & stored)
    result.lost = len(valid_ids - stored)
    result.outside_root = len(outside)
    for request_id in result.hostile_missed[:10]:
        result.notes.append(f"not dead-lettered: {request_id} ({by_id[request_id].what})")
    for request_id in result.hostile_stored[:10]:
        result.notes.append(f"stored although hostile: {request_id} ({by_id[request_id].what})")
    for request_id in sorted(valid_ids - stored)[:10]:
        result.notes.append(f"lost: {request_id} {json.dumps(by_id[request_id].payload, default=str)[:300]}")
    result.notes += [f"outside the storage root: {path}" for path in outside[:10]]


def run_fuzz(count: int, run_seed: int, sandbox: Path, say: Any = print) -> FuzzResult:
    result = FuzzResult()
    root = sandbox.joinpath(*[f"d{i}" for i in range(8)], "storage")
    root.mkdir(parents=True)
    (sandbox / "logs").mkdir()
    say(f"fuzz: generating {count} cases (seed {run_seed})")
    drawn = generate(count, run_seed)
    with broker(sandbox) as bootstrap:
        settings_ = Settings(
            bootstrap_servers=bootstrap,
            home=str(sandbox / "home"),
            storage_url=str(root),
            topic_prefix="fuzz",
            partitions=4,
            fast_group_timeouts=True,
            max_event_bytes=MAX_EVENT_BYTES,
        )
        ensure_topics(settings_)
        storage = Storage.from_settings(settings_)
        with supervised_worker(settings_, sandbox / "logs", result):
            now = datetime.now(UTC)
            sent = [materialize(i, kind, spec, now + timedelta(milliseconds=i)) for i, (kind, spec) in enumerate(drawn)]
            result.events = len(sent)
            result.valid = sum(case.valid for case in sent)
            result.hostile = result.events - result.valid
            say(f"fuzz: sending {result.valid} valid and {result.hostile} hostile events")
            raw_offsets = send(sent, settings_, result)
            say("fuzz: ingest")
            ingest_everything(settings_, storage, result)
            say("fuzz: waiting for the worker's dead letters")
            dead = wait_for_dead_letters(settings_, raw_offsets, {c.request_id for c in sent if not c.valid})
        tally(result, sent, dead, stored_ids(storage), files_outside(sandbox, root))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="driftline fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--keep", type=Path, help="keep the sandbox (broker log, worker log, storage) here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="driftline-fuzz-") as temporary:
        sandbox = args.keep or Path(temporary)
        sandbox.mkdir(parents=True, exist_ok=True)
        result = run_fuzz(args.events, args.seed, sandbox)
    for note in result.notes:
        print(f"  {note}")
    print(
        f"fuzz: valid={result.valid} hostile={result.hostile} hostile_missed={len(result.hostile_missed)} "
        f"hostile_stored={len(result.hostile_stored)} valid_dead_lettered={result.valid_dead_lettered} "
        f"seed={args.seed}"
    )
    print(result.line())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
