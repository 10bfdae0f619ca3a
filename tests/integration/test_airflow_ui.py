"""`driftline airflow-ui` in a real browser: the demo run's own DAG runs in Airflow's UI after logging in with the
printed password, a backfill started from the UI run by the scheduler on the demo's PostgreSQL database and storage,
and everything stopped on Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from driftline.infra import demo
from driftline.infra.airflow_versions import MODEL, WINDOW_END, write_inputs
from driftline.infra.local_stack import LocalStack, free_port, port_in_use
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, state

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
# Chromium as root, headless, without reaching for Google's services on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_ID = "20261102T100000"


def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = "chromium is not installed (make browser-tools installs Debian's chromium package)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def make_demo_run(home: Path, airflow_port: int) -> Storage:
    """A demo run as `driftline demo` leaves it, in small: its Airflow home and database (on the stack's PostgreSQL,
    which is stopped afterwards, as the demo stops it), its storage, and one real run of the drift DAG."""
    base = Settings(home=str(home), airflow_port=airflow_port)
    stack = LocalStack(home.resolve(), free_port(), base)
    run_dir = stack.home / "demo" / RUN_ID
    run_dir.mkdir(parents=True)
    settings = replace(base, storage_url=str(run_dir / "storage"), config_dir=str(run_dir / "models"))
    stack.postgres.start()
    try:
        _, _, env = demo._demo_airflow(stack, settings, run_dir, RUN_ID)
        storage = Storage.from_settings(settings)
        write_inputs(settings, storage)
        command = ["dag-test", "driftline_drift", "--logical-date", WINDOW_END.isoformat(), "--no-wait"]
        done = subprocess.run(
            [sys.executable, "-m", "driftline.infra.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        stack.postgres.stop()
    return storage


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def read_until(lines: queue.Queue[str], pattern: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if re.search(pattern, seen[-1]):
            return seen
    raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f} s; got {seen}")


def test_the_ui_shows_the_demo_runs_and_runs_a_backfill_started_there(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    browser_binary = chromium()
    home, port = tmp_path / "home", free_port()
    storage = make_demo_run(home, port)
    [first_report] = state.drift_reports(storage, MODEL)
    before = state.read_drift_report(storage, first_report).generated_at

    env = {**os.environ, "DRIFTLINE_HOME": str(home), "DRIFTLINE_AIRFLOW_PORT": str(port)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "driftline.infra.cli", "airflow-ui"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = lines_of(ui)
        shown = read_until(lines, r"^open http://", timeout=180)
        postgres_pid = LocalStack(home.resolve(), free_port()).postgres.pid()
        assert shown[0] == (
            f"PostgreSQL started (pid {postgres_pid}), data and socket in {home / 'postgres'}, "
            f"log {home / 'postgres' / 'log'}"
        )
        assert shown[1] == f"Airflow on demo run {RUN_ID} ({home / 'demo' / RUN_ID})"
        login = re.fullmatch(rf"open http://127\.0\.0\.1:{port}/ and log in as admin with password (\S+)", shown[2])
        assert login, shown

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_binary, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/dags/driftline_drift/runs")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(login.group(1))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/dags/driftline_drift/runs", timeout=60_000)
            # The demo run's own DAG run, made before this Airflow started.
            expect(page.get_by_text(re.compile(r"^manual__"))).to_be_visible(timeout=60_000)
            page.screenshot(path=tmp_path / "runs.png")

            # A backfill of the demo's interval, started from the UI, as a person would.
            page.get_by_role("button", name="Trigger").click()
            page.get_by_text("Backfill", exact=True).first.click()
            page.locator("input[name=from_date]").fill("2026-11-02T09:00")
            page.locator("input[name=to_date]").fill("2026-11-02T09:00")
            page.get_by_text("All Runs", exact=True).click()
            page.get_by_role("button", name="Run Backfill").click()
            deadline = time.monotonic() + 240
            backfill_row = page.get_by_role("row").filter(has_text="Backfill").filter(has_text="Success")
            while not backfill_row.count():
                assert time.monotonic() < deadline, page.inner_text("body")[-2000:]
                page.wait_for_timeout(3000)
                page.reload()
            # ...and the backfill itself is closed once its runs are done: no banner left "in progress".
            while page.get_by_text("Backfill in progress").count():
                assert time.monotonic() < deadline, "the backfill is still shown in progress"
                page.wait_for_timeout(3000)
                page.reload()
                page.get_by_text(re.compile(r"^backfill__")).wait_for(timeout=30_000)
            page.screenshot(path=tmp_path / "backfill.png")
            browser.close()

        # The backfill's run checked the demo's window again, in the demo's storage.
        [again] = state.drift_reports(storage, MODEL)
        report = state.read_drift_report(storage, again)
        assert report.generated_at > before
        assert report.window_end == WINDOW_END

        ui.send_signal(signal.SIGINT)
        assert ui.wait(60) == 0
        rest = read_until(lines, r"^PostgreSQL \(pid \d+\) stopped$", timeout=10)
        assert "Airflow stopped" in rest
        assert not port_in_use(port)
        assert LocalStack(home.resolve(), free_port()).postgres.pid() is None
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        LocalStack(home.resolve(), free_port()).postgres.stop()


def test_without_a_demo_run_the_command_says_what_to_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "driftline.infra.cli", "airflow-ui"],
        env={**os.environ, "DRIFTLINE_HOME": str(tmp_path / "home")},
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"error: no demo run under {tmp_path / 'home' / 'demo'}: run 'driftline demo' first "
        "(or 'driftline airflow-ui --stack' for the local stack's own Airflow)\n"
    )
