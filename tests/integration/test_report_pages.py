"""The report pages in a real browser: the drift DAG's report pages and report indexes, made by a real DAG run,
and the page of `driftline check --html`, opened in headless Chromium (Debian's package, driven by Playwright)
over a loopback HTTP server. Each page renders, every link on it resolves, nothing is logged as an error, the
model version is shown and every histogram bar is labelled.

With DRIFTLINE_WRITE_SCREENSHOTS=1 the test also writes docs/images/report.png and docs/images/report-index.png,
the screenshots the documentation shows.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pytest

from driftline.infra import demo_model
from driftline.infra.local_stack import airflow_environment
from driftline.schemas.events import LabelEvent, PredictionEvent
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage, events, state
from driftline.schemas.storage import models as model_store
from driftline.streams.rollouts import store as rollout_store
from tests.integration.test_airflow_ui import CHROMIUM_ARGS, chromium

pytestmark = pytest.mark.integration

MODEL = "churn"
WINDOW_END = datetime(2026, 11, 2, 10, tzinfo=UTC)  # the DAG run checks the hour before it: three 20 min windows
ROWS_PER_WINDOW = 600
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
# The windows of the hour: (start, shifted, model versions serving). The first is calm; the second drifts and sends
# a drift alert; the third drifts too, under v1 and v2, and the cooldown holds its alert back.
WINDOWS = [
    (WINDOW_END - timedelta(minutes=60), False, ("v1",)),
    (WINDOW_END - timedelta(minutes=40), True, ("v1",)),
    (WINDOW_END - timedelta(minutes=20), True, ("v1", "v2")),
]


def write_model_inputs(settings: Settings, storage: Storage) -> Path:
    """A monitor config (20 min windows), the training data it names, a serving model v1, and the hour's
    predictions and labels as ingest stores them (see ``WINDOWS``); returns the training data's path."""
    rng = np.random.default_rng(2027)
    training = demo_model.sample_features(3000, rng)
    training["label"] = demo_model.true_labels(training, rng)
    reference = Path(settings.home) / "reference" / f"{MODEL}.parquet"
    reference.parent.mkdir(parents=True)
    training.to_parquet(reference)
    model = demo_model.train(training[demo_model.FEATURES], training["label"])
    model_store.save_model(storage, model, name=MODEL, version="v1", reason="initial")
    rollout_store.switch(storage, MODEL, "v1", reason="initial", signing_key=None)
    config_dir = Path(settings.config_dir)
    config_dir.mkdir(parents=True)
    (config_dir / f"{MODEL}.yaml").write_text(f"model: {MODEL}\nreference: {reference}\ndrift: {{window: 20m}}\n")
    offset = 0
    for start, shifted, versions in WINDOWS:
        features = demo_model.sample_features(ROWS_PER_WINDOW, rng, shifted=shifted)
        labels = demo_model.true_labels(features, rng)
        scores = model.predict_proba(features)
        for version in versions:
            predictions, label_rows = [], []
            for i, record in enumerate(features.to_dict(orient="records")):
                if versions[i % len(versions)] != version:
                    continue
                at = start + timedelta(seconds=i * 1200 / ROWS_PER_WINDOW)
                request = f"r{offset + i}"
                prediction = PredictionEvent(
                    model=MODEL,
                    model_version=version,
                    request_id=request,
                    event_time=at,
                    features={str(name): value for name, value in record.items()},
                    prediction=float(scores[i]),
                    latency_ms=20.0,
                )
                label = LabelEvent(
                    model=MODEL, model_version=version, request_id=request, event_time=at, label=int(labels[i])
                )
                predictions.append(events.event_row(prediction, 0, offset + i))
                label_rows.append(events.event_row(label, 0, offset + i))
            first, last = predictions[0]["kafka_offset"], predictions[-1]["kafka_offset"]
            for kind, rows, topic in (
                ("predictions", predictions, settings.topics.predictions),
                ("labels", label_rows, settings.topics.labels),
            ):
                events.write_event_file(storage, kind, (MODEL, version, start), (topic, 0, first, last), rows)
        offset += ROWS_PER_WINDOW
    return reference


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline.infra.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )


