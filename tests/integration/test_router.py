"""A router in a separate serving process follows its model's deployment state: a change published on the
deployments topic is in use within 5 s, the stored state takes over while the broker is down, and requests
never wait for either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty, Queue

from driftline.infra.local_stack import free_port, start_broker, stop_process
from driftline.schemas.config import DeploymentSettings
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts import store as rollout_store
from driftline.streams.rollouts.publisher import DeploymentPublisher
from driftline.streams.topics import ensure_topics

OUTPUT: list[str] = []  # the serving process's log lines, for a failure's message


def lines_of(process: subprocess.Popen[str]) -> Queue[dict]:
    found: Queue[dict] = Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                found.put(json.loads(line))
            else:
                OUTPUT.append(line)

    def read_log() -> None:  # librdkafka's log lines: on stderr, never cut into the JSON lines of stdout
        assert process.stderr is not None
        OUTPUT.extend(process.stderr)

    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=read_log, daemon=True).start()
    return found


def wait_for_revision(lines: Queue[dict], revision: int, beats: list[dict], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except Empty:
            continue
        assert "error" not in line, line
        if line.get("revision") == revision:
            return line
        if "slowest" in line:
            beats.append(line)
    raise AssertionError(f"the router never used revision {revision}: {''.join(OUTPUT[-30:])}")


def test_a_router_in_another_process_follows_the_topic_and_falls_back_to_storage(tmp_path, monkeypatch):
    port = free_port()
    broker = start_broker(port, tmp_path / "broker.log")
    env = {
        "DRIFTLINE_HOME": str(tmp_path / "home"),
        "DRIFTLINE_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "DRIFTLINE_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    ensure_topics(settings)
    storage = Storage.from_settings(settings)
    for version in ("v1", "v2"):
        model_store.save_model(storage, {"answers": version}, name="m", version=version)
    publish = DeploymentPublisher(settings)
    state = rollout_store.save(storage, rollout.initial("m", "v1", reason="initial", at=_now()), publish)
    stop_file = tmp_path / "stop"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("router_process.py")), "m", str(stop_file)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    beats: list[dict] = []
    try:
        lines = lines_of(process)
        first = wait_for_revision(lines, 1, beats)
        assert first["models"] == ["{'answers': 'v1'}"]  # the stored artifact, loaded and its digest checked

        canary = rollout.begin(state, "m", "v2", DeploymentSettings(strategy="canary"), reason="retrained", at=_now())
        published_at = time.time()
        rollout_store.save(storage, canary, publish)
        heard = wait_for_revision(lines, 2, beats)
        assert heard["source"] == "topic" and heard["at"] - published_at < 5.0
        assert heard["models"] == ["{'answers': 'v1'}", "{'answers': 'v2'}"]  # 5 % of 2,000 keys on v2

        stop_process(broker)  # Kafka unreachable: the stored state is the fallback
        broker = None
        calls_before = beats[-1]["calls"] if beats else 0
        promoted = rollout.promote(canary, reason="gates passed", at=_now())
        stored_at = time.time()
        rollout_store.save(storage, promoted)  # stored only: nothing to publish to
        read = wait_for_revision(lines, 3, beats)
        assert read["source"] == "storage" and read["at"] - stored_at < 5.0
        assert read["models"] == ["{'answers': 'v2'}"]
        time.sleep(1.0)
        while not lines.empty():
            line = lines.get()
            if "slowest" in line:
                beats.append(line)
    finally:
        stop_file.touch()
        process.wait(20)
        if broker is not None:
            stop_process(broker)
    print(
        f"router: topic change in use after {heard['at'] - published_at:.2f} s, stored change after "
        f"{read['at'] - stored_at:.2f} s with the broker down; {beats[-1]['calls']:,} calls, slowest "
        f"{beats[-1]['slowest'] * 1e3:.2f} ms"
    )
    assert beats[-1]["calls"] > calls_before + 1000  # requests kept flowing with the broker down
    # No call waited on Kafka (a poll is 0.2 s) or storage: the slowest not preempted by the OS took under 50 ms.
    assert beats[-1]["slowest"] < 0.05, beats[-1]


def _now():
    from driftline.schemas.records import utc_now

    return utc_now()
