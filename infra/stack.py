"""``make stack``: driftline as it is deployed, one environment per role, on this machine, under real traffic.

``python -m driftline.infra.stack [--events N] [--keep]`` does, printing one line per stage:

1. **environments**: builds the wheel of this checkout (from a copy) and installs it with uv and
   ``constraints.txt`` into one environment per role (:data:`ROLES`): ``service``, the wheel alone (the client:
   producer, router, event schemas); ``worker``, ``driftline[worker]``; ``airflow``, ``driftline[airflow,postgres]``
   (psycopg2 for the scheduler and tasks, asyncpg for the API server). The service's environment must hold none
   of the other roles' libraries (those the import contract forbids the client, :func:`not_in_client`).
2. **local stack**: :class:`~driftline.infra.local_stack.LocalStack` in the run folder: the embedded broker on a free
   loopback port and, unless ``DRIFTLINE_AIRFLOW_DATABASE=sqlite``, a PostgreSQL server on a Unix socket; the
   Airflow database migrated by the airflow environment's own ``airflow db migrate``.
3. **models**: model ``churn``: v1, a logistic model trained on the reference data, and v2, a heavier version (the
   same model blended with the nearest of 20,000 remembered training rows, measured on every call), both stored in
   the model store; v1 deployed; the monitor config (10 s metric windows, latency p95 above
   :data:`LATENCY_P95_MS` alerts; 1 min drift windows).
4. **processes**: a local Slack Web API endpoint (:mod:`.local_slack`), the stream worker (the worker environment's
   ``driftline worker``) and the model service (:mod:`.stack_service`, run by the service environment's python).
5. **traffic**: ``--events`` requests over HTTP, one after another. At half of them the features shift away from the
   training data (x0 and x3 move, the plan mix changes) and v2 is switched in through the deployments topic, which
   the service's router follows: the latencies the service measures around v2 are higher, for real.
6. **stream**: the service is stopped with SIGTERM (its producer sends what it holds; it writes its counts), the
   worker's count of events is read from its ``/metrics``, its closed windows from the metrics topic, and the
   latency alert on v2 from what Slack received; then the worker is stopped.
7. **Airflow**: the airflow environment's API server and scheduler (:class:`~.airflow_services.AirflowServices`)
   run the ingest DAG once (after the traffic's last minute has ended), then the drift DAG over each minute of the
   traffic (Airflow's backfill): each run checks its window against the reference, writes a report, and a
   drifted window's alert goes to Slack.
8. **checks** (:func:`problems`): every role ran; the service environment is at most :data:`CLIENT_MB_LIMIT` MB;
   every request was answered and logged and every event delivered by the producer; the worker counted each event
   once and its windows hold them all; ingest landed each once; a drift report says drift; Slack received a latency
   alert on v2 and a drift alert. Then every process is stopped (also on failure or Ctrl-C) and the run folder
   removed (kept with ``--keep``, or when the run failed: the logs are there).

The last line is ``stack: roles=… client_mb=… events_sent=… events_counted=… drift_reports=… alerts=…
airflow_db=… lost=…`` (:class:`Figures`), also when a stage failed, after a line saying which; the exit status
is then 1. The figures:

- ``roles``: the role environments whose processes ran (the service answered its health check, the worker said it
  was ready, Airflow's API server answered);
- ``client_mb``: the service environment's size right after installation, in MiB: every regular file under the
  virtual environment (the interpreter itself is a link to the base Python and is not counted; no bytecode yet);
- ``events_sent``: the requests the service answered after logging their prediction (its own count at stop);
- ``events_counted``: the prediction events of the model that the worker counted (``driftline_model_events_total``
  on its ``/metrics``);
- ``drift_reports``: the drift reports the drift DAG wrote;
- ``alerts``: the messages the Slack endpoint received (``chat.postMessage``);
- ``airflow_db``: the scheme of the ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` that Airflow ran with;
- ``lost``: ``events_sent`` minus the smaller of ``events_counted`` and the rows ingest landed on storage (at least
  0): each event the service logged that the worker did not count or ingest did not land. More counted or landed
  than sent (a copy) is no loss, but fails the checks too.

Everything listens on 127.0.0.1 (PostgreSQL on a Unix socket only), on free ports.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.infra.airflow_services import AirflowServices
from driftline.infra.local_slack import SlackMessage, slack_messages
from driftline.infra.local_stack import LOOPBACK, LocalStack, StackError, free_port, stop_child
from driftline.schemas.records import WindowMetrics
from driftline.schemas.settings import Settings

if TYPE_CHECKING:
    from driftline.infra.local_slack import SlackEndpoint

MODEL = "churn"
ROOT = Path(__file__).resolve().parents[1]  # the checkout (driftline/infra is a link to infra/)
# Each role's environment: the wheel with these extras.
ROLES = {"service": "", "worker": "[worker]", "airflow": "[airflow,postgres]"}
CLIENT_MB_LIMIT = 120.0
MIN_EVENTS = 1000
METRICS_WINDOW = "10s"
MIN_COUNT = 20  # events in a window before its latency can raise (or resolve) an alert
LATENCY_P95_MS = 5.0  # v1 answers in well under a millisecond; v2 measures its distance to every remembered row
DRIFT_WINDOW = timedelta(minutes=1)  # the drift DAG's schedule too: a run per minute of traffic
V2_ROWS = 20_000
LATENESS_SECONDS = 2.0


class StackFailure(RuntimeError):
    """A stage of the stack failed; the message says which and where its log is."""


# -- the pure parts ---------------------------------------------------------------------------------------------


@dataclass
class Figures:
    """The final line's figures (module docstring); what was not reached stays 0."""

    roles: int = 0
    client_mb: float = 0.0
    events_sent: int = 0
    events_counted: int = 0
    events_landed: int = 0
    drift_reports: int = 0
    alerts: int = 0
    airflow_db: str = "unknown"

    @property
    def lost(self) -> int:
        return lost_events(self.events_sent, self.events_counted, self.events_landed)

    def line(self) -> str:
        return (
            f"stack: roles={self.roles} client_mb={self.client_mb:.1f} events_sent={self.events_sent} "
            f"events_counted={self.events_counted} drift_reports={self.drift_reports} alerts={self.alerts} "
            f"airflow_db={self.airflow_db} lost={self.lost}"
        )