@pytest.fixture
def served(tmp_path) -> Iterator[str]:
    """``tmp_path`` over HTTP on loopback, as a static bucket or a web server would serve the storage folder."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(10)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageChecker:
    """Opens pages in one browser tab and records what went wrong on each: console errors, uncaught exceptions,
    failed requests, and links that do not answer 200."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: page error {error}"))
        page.on("requestfailed", lambda request: self.problems.append(f"{page.url}: request failed {request.url}"))
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"{self.page.url}: {response.url} answers {response.status}")

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{self.page.url}: console {message.type} {message.text}")

    def open(self, url: str) -> list[str]:
        """Open ``url``, check that it answers 200 and that every link on it does; returns the links' URLs."""
        response = self.page.goto(url)
        assert response is not None and response.status == 200, f"{url}: {response and response.status}"
        links = [
            urljoin(url, href)
            for href in self.page.eval_on_selector_all("a[href]", "a => a.map(e => e.getAttribute('href'))")
        ]
        for link in links:
            answer = self.page.request.get(link)
            if answer.status != 200:
                self.problems.append(f"{url}: link {link} answers {answer.status}")
        return links


def tick_labels_of(page: Any) -> list[dict[str, Any]]:
    """Per histogram: its feature, its bars, its tick labels, and whether any two labels overlap or a label leaves
    the picture (as laid out by the browser)."""
    script = """
    features => features.map(feature => {
        const svg = feature.querySelector('svg');
        const box = svg.getBoundingClientRect();
        const ticks = [...svg.querySelectorAll('text.tick')].map(t => ({
            text: t.textContent, rect: t.getBoundingClientRect(), width: t.getBBox().width}));
        let overlapping = 0, outside = 0;
        ticks.forEach((a, i) => {
            if (a.rect.left < box.left - 0.5 || a.rect.right > box.right + 0.5 || a.rect.bottom > box.bottom + 0.5)
                outside += 1;
            ticks.slice(i + 1).forEach(b => {
                if (a.rect.right > b.rect.left + 0.5 && b.rect.right > a.rect.left + 0.5) overlapping += 1;
            });
        });
        return {feature: feature.querySelector('b').textContent, bars: svg.querySelectorAll('rect').length,
                ticks: ticks.map(t => t.text), empty: ticks.filter(t => !t.width).length, overlapping, outside};
    })
    """
    return list(page.eval_on_selector_all(".feature", script))


def check_report_page(page: Any, *, versions: str | None) -> None:
    """What every report page shows: the model (and its version when the report has one), a row per feature with
    an effect in words and how it was computed, and a histogram per feature with every bar labelled."""
    assert page.title().startswith(f"Drift report — {MODEL}")
    meta = page.locator("p.meta")
    assert meta.is_visible()
    assert f"Model {MODEL}" in meta.inner_text()
    if versions is not None:
        version = meta.locator(".version")
        assert version.is_visible() and version.inner_text() == versions
    rows = page.locator("table").first.locator("tr:has(td)")
    assert rows.count() == len(demo_model.FEATURES)
    for effect in rows.locator("td.effect").all_inner_texts():
        assert "?" not in effect
        assert re.fullmatch(r"\S+ (≥ \S+, reaches|< \S+, below) the floor", effect), effect
    for how in rows.locator("td.how").all_inner_texts():
        assert re.match(r"(Kolmogorov–Smirnov|chi-square)", how) and "Effect:" in how, how
    plots = tick_labels_of(page)
    assert len(plots) == len(demo_model.FEATURES)
    for plot in plots:
        assert plot["bars"] == 2 * len(plot["ticks"]), plot  # a reference and a current bar per label
        assert plot["empty"] == plot["overlapping"] == plot["outside"] == 0, plot
        if plot["feature"] in demo_model.CATEGORICAL:
            assert sorted(plot["ticks"]) == sorted(demo_model.CATEGORICAL[plot["feature"]])
        else:
            assert len(plot["ticks"]) == 20, plot
            assert all(re.fullmatch(r"≤-?[\d.e+-]+", tick) for tick in plot["ticks"][:-1]), plot
            assert plot["ticks"][-1] == ">" + plot["ticks"][-2].removeprefix("≤")  # the top bin is open above


