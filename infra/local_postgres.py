"""A PostgreSQL server of the local stack's own: the metadata database of its Airflow (and of each demo run).

Airflow on SQLite lets one writer in at a time: a scheduler, an API server and a backfill started from the UI
writing at once fail with "database is locked". PostgreSQL is what Airflow recommends for anything beyond one
process, and the ``pgserver`` wheel carries its server, so nothing is installed system-wide.

The server keeps its data under ``<home>/postgres`` and listens on a Unix socket there only (no TCP port, so
nothing to configure and nothing reachable from the network); it keeps running after the command that started it,
like the broker, until ``driftline down`` stops it. PostgreSQL refuses to run as root: started by root, pgserver
runs it as a system user of its own (``pgserver``), which it creates, and opens the folders on the way to the data
for it to read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import warnings
from contextlib import closing
from pathlib import Path

from driftline.infra.local_stack import StackError

DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class LocalPostgres:
    """The server whose data folder is ``data``."""

    def __init__(self, data: Path) -> None:
        self.data = data.resolve()

    def socket_dir(self) -> Path:
        """Where the running server's socket is (its data folder, unless that path is too long for a socket)."""
        lines = self._postmaster_lines()
        if len(lines) > 4 and lines[4].strip():
            return Path(lines[4].strip())
        return self.data

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server, for Airflow (psycopg2; Airflow derives the asyncpg
        one for its API server from it)."""
        return f"postgresql+psycopg2://postgres@/{database}?host={self.socket_dir()}"

    def pid(self) -> int | None:
        lines = self._postmaster_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self) -> str:
        """Start the server unless it runs (creating its data folder the first time); returns what was done."""
        running = self.pid()
        if running:
            return f"PostgreSQL already running (pid {running}), data and socket in {self.data}"
        with warnings.catch_warnings():  # platformdirs' note that XDG_RUNTIME_DIR is unset (pgserver's lock file)
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import PostgresServer

        self.data.mkdir(parents=True, exist_ok=True)
        try:
            # Not pgserver.get_server: it hands back a handle this process made before, even of a stopped server.
            server = PostgresServer(self.data, cleanup_mode=None)  # left running: `driftline down` stops it
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise StackError(f"PostgreSQL did not start ({exc}); see {self.data / 'log'}") from None
        return f"PostgreSQL started (pid {server.get_pid()}), data and socket in {self.data}, log {self.data / 'log'}"

    def stop(self, timeout: float = 60.0) -> str:
        """PostgreSQL's fast shutdown (SIGINT to the postmaster: sessions end, the data is flushed), waited for.
        A signal, not ``pg_ctl stop``: that runs as the server's user, who may no longer be let into the folders on
        the way to the data (a test runner making its temporary root private again, say)."""
        running = self.pid()
        if not running:
            return "PostgreSQL not running"
        os.kill(running, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.pid() == running:
            if time.monotonic() > deadline:
                raise StackError(f"PostgreSQL (pid {running}) did not stop within {timeout:.0f} s; see {self.data}/log")
            time.sleep(0.1)
        return f"PostgreSQL (pid {running}) stopped"

    def create_database(self, name: str) -> bool:
        """Create ``name`` unless it exists; returns whether it was created."""
        if not DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: expected lower-case letters, digits and _ (at most 63)")
        import psycopg2

        with closing(psycopg2.connect(host=str(self.socket_dir()), user="postgres", dbname="postgres")) as db:
            db.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with db.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone():
                    return False
                cursor.execute(f'CREATE DATABASE "{name}"')
        return True

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.data / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return []
