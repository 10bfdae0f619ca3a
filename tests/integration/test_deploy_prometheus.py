"""The shipped infra/deploy/prometheus/prometheus.yml in a real Prometheus (Debian's, unpacked by `make deploy-tools`):
started with `--config.file` pointing at it, as docs/deploying.md says, it discovers a worker that listed itself
where workers do (streams/app.py, announce) in the checkout's default home, and loads the alert rules."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from driftline.schemas.settings import Settings
from driftline.streams.app import announce

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "infra" / "deploy" / "prometheus"


def prometheus_binary() -> str:
    found = Path(sys.executable).with_name("prometheus")
    if found.exists():
        return str(found)
    if shutil.which("prometheus"):
        return str(shutil.which("prometheus"))
    message = "prometheus is not installed (make deploy-tools unpacks Debian's prometheus package into .venv/bin)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return dict(json.loads(answer.read()))


def test_prometheus_started_with_the_shipped_config_discovers_the_checkouts_workers(tmp_path):
    # The checkout's layout, in a sandbox: the config and rules where the repository has them, the default home at
    # its root. The files are the shipped ones, unchanged.
    checkout = tmp_path / "checkout"
    config_folder = checkout / "infra" / "deploy" / "prometheus"
    config_folder.mkdir(parents=True)
    for name in ("prometheus.yml", "driftline-rules.yml"):
        shutil.copy(SHIPPED / name, config_folder / name)
    worker_port = free_port()
    target = announce(Settings(home=str(checkout / Settings().home), worker_port=worker_port), worker_port)

    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    # Started from another folder: the paths in the config resolve from the config's own folder.
    process = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config_folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        found: list[dict] = []
        deadline = time.monotonic() + 60  # discovery hands new targets over every 5 s
        while not found and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                targets = get(f"http://127.0.0.1:{port}/api/v1/targets")["data"]["activeTargets"]
                found = [t for t in targets if t["labels"].get("instance") == f"127.0.0.1:{worker_port}"]
            except OSError:
                pass
            if not found:
                time.sleep(0.5)
        assert found, f"no target from {target}: " + (tmp_path / "prometheus.log").read_text()[-3000:]
        [discovered] = found
        assert discovered["labels"]["job"] == "driftline-worker"
        assert discovered["labels"]["prefix"] == "driftline"
        assert discovered["discoveredLabels"]["__meta_filepath"] == str(target)
        groups = get(f"http://127.0.0.1:{port}/api/v1/rules")["data"]["groups"]
        assert {group["name"] for group in groups} == {"driftline-stream-windows", "driftline-stream-worker"}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
