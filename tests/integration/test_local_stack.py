"""The local stack's up/down: idempotent, and a clear message when the port is taken."""

from __future__ import annotations

import socket

import pytest

from driftline.infra.local_stack import LocalStack, StackError, free_port, port_in_use

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_down_stops_the_broker(tmp_path):
    stack = LocalStack(tmp_path / "home", free_port())
    first = stack.up(migrate_airflow=False)
    assert first[0].startswith("broker started") and port_in_use(stack.port)
    again = stack.up(migrate_airflow=False)
    assert again[0].startswith(f"broker already running (pid {stack.broker_pid()})")
    env_file = (tmp_path / "home" / "env").read_text()
    assert f"export DRIFTLINE_BOOTSTRAP_SERVERS=127.0.0.1:{stack.port}" in env_file
    assert stack.down().endswith("stopped")
    assert stack.broker_pid() is None and stack.down() == "broker not running"


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
