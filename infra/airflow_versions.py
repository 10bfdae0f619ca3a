"""``make airflow-versions``: driftline's DAGs on real DAG runs under each Airflow release ``driftline[airflow]``
claims (``apache-airflow>=3.1,<4``), by default the oldest and the newest.

For each version, in a temporary folder:

1. a fresh environment, installed as a team's Airflow is: ``apache-airflow==V`` with the dependencies that were
   on the index when V was released (``uv pip install --exclude-newer``, standing in for Airflow's own constraints
   file, which is not on the package index), then ``driftline[airflow]`` from the wheel of this checkout on top.
   No faust-streaming: the worker is another role. ``--newest-deps`` resolves both at once with the newest of
   everything instead;
2. ``airflow db migrate`` on an sqlite database of its own;
3. the DAG folder of the installed package (``driftline/dags``, as ``driftline up`` sets it) parsed by Airflow:
   the four DAGs, no import error;
4. real DAG runs (``driftline dag-test``, Airflow's ``dag.test``), with no broker: the drift DAG over an hour of
   prediction events written to local storage beforehand (a monitor config, a reference, a serving model), which
   must write a drift report and send its alert (to the console: no Slack settings); the retrain DAG on the
   request it made, which must deploy the new version; the deploy DAG with a conf rolling it back.

One line per version, e.g. ``airflow 3.1.0: dags=4 import_errors=0 drift_run=success report=1 alert=1
retrain_run=success deploy_run=success (install 6 s, runs 52 s)``; exit 1 if any version failed. Everything is
written under one temporary folder, removed at the end unless ``--keep``; every process is waited for.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from driftline.infra import demo_model
from driftline.infra.local_stack import airflow_environment
from driftline.schemas.events import LabelEvent, PredictionEvent
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import store as rollout_store

# The oldest and the newest release of apache-airflow>=3.1,<4 on the package index when last run (2026-12-07).
DEFAULT_VERSIONS = ("3.1.0", "3.3.2")
DAG_IDS = ["driftline_deploy", "driftline_drift", "driftline_ingest", "driftline_retrain"]
MODEL = "churn"
WINDOW_END = datetime(2026, 11, 2, 10, tzinfo=UTC)  # the drift run checks the hour before it
ROWS = 1500
INDEX = "https://pypi.org/simple"
STEP_TIMEOUT = 600
ROOT = Path(__file__).resolve().parents[1]  # the checkout (driftline/infra is a link to infra/)


class CheckFailed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


@dataclass
class VersionResult:
    version: str
    found: dict[str, str] = field(default_factory=dict)
    failure: CheckFailed | None = None
    install_seconds: float = 0.0
    run_seconds: float = 0.0

    def line(self) -> str:
        parts = [f"{key}={value}" for key, value in self.found.items()]
        if self.failure:
            parts.append(f"FAILED at {self.failure.step}")
        timing = f"install {self.install_seconds:.0f} s, runs {self.run_seconds:.0f} s"
        return f"airflow {self.version}: {' '.join(parts)} ({timing})"


def dag_folder_verdict(listed: list[dict[str, object]], errors: list[dict[str, object]]) -> tuple[int, int, str]:
    """(DAGs found, import errors, what is wrong or '') from ``airflow dags list --local`` and
    ``airflow dags list-import-errors --local`` (JSON). Pure."""
    found = sorted(str(d["dag_id"]) for d in listed)
    problems = [f"{Path(str(e.get('filepath', '?'))).name}: {str(e.get('error', '')).strip()[-600:]}" for e in errors]
    missing = sorted(set(DAG_IDS) - set(found))
    if missing:
        problems.append(f"DAGs not found: {', '.join(missing)} (found: {', '.join(found) or 'none'})")
    return len(found), len(errors), "; ".join(problems)


def json_output(text: str) -> list[dict[str, object]]:
    """The JSON list an ``airflow ... -o json`` command printed on a line of its own, among its log lines. Pure."""
    for line in reversed(text.splitlines()):
        if line.startswith("["):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, list):
                return value
    raise ValueError(f"no JSON list in the output: {text[-500:]!r}")


def release_time(version: str) -> datetime:
    """When ``apache-airflow==version`` was uploaded to the index uv installs from (its PEP 691 JSON page)."""
    index = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or INDEX
    request = urllib.request.Request(  # noqa: S310 - the package index's https address
        f"{index.rstrip('/')}/apache-airflow/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
        files = json.load(answer)["files"]
    names = (f"apache_airflow-{version}-", f"apache_airflow-{version}.tar.gz", f"apache-airflow-{version}.tar.gz")
    times = [f["upload-time"] for f in files if f["filename"].startswith(names) and f.get("upload-time")]
    if not times:
        raise CheckFailed("release", f"apache-airflow {version} is not on {index}")
    return min(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)


class VersionCheck:
    """One Airflow version's environment, database, DAG folder and DAG runs, under ``folder``."""

    def __init__(self, version: str, folder: Path, wheel: Path, *, newest_deps: bool) -> None:
        self.version = version
        self.folder = folder
        self.wheel = wheel
        self.newest_deps = newest_deps
        self.venv = folder / "venv"
        self.home = folder / "home"
        self.result = VersionResult(version)
        self.logs = folder / "logs"
        self.dags_folder = ""  # the installed package's, once installed
        self._step = 0

    def run(self) -> VersionResult:
        try:
            started = time.monotonic()
            self.install()
            self.result.install_seconds = time.monotonic() - started
            started = time.monotonic()
            try:
                self.migrate_and_parse()
                self.dag_runs()
            finally:
                self.result.run_seconds = time.monotonic() - started
        except CheckFailed as failed:
            self.result.failure = failed
        return self.result

    # --- steps -------------------------------------------------------------------------------------------

    def install(self) -> None:
        uv = str(Path(sys.executable).with_name("uv"))
        python = str(self.venv / "bin" / "python")
        airflow = f"apache-airflow=={self.version}"
        driftline = f"driftline[airflow] @ {self.wheel.as_uri()}"
        self.command("venv", [uv, "venv", "--quiet", "--python", sys.executable, str(self.venv)])
        if self.newest_deps:
            self.command("install", [uv, "pip", "install", "--python", python, driftline, airflow])
        else:
            # A day's margin: the release's other packages (apache-airflow-core, -task-sdk) are uploaded around it.
            released = (release_time(self.version) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.command("install", [uv, "pip", "install", "--python", python, "--exclude-newer", released, airflow])
            self.command("install", [uv, "pip", "install", "--python", python, driftline, airflow])
        probe = (
            "import importlib.metadata as m, importlib.util as u, json, driftline.dags as d; "
            "print(json.dumps([m.version('apache-airflow'), bool(u.find_spec('faust')), d.__path__[0]]))"
        )
        installed, has_faust, dags = json.loads(self.command("install", [python, "-c", probe]).stdout)
        if installed != self.version or has_faust or not Path(dags).is_relative_to(self.venv):
            raise CheckFailed("install", f"apache-airflow {installed}, faust {has_faust}, DAGs in {dags}")
        self.dags_folder = dags

    def environment(self) -> dict[str, str]:
        """This machine's environment without any driftline or Airflow setting, pointed at this version's
        folder: its Airflow home and database, the installed DAG folder, local storage, no Slack (alerts go to
        the console) and no broker (a closed port: the deployment publisher gives up and says so)."""
        own = ("DRIFTLINE_", "AIRFLOW_", "AIRFLOW__", "PYTHONPATH", "VIRTUAL_ENV")
        base = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        airflow_home = self.folder / "airflow"
        return {
            **base,
            **airflow_environment(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": self.dags_folder,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{base.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.venv),
            **self.settings().to_env(),
        }

    def settings(self) -> Settings:
        return Settings(
            home=str(self.home),
            storage_url=str(self.home / "storage"),
            config_dir=str(self.home / "models"),
            bootstrap_servers="127.0.0.1:1",
            # A deployment state is published once, then stays stored for routers to poll: fail in 1 s, not 5–10.
            kafka_config=json.dumps({"message.timeout.ms": 1000}),
            topic_prefix="airflow-versions",
        )

    def migrate_and_parse(self) -> None:
        airflow = str(self.venv / "bin" / "airflow")
        (self.folder / "airflow").mkdir(parents=True, exist_ok=True)
        self.command("db_migrate", [airflow, "db", "migrate"])
        # `dags list` exits 1 when a file does not import; both print their JSON either way.
        listed, errors = (
            self.json_command("dags", [airflow, "dags", command, "--local", "-o", "json"])
            for command in ("list", "list-import-errors")
        )
        dags, import_errors, problems = dag_folder_verdict(listed, errors)
        self.result.found.update(dags=str(dags), import_errors=str(import_errors))
        if problems:
            raise CheckFailed("dags", problems)

    def json_command(self, step: str, command: list[str]) -> list[dict[str, object]]:
        done = self.command(step, command, check=False)
        try:
            return json_output(done.stdout)
        except ValueError:
            raise CheckFailed(step, tail(done)) from None

    def dag_runs(self) -> None:
        settings = self.settings()
        storage = Storage.from_settings(settings)
        write_inputs(settings, storage)
        driftline = str(self.venv / "bin" / "driftline")

        at = WINDOW_END.isoformat()
        drift = self.dag_run("drift_run", [driftline, "dag-test", "driftline_drift", "--logical-date", at, "--no-wait"])
        reports = state.drift_reports(storage, MODEL)
        self.result.found["report"] = str(len(reports))
        if len(reports) != 1:
            raise CheckFailed("report", f"{len(reports)} drift reports of {MODEL} (one expected)")
        report = state.read_drift_report(storage, reports[0])
        window = (WINDOW_END - timedelta(hours=1), WINDOW_END)
        if (report.window_start, report.window_end) != window or not report.drifted_features:
            raise CheckFailed(
                "report", f"window {report.window_start}–{report.window_end}, drifted {report.drifted_features}"
            )
        sent = [a for a in state.sent_alert_ids(storage) if a.startswith(f"drift-{MODEL}-")]
        console = drift.stdout.count("[driftline alert")
        self.result.found["alert"] = str(len(sent))
        if len(sent) != 1 or console < 1:
            raise CheckFailed("alert", f"drift alerts sent {sent}, console lines {console}")

        self.dag_run("retrain_run", [driftline, "dag-test", "driftline_retrain"])
        deployed = model_store.read_deployment_state(storage, MODEL)
        if deployed is None or (deployed.serving, deployed.previous) != ("v2", "v1"):
            raise CheckFailed("retrain_run", f"deployment after the retrain run: {deployed}")

        conf = json.dumps({"model": MODEL, "action": "rollback", "reason": "airflow-versions check"})
        self.dag_run("deploy_run", [driftline, "dag-test", "driftline_deploy", "--conf", conf])
        rolled_back = model_store.read_deployment_state(storage, MODEL)
        if rolled_back is None or rolled_back.serving != "v1":
            raise CheckFailed("deploy_run", f"deployment after the rollback run: {rolled_back}")

    def dag_run(self, step: str, command: list[str]) -> subprocess.CompletedProcess[str]:
        done = self.command(step, command, check=False)
        last = done.stdout.strip().splitlines()[-1:] or [""]
        outcome = last[0].rpartition(": ")[2] if last[0].startswith("driftline_") else f"exit {done.returncode}"
        self.result.found[step] = outcome
        if done.returncode != 0 or outcome != "success":
            raise CheckFailed(step, tail(done))
        return done

    def command(self, step: str, command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in this version's folder and environment; its output is kept in ``logs/``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        env = self.environment() if step not in {"venv", "install"} else self._install_environment()
        try:
            done = subprocess.run(
                command,
                cwd=self.folder,  # not the checkout: `python -c` must import the installed driftline
                env=env,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise CheckFailed(step, f"{' '.join(command[:4])} did not end within {STEP_TIMEOUT} s") from None
        self._step += 1
        (self.logs / f"{self._step:02d}-{step}.log").write_text(
            f"$ {' '.join(command)}\nexit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        if check and done.returncode != 0:
            raise CheckFailed(step, tail(done))
        return done

    def _install_environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}


def write_inputs(settings: Settings, storage: Storage) -> None:
    """What the DAG runs read: a monitor config, its reference (training data), a serving model v1, and an hour of
    predictions and labels before ``WINDOW_END``, shifted in x0, x3 and the plan mix, as ingest stores them."""
    rng = np.random.default_rng(2026)
    training = demo_model.sample_features(4000, rng)
    training["label"] = demo_model.true_labels(training, rng)
    reference = Path(settings.home) / "reference" / f"{MODEL}.parquet"  # the team's training data, not driftline's
    reference.parent.mkdir(parents=True, exist_ok=True)
    training.to_parquet(reference)
    v1 = demo_model.train(training[demo_model.FEATURES], training["label"])
    model_store.save_model(storage, v1, name=MODEL, version="v1", reason="initial")
    rollout_store.switch(storage, MODEL, "v1", reason="initial", signing_key=settings.model_signing_key)
    config_dir = Path(settings.config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / f"{MODEL}.yaml").write_text(
        f"model: {MODEL}\nreference: {reference}\n"
        "drift: {window: 1h, retrain_share: 0.2}\n"
        "retrain: {entry_point: 'driftline.infra.demo_model:train', window: 1h, min_rows: 500}\n"
    )
    start = WINDOW_END - timedelta(hours=1)
    features = demo_model.sample_features(ROWS, rng, shifted=True)
    labels = demo_model.true_labels(features, rng, concept_shift=True)
    scores = v1.predict_proba(features)
    predictions, label_rows = [], []
    for i, record in enumerate(features.to_dict(orient="records")):
        at = start + timedelta(seconds=i * 3600 / ROWS)
        prediction = PredictionEvent(
            model=MODEL,
            model_version="v1",
            request_id=f"r{i}",
            event_time=at,
            features={str(name): value for name, value in record.items()},
            prediction=float(scores[i]),
            latency_ms=20.0,
        )
        label = LabelEvent(model=MODEL, model_version="v1", request_id=f"r{i}", event_time=at, label=int(labels[i]))
        predictions.append(events.event_row(prediction, 0, i))
        label_rows.append(events.event_row(label, 0, i))
    for kind, rows, topic in (
        ("predictions", predictions, settings.topics.predictions),
        ("labels", label_rows, settings.topics.labels),
    ):
        events.write_event_file(storage, kind, (MODEL, "v1", start), (topic, 0, 0, len(rows) - 1), rows)


def tail(done: subprocess.CompletedProcess[str], size: int = 2500) -> str:
    return f"exit {done.returncode}\n{(done.stdout[-size:] + done.stderr[-size:]).strip()}"


# Not in the wheel, or made by tools: left out of the copy the wheel is built from.
SOURCE_SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".driftline",
    "build",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "benchmarks",
    "tests",
)


def build_wheel(folder: Path) -> Path:
    """The wheel of this checkout as it is (uncommitted changes too), built from a copy: setuptools writes build/
    and an .egg-info beside the sources it builds, and the checkout is not this check's to write in."""
    if not (ROOT / "pyproject.toml").exists():
        raise SystemExit(f"airflow-versions builds the wheel of a checkout; no pyproject.toml in {ROOT}")
    source = folder / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=SOURCE_SKIP)
    uv = str(Path(sys.executable).with_name("uv"))
    done = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(folder), str(source)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"uv build failed:\n{tail(done)}")
    [wheel] = folder.glob("driftline-*.whl")
    return wheel


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftline.infra.airflow_versions",
        description="driftline's DAGs on real DAG runs under each Airflow version, each in a fresh environment",
    )
    parser.add_argument("versions", nargs="*", default=list(DEFAULT_VERSIONS), help="default: %(default)s")
    parser.add_argument(
        "--newest-deps",
        action="store_true",
        help="resolve Airflow and driftline together with the newest of every dependency, instead of Airflow's "
        "dependencies as of its release",
    )
    parser.add_argument("--keep", action="store_true", help="keep the environments, databases and logs")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="driftline-airflow-versions-"))
    failed = False
    try:
        wheel = build_wheel(work / "wheel")
        for version in args.versions:
            result = VersionCheck(version, work / f"airflow-{version}", wheel, newest_deps=args.newest_deps).run()
            print(result.line(), flush=True)
            if result.failure:
                failed = True
                print(f"  {result.failure.step}: {result.failure.detail}".replace("\n", "\n  "), flush=True)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
