"""Real local services for the integration tests; each fixture starts and stops its own."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftline.infra.local_postgres import LocalPostgres
from driftline.infra.local_slack import SlackEndpoint
from driftline.infra.local_stack import (
    airflow_environment,
    free_port,
    migrate_airflow_db,
    start_broker,
    stop_process,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[str]:
    """The embedded Kafka-protocol broker (Tansu) on a free loopback port."""
    port = free_port()
    pid = start_broker(port, tmp_path_factory.mktemp("broker") / "broker.log")
    yield f"127.0.0.1:{port}"
    import gc

    gc.collect()  # destroy leftover clients before their broker goes away
    stop_process(pid)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server over HTTP on loopback; returns its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket; credentials and endpoint are in the environment for s3fs (and child processes)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("DRIFTLINE_S3_ENDPOINT_URL", s3_server)
    import s3fs

    bucket = f"driftline-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing").mkdir(bucket)
    return bucket


@pytest.fixture
def slack(monkeypatch) -> Iterator[SlackEndpoint]:
    endpoint = SlackEndpoint()
    monkeypatch.setenv("DRIFTLINE_SLACK_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("DRIFTLINE_SLACK_CHANNEL", "#ml-alerts")
    monkeypatch.setenv("DRIFTLINE_SLACK_BASE_URL", endpoint.base_url)
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """An Airflow home with a migrated sqlite metadata database."""
    home = tmp_path_factory.mktemp("airflow")
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env={**os.environ, **airflow_environment(home)},
        check=False,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return home


@dataclass(frozen=True)
class AirflowOnPostgres:
    home: Path
    database_url: str

    def environment(self) -> dict[str, str]:
        return airflow_environment(self.home, self.database_url)


@pytest.fixture(scope="session")
def airflow_on_postgres(tmp_path_factory) -> Iterator[AirflowOnPostgres]:
    """An Airflow home whose metadata database is on a PostgreSQL server of its own, as the local stack's is,
    migrated; the server is stopped at the end of the session."""
    root = tmp_path_factory.mktemp("airflow-pg")
    postgres = LocalPostgres(root / "postgres")
    postgres.start()
    try:
        postgres.create_database("airflow")
        migrate_airflow_db(root / "home", postgres.url("airflow"))
        yield AirflowOnPostgres(root / "home", postgres.url("airflow"))
    finally:
        postgres.stop()


@pytest.fixture
def driftline_env(broker, monkeypatch, tmp_path) -> dict[str, str]:
    """Environment for one test: its own topic prefix, home (storage, worker checkpoints) and worker port, short
    group timeouts."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    values = {
        "DRIFTLINE_HOME": str(tmp_path / "home"),
        "DRIFTLINE_WORKER_PORT": str(free_port()),
        "DRIFTLINE_BOOTSTRAP_SERVERS": broker,
        "DRIFTLINE_TOPIC_PREFIX": prefix,
        "DRIFTLINE_FAST_GROUP_TIMEOUTS": "1",
        "DRIFTLINE_PARTITIONS": "3",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    from driftline.schemas.settings import Settings
    from driftline.streams.topics import ensure_topics

    ensure_topics(Settings.from_env())
    return values


def consume_all(bootstrap: str, topic: str, *, expected: int, timeout: float = 60.0) -> list[bytes]:
    """Read a topic from the start until ``expected`` messages (or the timeout)."""
    import time

    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 7000,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if not message.error():
                    values.append(message.value())
    finally:
        consumer.close()
    return values
