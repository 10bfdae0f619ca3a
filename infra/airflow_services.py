"""A real Airflow on this machine for what needs its scheduler: backfills and cleared runs.

``dag.test`` runs a DAG in one process; a backfill is different, it is a set of runs that Airflow's
scheduler executes, each task in its own process reporting to the API server. :class:`AirflowServices`
starts that API server (on loopback, on a free or given port) and the scheduler, both on the local stack's
metadata database, and stops them, with every process they started, when its ``with`` block ends.

The DAGs are written to the database once at start (``airflow dags reserialize``) instead of running a DAG
processor, and the scheduler does not serve task logs over HTTP (the API server reads them from
``$AIRFLOW_HOME/logs``), so nothing listens beyond loopback.

The metadata database is the local stack's PostgreSQL (``DRIFTLINE_AIRFLOW_DATABASE``, the default) or SQLite.
On SQLite the scheduler starts once the runs it is to run exist: ``airflow backfill create`` reads and then writes
in one SQLite transaction (a savepoint per run); when another process wrote in between, SQLite refuses the write at
once ("database is locked", whatever the busy timeout), and a running scheduler writes again and again (heartbeats,
its loop's checks). PostgreSQL has no such lock; the order is kept for both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy
import sqlalchemy.pool

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

from driftline.infra.local_stack import (
    LOOPBACK,
    StackError,
    airflow_api_environment,
    airflow_environment,
    free_port,
)

FINISHED = ("success", "failed")


@dataclass(frozen=True)
class DagRun:
    run_id: str
    state: str
    run_type: str
    data_interval_start: datetime
    data_interval_end: datetime


def _utc(value: str | datetime) -> datetime:
    """A time read from the metadata database: text on SQLite (UTC without a zone), a datetime on PostgreSQL."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class AirflowServices:
    """The API server and the scheduler of the Airflow home ``home``, whose metadata database (at
    ``database_url``, or SQLite in the home) is migrated; ``airflow_bin`` is the ``airflow`` command of the
    environment to run them from (default: this one's)."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str],
        log_dir: Path,
        *,
        api_port: int | None = None,
        database_url: str | None = None,
        airflow_bin: str | None = None,
    ) -> None:
        self.home = home
        self.port = api_port or free_port()
        self.log_dir = log_dir
        self.airflow_bin = airflow_bin or str(Path(sys.executable).with_name("airflow"))
        self.database_url = database_url or f"sqlite:///{home / 'airflow.db'}"
        self.env = {
            **env,
            **airflow_environment(home, database_url),
            **airflow_api_environment(self.port),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",  # task processes at once: this is a laptop, not a cluster
            # Only the runs asked for (backfills, cleared runs): unpausing a DAG must not also start its latest
            # scheduled interval, which nothing here waits for.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        self._processes: list[subprocess.Popen[bytes]] = []
        self._scheduler_started = False
        self._engine: Engine | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> AirflowServices:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._cli("dags", "reserialize")
        self._spawn("api-server", "api-server", "--host", LOOPBACK, "--port", str(self.port))
        health = f"http://{LOOPBACK}:{self.port}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(health, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        raise StackError(
            f"the Airflow API server did not answer on {health} within {timeout:.0f} s; see {self.log_dir}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the API server and the scheduler with everything they started (task processes included)."""
        for process in self._processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent, if any
        self._processes.clear()
        self._scheduler_started = False
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def check_alive(self) -> None:
        """Raise :class:`StackError` if the API server or the scheduler has exited."""
        for process in self._processes:
            if process.poll() is not None:
                raise StackError(f"an Airflow process exited with {process.returncode}; see {self.log_dir}")

    def run_scheduler(self) -> None:
        """Start the scheduler, unless it was started (module docstring: only once the runs exist)."""
        if not self._scheduler_started:
            self._spawn("scheduler", "scheduler", "--skip-serve-logs")
            self._scheduler_started = True

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.log_dir / f"airflow-{name}.log", "ab") as log:
            self._processes.append(
                subprocess.Popen(
                    [self.airflow_bin, *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
            )

    def _cli(self, *args: str) -> str:
        completed = subprocess.run(
            [self.airflow_bin, *args], env=self.env, capture_output=True, text=True, check=False, timeout=300
        )
        if completed.returncode != 0:
            raise StackError(f"'airflow {' '.join(args)}' failed:\n{(completed.stdout + completed.stderr)[-3000:]}")
        return completed.stdout

    # -- runs --------------------------------------------------------------------------------------
    def backfill(self, dag_id: str, first: datetime, last: datetime, *, timeout: float = 900.0) -> list[DagRun]:
        """Backfill ``dag_id`` with Airflow's own backfill (``airflow backfill create``) for the runs whose
        logical dates (their intervals' starts) lie in ``[first, last]``, re-running completed ones, and wait
        until every run of it has finished. The DAG is unpaused while they run, and paused again if it was."""
        self._wait_for_unfinished_backfills(dag_id, timeout)
        before = self._backfill_ids(dag_id)
        self._cli(
            "backfill",
            "create",
            "--dag-id",
            dag_id,
            "--from-date",
            first.astimezone(UTC).isoformat(),
            "--to-date",
            last.astimezone(UTC).isoformat(),
            "--reprocess-behavior",
            "completed",
        )
        [backfill_id] = sorted(self._backfill_ids(dag_id) - before)
        self.run_scheduler()
        with self._unpaused(dag_id):  # after the runs exist: fewer writers at once on SQLite
            return self._wait(dag_id, timeout, backfill_id=backfill_id)

    def clear(self, dag_id: str, run: DagRun, *, timeout: float = 600.0) -> DagRun:
        """Clear every task of ``run`` (as the UI's Clear does) and wait until the scheduler has run it again."""
        logical = run.data_interval_start.astimezone(UTC).isoformat()
        self._cli("tasks", "clear", dag_id, "--start-date", logical, "--end-date", logical, "--yes")
        self.run_scheduler()
        with self._unpaused(dag_id):
            [again] = self._wait(dag_id, timeout, run_id=run.run_id)
        return again

    @contextlib.contextmanager
    def _unpaused(self, dag_id: str) -> Iterator[None]:
        """The DAG unpaused (the scheduler runs no task of a paused DAG, backfills included), then paused again
        if it was."""
        was_paused = self._paused(dag_id)
        if was_paused:
            self._cli("dags", "unpause", dag_id)
        try:
            yield
        finally:
            if was_paused:
                self._cli("dags", "pause", dag_id)

    def runs(self, dag_id: str, *, backfill_id: int | None = None, run_id: str | None = None) -> list[DagRun]:
        """Runs of ``dag_id`` (of one backfill, or the one run), oldest interval first, from the metadata DB."""
        query = (
            "SELECT run_id, state, run_type, data_interval_start, data_interval_end FROM dag_run "
            "WHERE dag_id = :dag_id AND (:backfill_id IS NULL OR backfill_id = :backfill_id) "
            "AND (:run_id IS NULL OR run_id = :run_id) ORDER BY data_interval_start"
        )
        rows = self._query(query, dag_id=dag_id, backfill_id=backfill_id, run_id=run_id)
        return [DagRun(r[0], r[1], r[2], _utc(r[3]), _utc(r[4])) for r in rows]

    def _query(self, query: str, **parameters: object) -> list[Any]:
        """Rows of ``query`` on the metadata database (read-only: every write goes through Airflow)."""
        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.database_url, poolclass=sqlalchemy.pool.NullPool)
        with self._engine.connect() as db:
            return list(db.execute(sqlalchemy.text(query), parameters).fetchall())

    def _paused(self, dag_id: str) -> bool:
        rows = self._query("SELECT is_paused FROM dag WHERE dag_id = :dag_id", dag_id=dag_id)
        return not rows or bool(rows[0][0])

    def _wait_for_unfinished_backfills(self, dag_id: str, timeout: float) -> None:
        """Airflow allows one unfinished backfill per DAG. One left by an earlier, interrupted run is finished by
        the scheduler (its queued runs run; one that never got runs is closed after two minutes): wait for it."""
        if not self._unfinished_backfills(dag_id):
            return
        print(f"  an earlier backfill of {dag_id} is unfinished; the scheduler finishes it first", flush=True)
        self.run_scheduler()
        deadline = time.monotonic() + timeout
        with self._unpaused(dag_id):
            while self._unfinished_backfills(dag_id):
                if time.monotonic() > deadline:
                    raise StackError(f"an earlier backfill of {dag_id} did not finish within {timeout:.0f} s")
                time.sleep(5)

    def _unfinished_backfills(self, dag_id: str) -> int:
        query = "SELECT count(*) FROM backfill WHERE dag_id = :dag_id AND completed_at IS NULL"
        count: int = self._query(query, dag_id=dag_id)[0][0]
        return count

    def _backfill_ids(self, dag_id: str) -> set[int]:
        return {row[0] for row in self._query("SELECT id FROM backfill WHERE dag_id = :dag_id", dag_id=dag_id)}

    def _wait(
        self, dag_id: str, timeout: float, *, backfill_id: int | None = None, run_id: str | None = None
    ) -> list[DagRun]:
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id, backfill_id=backfill_id, run_id=run_id)
            if runs and all(run.state in FINISHED for run in runs):
                return runs
            self.check_alive()
            if time.monotonic() > deadline:
                states = ", ".join(f"{run.run_id}={run.state}" for run in runs)
                raise StackError(f"{dag_id} runs not finished within {timeout:.0f} s ({states}); see {self.log_dir}")
            time.sleep(2)