def lost_events(sent: int, counted: int, landed: int) -> int:
    """Events the service logged that the worker did not count or ingest did not land (module docstring)."""
    return max(0, sent - min(counted, landed))


def database_kind(url: str) -> str:
    """``postgresql`` or ``sqlite`` (or whatever else) from a SQLAlchemy URL: its scheme without the driver."""
    scheme = url.partition("://")[0] if "://" in url else url.partition(":")[0]
    return scheme.partition("+")[0] or "unknown"


_SAMPLE = re.compile(r"^driftline_model_events_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.MULTILINE)


def counted_events(metrics_text: str, model: str) -> dict[str, int]:
    """Events of ``model`` the worker counted, per version, from its Prometheus text (``/metrics``)."""
    counted: dict[str, int] = {}
    for sample in _SAMPLE.finditer(metrics_text):
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sample["labels"]))
        if labels.get("model") == model:
            version = labels.get("model_version", "")
            counted[version] = counted.get(version, 0) + round(float(sample["value"]))
    return counted


@dataclass(frozen=True)
class VersionWindows:
    """A version's metric windows as the worker published them: how many, the events in them, and the range of
    their latency p95 (windows of at least ``min_count`` events)."""

    windows: int
    events: int
    p95_low: float | None
    p95_high: float | None


def version_windows(windows: Iterable[WindowMetrics], min_count: int) -> dict[str, VersionWindows]:
    """Per version, the windows' summary (:class:`VersionWindows`). Pure."""
    grouped: dict[str, list[WindowMetrics]] = {}
    for window in windows:
        grouped.setdefault(window.model_version, []).append(window)
    summary = {}
    for version, group in sorted(grouped.items()):
        p95 = [w.latency_p95_ms for w in group if w.count >= min_count and w.latency_p95_ms is not None]
        summary[version] = VersionWindows(
            len(group), sum(w.count for w in group), min(p95, default=None), max(p95, default=None)
        )
    return summary


def latency_alerts(messages: Iterable[SlackMessage], version: str) -> list[SlackMessage]:
    return [m for m in messages if m.kind == "threshold" and "p95 latency" in m.text and m.version == version]


