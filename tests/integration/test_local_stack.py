"""The local stack's up/down: idempotent, and a clear message when the port is taken."""

from __future__ import annotations

import socket

import pytest

from driftline.infra.local_stack import LocalStack, StackError, free_port, port_in_use
from driftline.schemas.settings import Settings

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_down_stops_the_broker_and_postgres(tmp_path):
    stack = LocalStack(tmp_path / "home", free_port())
    try:
        first = stack.up()
        assert first[0].startswith("broker started") and port_in_use(stack.port)
        assert first[1].startswith("PostgreSQL started (pid ") and "Airflow's database created in PostgreSQL" in first
        postgres_pid = stack.postgres.pid()
        assert f"Airflow database migrated (PostgreSQL), home {stack.airflow_home}" in first
        again = stack.up()
        assert again[0].startswith(f"broker already running (pid {stack.broker_pid()})")
        assert again[1].startswith(f"PostgreSQL already running (pid {postgres_pid})")
        assert f"Airflow database ready (PostgreSQL), home {stack.airflow_home}" in again
        env_file = (tmp_path / "home" / "env").read_text()
        assert f"export DRIFTLINE_BOOTSTRAP_SERVERS=127.0.0.1:{stack.port}" in env_file
        socket_dir = tmp_path / "home" / "postgres"
        assert (
            f"export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://postgres@/airflow?host={socket_dir}\n"
            in (env_file)
        )
        # The database Airflow migrated is the one the environment names.
        import sqlalchemy

        engine = sqlalchemy.create_engine(stack.airflow_database_url(), poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as db:
            assert db.execute(sqlalchemy.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()
        broker_pid = stack.broker_pid()
        assert stack.down() == f"broker (pid {broker_pid}) stopped; PostgreSQL (pid {postgres_pid}) stopped"
        assert stack.broker_pid() is None and stack.postgres.pid() is None
        assert stack.down() == "broker not running"
    finally:
        stack.down()


def test_on_sqlite_no_postgres_is_started(tmp_path):
    stack = LocalStack(tmp_path / "home", free_port(), Settings(airflow_database="sqlite"))
    try:
        lines = stack.up(migrate_airflow=False)
        assert not any("PostgreSQL" in line for line in lines) and stack.postgres.pid() is None
        env_file = (tmp_path / "home" / "env").read_text()
        assert f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///{stack.airflow_home / 'airflow.db'}" in env_file
    finally:
        assert stack.down().startswith("broker (pid ")


def test_a_taken_port_is_reported_with_what_to_do(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        stack = LocalStack(tmp_path / "home", holder.getsockname()[1])
        with pytest.raises(
            StackError, match=r"port \d+ on 127.0.0.1 is taken by another process; .*DRIFTLINE_BROKER_PORT"
        ):
            stack.up(migrate_airflow=False)


def test_a_new_broker_forgets_the_worker_checkpoints_of_the_old_one(tmp_path):
    from driftline.schemas.storage.base import Storage
    from driftline.schemas.storage.state import read_partition_checkpoint, write_partition_checkpoint
    from driftline.schemas.worker_state import PartitionCheckpoint

    stack = LocalStack(tmp_path / "home", free_port())
    stack.up(migrate_airflow=False)
    storage = Storage.from_settings(stack.settings())
    old = PartitionCheckpoint(
        topic="driftline.predictions", partition=0, last_offset=500, max_event_time=None, idle_watermark=None,
        open_windows=[],
    )  # fmt: skip
    write_partition_checkpoint(storage, "driftline-metrics", old)
    stack.down()  # the in-memory broker's topics are gone; offset 500 means nothing to the next one
    lines = stack.up(migrate_airflow=False)
    try:
        assert "removed 1 stream-worker checkpoint(s) of the previous broker" in lines
        assert read_partition_checkpoint(storage, "driftline-metrics", "driftline.predictions", 0) is None
    finally:
        stack.down()
