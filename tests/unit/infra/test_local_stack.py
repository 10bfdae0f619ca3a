from __future__ import annotations

from driftline.infra.local_stack import LocalStack
from driftline.schemas.settings import Settings


def test_the_env_file_carries_every_setting_pointed_at_the_stack(tmp_path):
    base = Settings.from_env({"DRIFTLINE_TOPIC_PREFIX": "acme", "DRIFTLINE_PARTITIONS": "6", "DRIFTLINE_HOME": "h"})
    stack = LocalStack(tmp_path / "home", 19092, base)
    environment = stack.environment()
    again = Settings.from_env(environment)
    assert (again.topic_prefix, again.partitions) == ("acme", 6)  # kept, not dropped
    assert again.bootstrap_servers == "127.0.0.1:19092" and again.broker_port == 19092
    assert again.fast_group_timeouts is True
    assert again.storage_url == str(tmp_path / "home" / "storage")
    assert again.config_dir == str(tmp_path / "home" / "models")
    assert environment["AIRFLOW_HOME"] == str(tmp_path / "home" / "airflow")


def test_an_object_store_url_is_kept_as_it_is(tmp_path):
    base = Settings.from_env({"DRIFTLINE_STORAGE_URL": "s3://bucket/prefix"})
    assert LocalStack(tmp_path, 9092, base).settings().storage_url == "s3://bucket/prefix"


def test_stopping_a_child_of_this_process_reaps_it():
    """A broker this process started is its child: once it exits it stays a zombie, which signal 0 still finds,
    until it is reaped. stop_process reaps it (it used to wait out its whole timeout on the zombie, then SIGKILL
    it and leave it unreaped)."""
    import os
    import subprocess

    import pytest

    from driftline.infra.local_stack import stop_process

    pid = subprocess.Popen(["sleep", "60"]).pid  # only the pid is kept, as start_broker returns
    stop_process(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left