def problems(
    figures: Figures,
    *,
    requests: int,
    service: Mapping[str, Any],
    messages: Sequence[SlackMessage],
    drifted_reports: int,
    window_events: int,
) -> list[str]:
    """What the run's figures say went wrong, one phrase each (none: every part did its job). Pure."""
    found = []
    producer = service.get("producer", {})
    if figures.roles != len(ROLES):
        found.append(f"{figures.roles} of {len(ROLES)} roles ran")
    if figures.client_mb > CLIENT_MB_LIMIT:
        found.append(f"the service environment takes {figures.client_mb:.1f} MB (at most {CLIENT_MB_LIMIT:g})")
    if figures.events_sent != requests:
        found.append(f"the service answered and logged {figures.events_sent} of {requests} requests")
    if producer.get("delivered") != service.get("logged") or producer.get("dropped") or producer.get("pending"):
        found.append(f"the service's producer did not deliver every event: {producer}")
    if figures.events_counted != figures.events_sent:
        found.append(f"the worker counted {figures.events_counted} events, the service sent {figures.events_sent}")
    if window_events != figures.events_counted:
        found.append(f"the worker's published windows hold {window_events} events, it counted {figures.events_counted}")
    if figures.events_landed != figures.events_sent:
        found.append(f"ingest landed {figures.events_landed} events, the service sent {figures.events_sent}")
    if figures.drift_reports < 1 or drifted_reports < 1:
        found.append(f"{figures.drift_reports} drift reports, {drifted_reports} saying drift (at least 1 expected)")
    if not latency_alerts(messages, "v2"):
        found.append("Slack received no latency alert on v2")
    if not any(m.kind == "drift" for m in messages):
        found.append("Slack received no drift alert")
    if figures.airflow_db not in ("postgresql", "sqlite"):
        found.append(f"Airflow ran on {figures.airflow_db!r}")
    return found


def not_in_client(pyproject: Path) -> list[str]:
    """What the service's environment must not hold: the modules the import contract forbids the client
    (``[tool.importlinter]``, contract ``client``): every other role's libraries."""
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    return [str(module) for c in contracts if c["id"] == "client" for module in c["forbidden_modules"]]


def megabytes(folder: Path) -> float:
    """MiB of the regular files under ``folder`` (links not followed, nor counted)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 2**20


def minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def quarter_floor(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def service_models(v1: Any, neighbours: Any, outcomes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """v1 and v2 as the plain data :func:`driftline.infra.stack_service.score` evaluates: v1 is the trained
    logistic model (a :class:`~.demo_model.LogisticModel`); v2 blends it half and half with the outcome of the 25
    nearest of ``neighbours`` (a frame of features) whose ``outcomes`` are known."""
    from driftline.infra import demo_model

    logistic = {
        "kind": "logistic",
        "numeric": list(demo_model.NUMERIC),
        "means": [float(x) for x in v1.means],
        "scales": [float(x) for x in v1.scales],
        "categorical": [[name, level] for name, levels in demo_model.CATEGORICAL.items() for level in levels],
        "weights": [float(x) for x in v1.weights],
        "bias": float(v1.bias),
    }
    from driftline.infra.stack_service import design_row

    records: list[dict[str, Any]] = neighbours.to_dict(orient="records")
    rows = [design_row(logistic, record) for record in records]
    heavier = {"kind": "knn_blend", "base": logistic, "rows": rows, "outcomes": [int(y) for y in outcomes]}
    return logistic, {**heavier, "k": 25, "blend": 0.5}


# -- processes --------------------------------------------------------------------------------------------------


def base_environment() -> dict[str, str]:
    """This process's environment without driftline's, Airflow's or a virtual environment's settings: what each
    role's processes start from, before their own settings."""
    own = ("DRIFTLINE_", "AIRFLOW_", "AIRFLOW__", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


@dataclass
class RoleEnvironment:
    """One role's virtual environment under ``path``: the wheel with ``extras``."""

    name: str
    path: Path
    extras: str

    def bin(self, command: str) -> str:
        return str(self.path / "bin" / command)

    def create(self, wheel: Path, log: Path) -> None:
        uv = str(Path(sys.executable).with_name("uv"))
        requirement = f"driftline{self.extras} @ {wheel.as_uri()}"
        for command in (
            [uv, "venv", "--quiet", "--python", sys.executable, str(self.path)],
            [uv, "pip", "install", "--python", self.bin("python"), "-c", str(ROOT / "constraints.txt"), requirement],
        ):
            with open(log, "ab") as out:
                done = subprocess.run(
                    command, stdout=out, stderr=subprocess.STDOUT, env=base_environment(), check=False
                )
            if done.returncode != 0:
                raise StackFailure(f"installing the {self.name} environment failed; see {log}")

    def installed(self, modules: Sequence[str]) -> list[str]:
        """Which of ``modules`` this environment can import."""
        probe = (
            "import importlib.util, json; "
            f"print(json.dumps([m for m in {list(modules)!r} if importlib.util.find_spec(m)]))"
        )
        done = subprocess.run(
            [self.bin("python"), "-c", probe], cwd=self.path, capture_output=True, text=True, check=True
        )
        found: list[str] = json.loads(done.stdout)
        return found

    def environment(self, settings: Mapping[str, str]) -> dict[str, str]:
        """The environment of this role's processes: ``settings`` and this environment's commands first."""
        base = base_environment()
        return {
            **base,
            **settings,
            "PATH": f"{self.path / 'bin'}{os.pathsep}{base.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.path),
        }


@dataclass
class Processes:
    """The long-running processes this run started; :meth:`stop_all` stops them, last started first."""

    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.started[name] = (
                subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd
                ),
                log,
            )

    def check_alive(self) -> None:
        for name, (process, log) in self.started.items():
            if process.poll() is not None:
                raise StackFailure(f"the {name} exited with {process.returncode}; see {log}")

    def stop(self, name: str, timeout: float = 30.0) -> int | None:
        """SIGTERM ``name`` and wait for it; its exit status."""
        entry = self.started.pop(name, None)
        if entry is None:
            return None
        stop_child(entry[0], timeout)
        return entry[0].returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.started)):
            self.stop(name)