def test_report_pages_render_link_and_label_in_a_real_browser(tmp_path, served, airflow_home):
    from playwright.sync_api import sync_playwright

    browser_binary = chromium()
    home = tmp_path / "home"
    settings = Settings(
        home=str(home),
        storage_url=str(home / "storage"),
        config_dir=str(home / "models"),
        bootstrap_servers="127.0.0.1:1",  # no broker: the run publishes nothing
    )
    storage = Storage.from_settings(settings)
    reference = write_model_inputs(settings, storage)
    own = ("DRIFTLINE_", "AIRFLOW_", "AIRFLOW__")
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(own)},
        **airflow_environment(airflow_home),
        **settings.to_env(),
    }
    at = WINDOW_END.isoformat()
    drift = run_cli(env, "dag-test", "driftline_drift", "--logical-date", at, "--no-wait")
    assert drift.returncode == 0, drift.stdout[-3000:] + drift.stderr[-3000:]
    cli_page = tmp_path / "check.html"
    current = tmp_path / "current.parquet"
    demo_model.sample_features(800, np.random.default_rng(7), shifted=True).to_parquet(current)
    check = run_cli(
        env,
        "check",
        str(reference),
        str(current),
        "--config",
        str(home / "models" / f"{MODEL}.yaml"),
        "--html",
        str(cli_page),
    )
    assert check.returncode == 1, check.stdout + check.stderr  # drift

    reports = [state.read_drift_report(storage, path) for path in state.drift_reports(storage, MODEL)]
    assert [(r.window_start, r.verdict, r.model_versions) for r in reports] == [
        (start, "drift" if shifted else "no_drift", list(versions)) for start, shifted, versions in WINDOWS
    ]
    assert sorted(state.sent_alert_ids(storage)) == [f"drift-{MODEL}-20261102T094000Z"]
    assert list(reports[2].alerts_held_back) == ["drift"]

    storage_url = served + "home/storage/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_binary, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        checker = PageChecker(page)

        # From the index of all models, every page is reached by its links.
        links = checker.open(storage_url + "reports/index.html")
        assert page.title() == "driftline reports"
        assert page.locator("tr:has(td)").all_inner_texts() == [f"{MODEL}\t2026-11-02T10:00:00+00:00\tv1, v2\tdrift"]
        model_index = storage_url + f"reports/model={MODEL}/index.html"
        assert links == [model_index]

        links = checker.open(model_index)
        assert page.title() == f"Drift reports — {MODEL}"
        rows = page.locator("tr:has(td)")
        assert [row.locator("td.version").inner_text() for row in rows.all()] == ["v1, v2", "v1", "v1"]
        assert [row.locator("td.alerts").inner_text() for row in rows.all()] == [
            "drift: held back (cooldown)",
            "drift: sent",
            "none",
        ]
        held = rows.first.locator("td.alerts span").get_attribute("title")
        assert held is not None and f"drift-{MODEL}-20261102T094000Z" in held
        report_pages = [link for link in links if link != storage_url + "reports/index.html"]
        assert report_pages == [
            f"{storage_url}reports/model={MODEL}/drift-{stamp}.html"
            for stamp in ("20261102T100000Z", "20261102T094000Z", "20261102T092000Z")
        ]
        if os.environ.get("DRIFTLINE_WRITE_SCREENSHOTS") == "1":
            page.screenshot(path=DOCS_IMAGES / "report-index.png", full_page=True)

        for url, versions in zip(report_pages, ("v1, v2", "v1", "v1"), strict=True):
            assert checker.open(url) == [model_index]
            check_report_page(page, versions=versions)
        page.goto(report_pages[0])
        assert page.locator(".actions").inner_text() == (
            "What driftline did: no alert raised; drift alert held back (" + reports[2].alerts_held_back["drift"] + ")."
        )
        if os.environ.get("DRIFTLINE_WRITE_SCREENSHOTS") == "1":
            page.goto(report_pages[1])
            page.screenshot(path=DOCS_IMAGES / "report.png", full_page=True)

        # The page of `driftline check --html`: the model of its config and the files compared; no version.
        assert checker.open(served + "check.html") == []
        check_report_page(page, versions=None)
        assert f"reference {reference}, current {current}" in page.locator("p.meta").inner_text()
        browser.close()
    assert checker.problems == []
