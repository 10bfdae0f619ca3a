"""``driftline airflow-ui``: Airflow's UI on the demo's own runs (or on the local stack's Airflow), with the login.

Each demo run keeps its Airflow home, its database (on the local stack's PostgreSQL) and its storage, and writes
the settings that point at them to ``<home>/demo/<run>/airflow.env``. This command starts Airflow's API server
(which serves the UI) and a scheduler on them, so the runs the demo made are in the UI and a backfill or a cleared
run started there runs for real, on the demo's data; it prints the address and the login, and stops everything it
started (PostgreSQL too, if it was not running) on Ctrl-C or SIGTERM.

The scheduler runs only what a person asks for (triggers, backfills, clears): the demo's DAGs' own schedules do
not start runs of their latest intervals behind the person's back.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from driftline.infra.airflow_services import AirflowServices
from driftline.infra.local_stack import LOOPBACK, LocalStack, StackError, port_in_use
from driftline.schemas.settings import Settings

USER = "admin"


def demo_runs(home: Path) -> list[Path]:
    """The demo runs under ``home`` that kept their Airflow settings, oldest first (run ids sort by time)."""
    return sorted(path.parent for path in (home / "demo").glob("*/airflow.env"))


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def choose(settings: Settings, *, run: str | None, stack: bool) -> tuple[str, dict[str, str]]:
    """What to open and the Airflow and driftline settings that point at it."""
    local = LocalStack.from_settings(settings)
    if stack:
        if not (local.airflow_home / ".migrated").exists():
            raise StackError(f"no Airflow database for the local stack in {local.airflow_home}: run 'driftline up'")
        return f"the local stack ({local.home})", local.environment()
    runs = demo_runs(local.home)
    if run is not None:
        runs = [path for path in runs if path.name == run]
        if not runs:
            known = ", ".join(path.name for path in demo_runs(local.home)) or "none"
            raise StackError(f"no demo run {run!r} under {local.home / 'demo'} (runs: {known})")
    if not runs:
        raise StackError(
            f"no demo run under {local.home / 'demo'}: run 'driftline demo' first (or 'driftline airflow-ui --stack' "
            f"for the local stack's own Airflow)"
        )
    return f"demo run {runs[-1].name} ({runs[-1]})", read_env_file(runs[-1] / "airflow.env")


def password(airflow_home: Path, timeout: float = 30.0) -> str:
    """The password Airflow's simple auth manager generated for ``USER`` (on the API server's first start)."""
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = generated.read_text() if generated.exists() else ""
        if text.strip():
            return str(json.loads(text)[USER])
        time.sleep(0.1)
    raise StackError(f"Airflow wrote no password for {USER!r} to {generated}")


def run_airflow_ui(settings: Settings, *, run: str | None = None, stack: bool = False) -> int:
    """Serve the UI until SIGINT or SIGTERM; 0 once everything started is stopped."""
    what, env = choose(settings, run=run, stack=stack)
    port = settings.airflow_port
    if port_in_use(port):
        raise StackError(
            f"port {port} on {LOOPBACK} is taken by another process; stop it or choose another port with "
            f"DRIFTLINE_AIRFLOW_PORT=<free port>"
        )
    airflow_home = Path(env["AIRFLOW_HOME"])
    database_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    postgres = LocalStack.from_settings(settings).postgres
    started_postgres = database_url.startswith("postgresql") and postgres.pid() is None
    if started_postgres:
        print(postgres.start(), flush=True)
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        services = AirflowServices(
            airflow_home,
            {**os.environ, **env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin"},
            airflow_home / "ui-logs",
            api_port=port,
            database_url=None if database_url.startswith("sqlite") else database_url,
        )
        with services:
            services.run_scheduler()
            print(f"Airflow on {what}", flush=True)
            print(f"open http://{LOOPBACK}:{port}/ and log in as {USER} with password {password(airflow_home)}")
            print(f"logs in {airflow_home / 'ui-logs'}; Ctrl-C stops Airflow", flush=True)
            while not stopped.wait(1.0):
                services.check_alive()
        print("Airflow stopped", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_postgres:
            print(postgres.stop(), flush=True)
    return 0