class RoleAirflow(AirflowServices):
    """:class:`AirflowServices` run from the airflow role's environment, reading the DAGs of the package installed
    there (AirflowServices points them at this process's package, the checkout)."""

    def __init__(self, *args: Any, dags_folder: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env["AIRFLOW__CORE__DAGS_FOLDER"] = dags_folder


def published_windows(settings: Settings, model: str, idle: float = 3.0) -> list[WindowMetrics]:
    """The metric windows of ``model`` on the metrics topic, from its beginning until it is idle for ``idle`` s
    (its partitions assigned, not joined as a group: nothing to wait for, nothing committed)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = settings.topics.metrics
    consumer = Consumer(settings.kafka_client_config(**{"group.id": f"{settings.topic_prefix}-stack-reader"}))
    windows, quiet_since = [], time.monotonic()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in sorted(partitions)])
        while time.monotonic() - quiet_since < idle:
            messages = consumer.consume(500, timeout=0.5)
            if messages:
                quiet_since = time.monotonic()
            for message in messages:
                value = message.value()
                if message.error() is None and value is not None:
                    window = WindowMetrics.parse(value)
                    if window.model == model:
                        windows.append(window)
    finally:
        consumer.close()
    return windows


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - a loopback http:// address
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, processes: Processes, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        processes.check_alive()
        if time.monotonic() > deadline:
            raise StackFailure(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


# -- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Traffic:
    answered: dict[int, int] = field(default_factory=dict)  # status -> count
    by_version: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None
    seconds: float = 0.0


class StackRun:
    """One run of the stack under ``folder`` (module docstring)."""

    def __init__(self, folder: Path, events: int, env_settings: Settings) -> None:
        self.folder = folder
        self.events = events
        self.logs = folder / "logs"
        self.figures = Figures()
        self.processes = Processes()
        self.roles = {name: RoleEnvironment(name, folder / "venvs" / name, extras) for name, extras in ROLES.items()}
        self.ran: set[str] = set()
        self.service_stats: dict[str, Any] = {}
        self.messages: list[SlackMessage] = []
        self.drifted_reports = 0
        self.window_events = 0
        self.airflow_database = env_settings.airflow_database
        self.slack: SlackEndpoint | None = None
        self.service_port = 0
        self.stack: LocalStack | None = None
        self.airflow: RoleAirflow | None = None
        self.started = time.monotonic()

    def stage(self, line: str) -> None:
        """One stage's line: the time since the start, paths relative to the run folder."""
        print(f"{time.monotonic() - self.started:4.0f} s  {line.replace(f'{self.folder}/', '')}", flush=True)

    def received(self) -> list[SlackMessage]:
        """What the Slack endpoint has received so far."""
        assert self.slack is not None
        return slack_messages(self.slack.messages())

    # -- stages -------------------------------------------------------------------------------------------------
    def run(self) -> list[str]:
        """Every stage, then the checks; what went wrong (empty: nothing)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.environments()
        settings = self.local_stack()
        self.models(settings)
        self.start_processes(settings)
        traffic = self.traffic(settings)
        self.stream(traffic)
        self.run_airflow(settings, traffic)
        self.figures.roles = len(self.ran)
        return problems(
            self.figures,
            requests=self.events,
            service=self.service_stats,
            messages=self.messages,
            drifted_reports=self.drifted_reports,
            window_events=self.window_events,
        )

    def environments(self) -> None:
        from driftline.infra.airflow_versions import build_wheel

        started = time.monotonic()
        wheel = build_wheel(self.folder / "wheel")
        log = self.logs / "install.log"
        for role in self.roles.values():
            role.create(wheel, log)
        service = self.roles["service"]
        self.figures.client_mb = megabytes(service.path)
        heavy = service.installed(not_in_client(ROOT / "pyproject.toml"))
        if heavy:
            raise StackFailure(f"the service environment holds other roles' libraries: {', '.join(heavy)}")
        sizes = ", ".join(f"{name} {megabytes(role.path):.0f} MB" for name, role in self.roles.items())
        self.stage(f"environments: {wheel.name} into {sizes} in {time.monotonic() - started:.0f} s (log {log})")

    def local_stack(self) -> Settings:
        from driftline.infra.local_slack import SlackEndpoint
        from driftline.infra.local_stack import migrate_airflow_db
        from driftline.streams.topics import ensure_topics

        self.slack = SlackEndpoint()
        base = Settings(
            home=str(self.folder),
            airflow_database=self.airflow_database,
            topic_prefix="stack",
            allowed_lateness_seconds=LATENESS_SECONDS,
            idle_close_seconds=2.0,
            drift_schedule="* * * * *",
            slack_token="xoxb-stack-local",  # noqa: S106 - the local endpoint's, not a secret
            slack_channel="#ml-alerts",
            slack_base_url=self.slack.base_url,
            worker_port=free_port(),
        )
        self.stack = LocalStack(self.folder, free_port(), base)
        started = time.monotonic()
        for line in self.stack.up(migrate_airflow=False):
            if line.startswith(("broker", "PostgreSQL")):
                self.stage(f"local stack: {line}")
        database_url = self.stack.airflow_database_url()
        connection = self.stack.environment()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        self.figures.airflow_db = database_kind(connection)
        line = migrate_airflow_db(
            self.stack.airflow_home, database_url, airflow_bin=self.roles["airflow"].bin("airflow")
        )
        self.stage(f"local stack: {line} by the airflow environment ({time.monotonic() - started:.0f} s)")
        settings = self.stack.settings()
        ensure_topics(settings)
        return settings

    def models(self, settings: Settings) -> None:
        import numpy as np
        import yaml

        from driftline.infra import demo_model
        from driftline.schemas.storage import Storage
        from driftline.schemas.storage import models as model_store
        from driftline.streams.rollouts import store as rollout_store

        rng = np.random.default_rng(11)
        storage = Storage.from_settings(settings)
        training = demo_model.sample_features(5000, rng)
        training["label"] = demo_model.true_labels(training, rng)
        reference = self.folder / "reference.parquet"
        training.to_parquet(reference)
        trained = demo_model.train(training[demo_model.FEATURES], training["label"])
        remembered = demo_model.sample_features(V2_ROWS, rng)
        v1, v2 = service_models(trained, remembered, demo_model.true_labels(remembered, rng))
        model_store.save_model(storage, v1, name=MODEL, version="v1", reason="trained on the reference")
        model_store.save_model(storage, v2, name=MODEL, version="v2", reason=f"v1 blended with {V2_ROWS} rows")
        rollout_store.switch(storage, MODEL, "v1", reason="initial deployment", signing_key=None)  # stored unsigned
        config = {
            "model": MODEL,
            "reference": str(reference),
            "label_column": "label",
            "metrics": {"window": METRICS_WINDOW, "latency_p95_ms": LATENCY_P95_MS, "min_count": MIN_COUNT},
            "drift": {"window": "1m"},
            "alerts": {"slack_channel": "#ml-alerts"},
        }
        Path(settings.config_dir).mkdir(parents=True, exist_ok=True)
        (Path(settings.config_dir) / f"{MODEL}.yaml").write_text(yaml.safe_dump(config))
        self.stage(f"models: {MODEL} v1 (logistic) and v2 (v1 blended with {V2_ROWS:,} rows) stored, v1 deployed")

    def start_processes(self, settings: Settings) -> None:
        assert self.stack is not None
        stack_env = self.stack.environment()
        worker = self.roles["worker"]
        self.processes.start(
            "worker",
            [worker.bin("driftline"), "worker", "--loglevel", "warn"],
            worker.environment(stack_env),
            self.logs / "worker.log",
            cwd=self.folder,
        )
        metrics_url = f"http://{LOOPBACK}:{settings.worker_port}/readyz"
        wait_until(lambda: http_get(metrics_url)[0] == 200, 180, "the worker's readiness", self.processes, 1.0)
        self.ran.add("worker")
        self.stage(f"worker: ready on {LOOPBACK}:{settings.worker_port} (log {self.logs / 'worker.log'})")

        service = self.roles["service"]
        self.service_port = free_port()
        self.processes.start(
            "service",
            [
                service.bin("python"),
                "-m",
                "driftline.infra.stack_service",
                "--port",
                str(self.service_port),
                "--stats",
                str(self.folder / "service-stats.json"),
            ],
            service.environment(stack_env),
            self.logs / "service.log",
            cwd=self.folder,  # not the checkout: the service imports the installed wheel
        )
        health = f"http://{LOOPBACK}:{self.service_port}/healthz"
        wait_until(lambda: http_get(health)[0] == 200, 60, "the model service's health", self.processes)
        self.ran.add("service")
        self.stage(f"service: serving on {LOOPBACK}:{self.service_port} (log {self.logs / 'service.log'})")

    def traffic(self, settings: Settings) -> Traffic:
        import numpy as np

        from driftline.infra import demo_model

        rng = np.random.default_rng(12)
        half = self.events // 2
        plain = demo_model.sample_features(half, rng).to_dict(orient="records")
        shifted = demo_model.sample_features(self.events - half, rng, shifted=True).to_dict(orient="records")
        traffic = Traffic()
        started = time.monotonic()
        traffic.first_at = datetime.now(UTC)
        connection = http.client.HTTPConnection(LOOPBACK, self.service_port, timeout=30)
        try:
            for i, features in enumerate([*plain, *shifted]):
                if i == half:
                    self.switch_to_v2(settings, connection)
                body = json.dumps(
                    {"request_id": f"req-{i:06d}", "user_id": f"user-{i % 400}", "features": features}
                ).encode()
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                traffic.answered[response.status] = traffic.answered.get(response.status, 0) + 1
                version = answer.get("version", "?")
                traffic.by_version[version] = traffic.by_version.get(version, 0) + 1
        finally:
            connection.close()
        traffic.last_at = datetime.now(UTC)
        traffic.seconds = time.monotonic() - started
        self.processes.check_alive()
        statuses = ", ".join(f"{count} × {status}" for status, count in sorted(traffic.answered.items()))
        versions = ", ".join(f"{v} {n}" for v, n in sorted(traffic.by_version.items()))
        self.stage(
            f"traffic: {self.events} requests in {traffic.seconds:.0f} s ({statuses}; {versions}); from request "
            f"{half} on, drifted features and v2"
        )
        return traffic

    def switch_to_v2(self, settings: Settings, connection: http.client.HTTPConnection) -> None:
        """Switch all traffic to v2 (blue/green, through the deployments topic) and wait until the service's router
        routes by that state, as a deployment waits for its rollout to reach the fleet."""
        from driftline.schemas.storage import Storage
        from driftline.streams.rollouts import store as rollout_store
        from driftline.streams.rollouts.publisher import DeploymentPublisher

        state = rollout_store.switch(
            Storage.from_settings(settings),
            MODEL,
            "v2",
            reason="stack: the heavier v2",
            signing_key=None,  # stored unsigned, as v1
            publish=DeploymentPublisher(settings),
        )

        def followed() -> bool:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            revision = json.loads(response.read()).get("revision") or 0
            return response.status == 200 and revision >= state.revision

        wait_until(followed, 30, "the service's router following the switch to v2", self.processes, 0.05)

    def stream(self, traffic: Traffic) -> None:
        """Stop the service (its counts), then read the worker's count and wait for the latency alert."""
        status = self.processes.stop("service", timeout=60)
        stats_file = self.folder / "service-stats.json"
        if status != 0 or not stats_file.exists():
            raise StackFailure(f"the service did not stop cleanly on SIGTERM (exit {status}); see the service log")
        self.service_stats = json.loads(stats_file.read_text())
        self.figures.events_sent = int(self.service_stats["answered"])
        producer = self.service_stats["producer"]
        self.stage(
            f"service: stopped on SIGTERM; answered and logged {self.figures.events_sent}, producer delivered "
            f"{producer['delivered']}, dropped {producer['dropped']}, pending {producer['pending']}"
        )
        assert self.stack is not None
        settings = self.stack.settings()
        port = settings.worker_port
        url = f"http://{LOOPBACK}:{port}/metrics"

        def counted() -> bool:
            status, text = http_get(url)
            self.figures.events_counted = sum(counted_events(text, MODEL).values()) if status == 200 else 0
            return self.figures.events_counted >= self.figures.events_sent

        with contextlib.suppress(StackFailure):  # the count is in the figures; the checks say what is missing
            wait_until(counted, 120, "the worker's count reaching the events sent", self.processes, 1.0)

        windows: list[WindowMetrics] = []

        def published() -> bool:  # every counted event in a closed window, on the metrics topic
            windows[:] = published_windows(settings, MODEL, idle=1.0)
            self.window_events = sum(window.count for window in windows)
            return self.window_events >= self.figures.events_counted

        def alerted() -> bool:
            self.messages = self.received()
            return bool(latency_alerts(self.messages, "v2"))

        with contextlib.suppress(StackFailure):
            wait_until(published, 60, "the worker's windows holding every event", self.processes, 1.0)
        with contextlib.suppress(StackFailure):
            wait_until(alerted, 60, "a latency alert on v2", self.processes, 1.0)
        self.processes.stop("worker")
        latency = latency_alerts(self.messages, "v2")
        summary = version_windows(windows, MIN_COUNT)
        by_version = "; ".join(
            f"{version} {s.windows} windows, {s.events} events, p95 {s.p95_low or 0:.2f}–{s.p95_high or 0:.2f} ms"
            for version, s in summary.items()
        )
        self.stage(
            f"worker: counted {self.figures.events_counted} events; published {by_version}; Slack received "
            f"{len(latency)} latency alert(s) on v2; stopped"
        )

    def run_airflow(self, settings: Settings, traffic: Traffic) -> None:
        assert self.stack is not None and traffic.first_at is not None and traffic.last_at is not None
        from driftline.schemas.storage import Storage, events, state

        airflow = self.roles["airflow"]
        dags_folder = subprocess.run(
            [airflow.bin("python"), "-c", "import driftline.dags as d; print(d.__path__[0])"],
            cwd=self.folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(dags_folder).is_relative_to(airflow.path):
            raise StackFailure(f"the airflow environment imports driftline's DAGs from {dags_folder}, not its own")
        started = time.monotonic()
        self.airflow = RoleAirflow(
            self.stack.airflow_home,
            airflow.environment(self.stack.environment()),
            self.logs / "airflow",
            database_url=self.stack.airflow_database_url(),
            airflow_bin=airflow.bin("airflow"),
            dags_folder=dags_folder,
        )
        self.airflow.start()
        self.ran.add("airflow")
        self.stage(
            f"airflow: API server on {LOOPBACK}:{self.airflow.port} ({time.monotonic() - started:.0f} s), the DAGs of "
            f"the package installed in {airflow.path} (logs {self.logs / 'airflow'})"
        )
        # Ingest reads what the broker holds when it starts: after the last drift window and its lateness.
        last_window = minute_floor(traffic.last_at)
        ready_at = last_window + DRIFT_WINDOW + timedelta(seconds=LATENESS_SECONDS + 1)
        time.sleep(max(0.0, (ready_at - datetime.now(UTC)).total_seconds()))
        started = time.monotonic()
        quarter = quarter_floor(datetime.now(UTC))
        [ingest] = self.airflow.backfill("driftline_ingest", quarter, quarter, timeout=600)
        storage = Storage.from_settings(settings)
        stored = events.read_events(storage, "predictions", MODEL)
        self.figures.events_landed = int(stored["request_id"].nunique()) if len(stored) else 0
        duplicates = len(stored) - self.figures.events_landed
        self.stage(
            f"airflow: driftline_ingest {ingest.state}, {len(stored)} predictions landed ({duplicates} copies) in "
            f"{time.monotonic() - started:.0f} s"
        )
        if ingest.state != "success":
            raise StackFailure(f"driftline_ingest ended {ingest.state}; see {self.logs / 'airflow'}")
        if duplicates:
            self.figures.events_landed = len(stored)  # a copy fails the check
        started = time.monotonic()
        runs = self.airflow.backfill("driftline_drift", minute_floor(traffic.first_at), last_window, timeout=900)
        reports = [state.read_drift_report(storage, path) for path in state.drift_reports(storage, MODEL)]
        self.figures.drift_reports = len(reports)
        self.drifted_reports = sum(report.verdict == "drift" for report in reports)
        self.messages = self.received()
        self.figures.alerts = len(self.messages)
        verdicts = ", ".join(f"{r.window_start:%H:%M} {r.verdict} {r.drifted_features}" for r in reports)
        states = ", ".join(run.state for run in runs)
        self.stage(
            f"airflow: driftline_drift over {len(runs)} minute(s) ({states}) in {time.monotonic() - started:.0f} s: "
            f"{verdicts}"
        )
        kinds: dict[str, int] = {}
        for message in self.messages:
            kinds[message.kind] = kinds.get(message.kind, 0) + 1
        self.stage("slack: received " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))

    def stop(self) -> None:
        """Stop everything this run started, whatever happened."""
        self.processes.stop_all()
        if self.airflow is not None:
            self.airflow.stop()
        if self.stack is not None:
            self.stage(f"stopped: {self.stack.down()}")
        if self.slack is not None:
            self.slack.stop()


def stage(line: str) -> None:
    print(line, flush=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftline.infra.stack",
        description="driftline as deployed, one environment per role, on this machine, under real traffic",
    )
    parser.add_argument("--events", type=int, default=2000, help=f"requests to send (at least {MIN_EVENTS})")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (environments, data, logs)")
    args = parser.parse_args(argv)
    if args.events < MIN_EVENTS:
        parser.error(f"--events must be at least {MIN_EVENTS}, got {args.events}")
    env_settings = Settings.from_env()
    folder = (Path(env_settings.home) / "stack" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")).resolve()
    folder.mkdir(parents=True)
    stage(f"stack: run folder {folder}")
    run = StackRun(folder, args.events, env_settings)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: still stop what it started
    started = time.monotonic()
    found: list[str] = []
    try:
        found = run.run()
    except (StackFailure, StackError) as exc:
        found = [str(exc)]
    except KeyboardInterrupt:
        found = ["interrupted"]
    except Exception as exc:  # noqa: BLE001 - a bug still stops everything and ends with the line
        traceback.print_exc()
        found = [f"{type(exc).__name__}: {exc}"]
    finally:
        try:
            run.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
    run.figures.roles = len(run.ran)
    if args.keep or found:
        stage(f"stack: kept {folder}" + ("" if args.keep else " (the run failed; its logs are there)"))
    else:
        shutil.rmtree(folder, ignore_errors=True)
    stage(f"stack: {time.monotonic() - started:.0f} s")
    if found:
        stage(f"stack FAILED: {'; '.join(found)}")
    stage(run.figures.line())
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
