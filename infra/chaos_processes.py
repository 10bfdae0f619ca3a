"""The processes ``make chaos`` starts, kills and restarts: the embedded broker with its log in S3 (so a restarted
broker keeps its topics and offsets, like a real cluster) and ``driftline worker`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from driftline.infra.local_stack import LOOPBACK, free_port, port_in_use, start_broker, stop_child, stop_process
from driftline.schemas.settings import Settings


@dataclass
class DurableBroker:
    """Tansu with its log in S3 on a local moto server: a clean restart keeps its topics, offsets and every
    acknowledged write (a ``kill -9`` can lose a few acknowledged writes: see docs/operations.md)."""

    home: Path
    port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    pid: int | None = None
    s3_process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "AWS_ENDPOINT": f"http://{LOOPBACK}:{self.s3_port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "chaos",
            "AWS_SECRET_ACCESS_KEY": "chaos",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start_storage(self) -> None:
        log = open(self.home / "moto.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.s3_process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.s3_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 30
        while not port_in_use(self.s3_port):
            if time.monotonic() > deadline or self.s3_process.poll() is not None:
                raise RuntimeError(f"the local S3 server did not start; see {self.home / 'moto.log'}")
            time.sleep(0.1)
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.s3_port}/broker", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - http on loopback; the broker's bucket

    def start(self) -> None:
        self.pid = start_broker(
            self.port, self.home / "broker.log", storage_engine="s3://broker/", environment=self.environment()
        )

    def restart(self) -> None:
        """Stop (SIGTERM) and start again on the same port: a rolling restart of the cluster's one broker."""
        if self.pid is not None:
            stop_process(self.pid)
        time.sleep(2)
        self.start()

    def stop_broker(self) -> None:
        """Stop the broker only (its log stays in S3 for :meth:`start`)."""
        if self.pid is not None:
            stop_process(self.pid)
            self.pid = None

    def stop(self) -> None:
        self.stop_broker()
        if self.s3_process is not None:
            stop_child(self.s3_process, 10)
            self.s3_process = None


class Worker:
    """A real ``driftline worker`` process with its own health port and log."""

    def __init__(self, name: str, settings: Settings, logs: Path) -> None:
        self.name = name
        self.settings = replace(settings, worker_port=free_port())
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.wanted = False  # the supervisor restarts a wanted worker that exited
        self.restarts: list[int] = []  # exit codes of the runs the supervisor replaced
        self.lock = threading.RLock()  # the supervisor thread and the schedule act on the same process

    def start(self) -> None:
        self.wanted = True
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "info"],
                env={**os.environ, **self.settings.to_env()},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        with self.lock:
            self.kill()
            self.start()

    def supervise(self) -> None:
        """What systemd or Kubernetes would do: a worker that exited on its own is started again."""
        with self.lock:
            if self.wanted and self.process is not None and self.process.poll() is not None:
                self.restarts.append(self.process.returncode)
                self.start()

    def stop(self) -> None:
        """A clean leave (SIGTERM): the worker leaves the group and hands its partitions over."""
        with self.lock:
            self._stop()

    def _stop(self) -> None:
        self.wanted = False
        if self.process is not None:
            stop_child(self.process, 30)

    def health(self) -> tuple[int, dict[str, object]] | None:
        url = f"http://{LOOPBACK}:{self.settings.worker_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return None
