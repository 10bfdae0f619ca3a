"""``driftline demo``: the whole loop on the embedded default, with a summary a person can read.

A simulated serving node logs two hours of predictions (event times in the
past, so the run takes a minute, not two hours) for a logistic model on ten
features. Halfway through, three features drift, the outcome's relationship to
``x1`` flips and latency triples. The retrained version is then rolled out through the embedded router on
live traffic, and a heavier candidate after it is rolled back by the gates (:func:`run_rollouts`). Each run
uses its own topic prefix,
storage folder and Airflow database under ``$DRIFTLINE_HOME/demo/``, so runs never see each other's data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from driftline.infra.local_stack import LocalStack, stop_child
from driftline.schemas.records import Alert, DeadLetter, WindowMetrics
from driftline.schemas.reports import DriftReport
from driftline.schemas.settings import Settings
from driftline.schemas.storage import Storage

MODEL = "churn"
METRICS_WINDOW = timedelta(minutes=5)
TRAFFIC_SPAN = timedelta(hours=2)
DRIFT_WINDOW = timedelta(minutes=30)  # the drift DAG's interval too: four of them in the traffic span
DRIFT_SCHEDULE = "*/30 * * * *"


# The retrained version goes shadow (half the requests mirrored) -> 30 % -> all; the gates decide each stage.
ROLLOUT = {
    "strategy": "canary",
    "stages": [0, 0.3, 1.0],
    "shadow_share": 0.5,
    "gates": {"min_events": 100, "min_stage_duration": "20s", "stage_deadline": "3m"},
}
ROLLOUT_WINDOW = timedelta(seconds=10)  # live traffic in the rollout part: short windows, in real time


def traffic_end(now: datetime) -> datetime:
    """The demo's traffic ends an hour before the current hour: every interval of it is in the past."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


class DemoFailure(RuntimeError):
    pass


def stage(name: str) -> None:
    print(f"\n== {name}", flush=True)


def run_demo(settings: Settings, rows: int = 12_000, *, keep: bool = False) -> int:
    """Run the loop; stop the broker and PostgreSQL afterwards if the demo started them (unless ``keep``)."""
    from driftline.infra.local_slack import SlackEndpoint, slack_messages
    from driftline.infra.local_stack import LocalStack

    started = time.monotonic()
    stack = LocalStack.from_settings(settings)
    was_running = stack.broker_pid() is not None, stack.postgres.pid() is not None
    # Without Slack settings the alerts go to a local Slack endpoint (slack-sdk talks to it as to Slack), so the
    # summary shows each message as the ML team would see it.
    slack = None if settings.slack_configured else SlackEndpoint()
    if slack is not None:
        settings = replace(
            settings,
            slack_token="xoxb-driftline-demo",  # noqa: S106 - the local endpoint's, not a credential
            slack_channel="#ml-alerts",
            slack_base_url=slack.base_url,
        )
    try:
        summary = _run(settings, stack, rows)
        summary["slack"] = [asdict(m) for m in slack_messages(slack.messages())] if slack is not None else None
        if slack is not None:
            _write_slack(Path(summary["run_dir"]) / "slack.txt", summary["slack"])
        _print_summary(summary, time.monotonic() - started)
        print(f"summary               {write_summary(stack.home / 'demo' / 'summary.json', summary)}")
        return 0 if summary["ok"] else 1
    except DemoFailure as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if slack is not None:
            slack.stop()
        if not keep and was_running == (False, False):
            print(f"{stack.down()} (the demo started them; 'driftline demo --keep' leaves them running)")
        elif not keep and not all(was_running):
            stopped = stack.down_broker() if not was_running[0] else stack.postgres.stop()
            print(f"{stopped} (the demo started it; 'driftline demo --keep' leaves it running)")


def _run(base_settings: Settings, stack: LocalStack, rows: int) -> dict[str, Any]:
    stage("local stack")
    for line in stack.up():
        print("  " + line)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = stack.home / "demo" / run_id
    settings = replace(
        base_settings,
        home=str(stack.home),
        bootstrap_servers=stack.bootstrap_servers,
        fast_group_timeouts=True,
        topic_prefix=f"demo-{run_id}",
        storage_url=str(run_dir / "storage"),
        config_dir=str(run_dir / "models"),
        idle_close_seconds=3.0,
        allowed_lateness_seconds=30.0,
        drift_schedule=DRIFT_SCHEDULE,
    )
    airflow_home, database_url, child_env = _demo_airflow(stack, settings, run_dir, run_id)

    from driftline.schemas.storage import Storage
    from driftline.schemas.storage import models as model_store
    from driftline.streams.topics import ensure_topics

    storage = Storage.from_settings(settings)
    ensure_topics(settings)
    print(f"  run {run_id}: topics demo-{run_id}.*, storage {storage.root}")

    rng = np.random.default_rng(7)
    model_v1 = _train_first_version(storage, run_dir, rng, settings.model_signing_key)

    end = traffic_end(datetime.now(UTC))
    stage("stream worker")
    worker_log = run_dir / "worker.log"
    with open(worker_log, "wb") as log:  # the child keeps its own copy of the descriptor
        worker = subprocess.Popen(
            [sys.executable, "-m", "driftline.infra.cli", "worker", "--loglevel", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
    print(f"  worker started (pid {worker.pid}), log {worker_log}")
    try:
        stage("simulated serving node")
        produced = simulate_traffic(settings, model_v1, rows, rng, end)
        print(
            f"  {produced['predictions']} predictions, {produced['labels']} labels published; "
            f"{produced['invalid']} malformed events sent too"
        )
        stage("waiting for metric windows")
        expected_windows = int(TRAFFIC_SPAN / METRICS_WINDOW)
        metrics, alerts, dead = collect_stream_output(settings, expected_windows, timeout=120)
        print(f"  {len(metrics)} windows closed, {len(alerts)} threshold alerts, {len(dead)} dead letters")
        _wait_for_alert_delivery(worker_log, len(alerts), timeout=30)
    finally:
        stop_child(worker, 20)

    dag_results = run_dags(run_dir, child_env, end)
    from driftline.infra.demo_rollouts import run_rollouts

    rollouts = run_rollouts(settings, child_env, run_dir, rng)
    stage("Airflow: backfill of driftline_drift over the traffic's past intervals")
    backfill = backfill_drift(
        settings, airflow_home, child_env, run_dir, start=end - TRAFFIC_SPAN, end=end, database_url=database_url
    )

    from driftline.schemas.storage import events, state

    stored = events.read_events(storage, "predictions", MODEL)
    labels = events.read_events(storage, "labels", MODEL)
    reports = state.drift_reports(storage, MODEL)
    report = state.read_drift_report(storage, reports[-1]) if reports else None
    manifest = model_store.read_deployment_state(storage, MODEL)
    sent = state.sent_alert_ids(storage)
    ok = (
        all(state == "success" for state in dag_results.values())
        and len(backfill) == TRAFFIC_SPAN // DRIFT_WINDOW
        and all(entry["state"] == "success" and entry["report"] for entry in backfill)
        and len(stored) == produced["predictions"]
        and stored["request_id"].is_unique
        and len(metrics) == expected_windows
        and report is not None
        and manifest is not None
        and rollouts["ok"]
    )
    return {
        "ok": ok,
        "run_dir": str(run_dir),
        "storage_url": settings.storage_url,
        "produced": produced,
        "metrics": metrics,
        "alerts": alerts,
        "dead_letters": dead,
        "dag_results": dag_results,
        "stored_rows": len(stored),
        "stored_labels": len(labels),
        "unique_request_ids": bool(stored["request_id"].is_unique) if len(stored) else True,
        "report": report.to_jsonable() if report else None,
        "report_path": storage.url(reports[-1]) if reports else None,
        "manifest": manifest,
        "drift_alerts_sent": sent,
        "expected_windows": expected_windows,
        "backfill": backfill,
        "rollouts": rollouts,
    }


def _write_slack(path: Path, messages: list[dict[str, str]]) -> None:
    path.write_text("".join(f"--- {m['header']}\n{m['text']}\n\n" for m in messages))


def _demo_airflow(
    stack: LocalStack, settings: Settings, run_dir: Path, run_id: str
) -> tuple[Path, str | None, dict[str, str]]:
    """This run's Airflow home and database (on the stack's PostgreSQL, None on SQLite), migrated, and the
    environment of its child processes: the worker and the DAG runs read these settings from it.

    Its own Airflow database: runs of earlier demos (other intervals, other storage) never mix into this one's
    backfill. ``driftline airflow-ui`` starts Airflow on this run's database and storage from ``airflow.env``."""
    from driftline.infra.local_stack import airflow_api_environment, airflow_environment, migrate_airflow_db

    airflow_home = run_dir / "airflow-home"
    database_url = stack.airflow_database_url(f"demo_{run_id.lower()}")
    if database_url:
        stack.postgres.create_database(f"demo_{run_id.lower()}")
    print("  " + migrate_airflow_db(airflow_home, database_url))
    demo_env = {
        **settings.to_env(secrets=False),
        **airflow_environment(airflow_home, database_url),
        **airflow_api_environment(settings.airflow_port),  # the alerts' task-log links: where airflow-ui serves
    }
    (run_dir / "airflow.env").write_text("".join(f"{key}={value}\n" for key, value in demo_env.items()))
    return airflow_home, database_url, {**os.environ, **settings.to_env(), **demo_env}


def _train_first_version(storage: Storage, run_dir: Path, rng: np.random.Generator, signing_key: str | None) -> Any:
    """Train v1 on the reference data, store and deploy it, and write the model's monitor config."""
    from driftline.infra import demo_model
    from driftline.schemas.storage import models as model_store
    from driftline.streams.rollouts import store as rollout_store

    stage("train v1 and write the monitor config")
    training = demo_model.sample_features(5000, rng)
    training["label"] = demo_model.true_labels(training, rng)
    reference_path = run_dir / "reference.parquet"
    training.to_parquet(reference_path)
    model_v1 = demo_model.train(training[demo_model.FEATURES], training["label"])
    model_store.save_model(storage, model_v1, name=MODEL, version="v1", reason="initial", signing_key=signing_key)
    rollout_store.switch(storage, MODEL, "v1", reason="initial deployment", signing_key=signing_key)
    (run_dir / "models").mkdir(parents=True, exist_ok=True)
    (run_dir / "models" / f"{MODEL}.yaml").write_text(
        yaml.safe_dump(
            {
                "model": MODEL,
                "reference": str(reference_path),
                "label_column": "label",
                "metrics": {"window": "5m", "latency_p95_ms": 50, "error_rate": 0.05, "min_count": 20},
                "drift": {"window": "30m", "alpha": 0.05, "correction": "fdr", "retrain_share": 0.2},
                "alerts": {"slack_channel": "#ml-alerts"},
                "retrain": {"entry_point": "driftline.infra.demo_model:train", "window": "1h", "min_rows": 500},
                "deployment": ROLLOUT,
            }
        )
    )
    print(f"  v1 trained on {len(training)} rows; reference {reference_path}")

    return model_v1


def simulate_traffic(
    settings: Settings, model: Any, rows: int, rng: np.random.Generator, end: datetime
) -> dict[str, int]:
    """Publish predictions and labels; the second half drifts. Also publishes a few malformed events."""
    from confluent_kafka import Producer

    from driftline.infra import demo_model
    from driftline.streams.producer import DriftlineProducer

    start = end - TRAFFIC_SPAN
    half = rows // 2
    counts = {"predictions": 0, "labels": 0, "invalid": 0}
    with DriftlineProducer.from_settings(settings) as producer:
        for part, (shifted, offset) in enumerate(((False, 0), (True, half))):
            size = half if part == 0 else rows - half
            features = demo_model.sample_features(size, rng, shifted=shifted)
            labels = demo_model.true_labels(features, rng, concept_shift=shifted)
            scores = model.predict_proba(features)
            latency = rng.lognormal(np.log(60.0 if shifted else 20.0), 0.35, size=size)
            failed = rng.random(size) < 0.01
            records: list[dict[str, Any]] = features.to_dict(orient="records")  # type: ignore[assignment]
            for i in range(size):
                event_time = start + TRAFFIC_SPAN * ((offset + i + 0.5) / rows)
                request_id = f"req-{offset + i:07d}"
                producer.log_prediction(
                    model=MODEL,
                    model_version="v1",
                    request_id=request_id,
                    features=records[i],
                    prediction=None if failed[i] else float(scores[i]),
                    latency_ms=float(latency[i]),
                    error="TimeoutError" if failed[i] else None,
                    event_time=event_time,
                )
                producer.log_label(
                    model=MODEL,
                    model_version="v1",
                    request_id=request_id,
                    label=int(labels[i]),
                    event_time=event_time + timedelta(seconds=30),
                )
                counts["predictions"] += 1
                counts["labels"] += 1
        # Malformed input: one caught by the producer's validation, two raw messages the worker rejects.
        producer.log_prediction(
            model=MODEL,
            model_version="v1",
            request_id="bad-latency",
            features={"x0": 1.0},
            prediction=0.5,
            latency_ms=-3.0,
            event_time=end,
        )
        producer.flush(30)
    raw = Producer({"bootstrap.servers": settings.bootstrap_servers})
    raw.produce(settings.topics.predictions, key=b"bad-json", value=b"{not json")
    raw.produce(
        settings.topics.predictions,
        key=b"bad-field",
        value=json.dumps({"event_type": "prediction", "model": MODEL, "model_version": "v1"}).encode(),
    )
    raw.flush(10)
    counts["invalid"] = 3
    if producer.stats.dropped:
        raise DemoFailure(f"the producer dropped {producer.stats.dropped} events")
    return counts


def collect_stream_output(
    settings: Settings, expected_windows: int, timeout: float
) -> tuple[list[WindowMetrics], list[Alert], list[DeadLetter]]:
    """Read the metrics, alerts and dead-letter topics until every window is in (or time runs out)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.topic_prefix}-demo-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **settings.consumer_group_overrides(),
        }
    )
    consumer.subscribe([settings.topics.metrics, settings.topics.alerts, settings.topics.dead_letter])
    found: dict[str, list[bytes]] = {
        settings.topics.metrics: [],
        settings.topics.alerts: [],
        settings.topics.dead_letter: [],
    }
    deadline = time.monotonic() + timeout
    settle_until = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                topic, value = message.topic(), message.value()
                if not message.error() and topic is not None and value is not None:
                    found[topic].append(value)
            if len(found[settings.topics.metrics]) >= expected_windows:
                settle_until = settle_until or time.monotonic() + 3  # let the last alerts arrive
                if time.monotonic() >= settle_until:
                    break
    finally:
        consumer.close()
    metrics = sorted((WindowMetrics.parse(v) for v in found[settings.topics.metrics]), key=lambda m: m.window_start)
    if len(metrics) < expected_windows:
        raise DemoFailure(f"only {len(metrics)} of {expected_windows} metric windows arrived within {timeout:.0f}s")
    alerts = [Alert.parse(v) for v in found[settings.topics.alerts]]
    return metrics, alerts, [DeadLetter.parse(v) for v in found[settings.topics.dead_letter]]


def _wait_for_alert_delivery(worker_log: Path, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker_log.read_text(errors="replace").count("[driftline alert") >= expected:
            return
        time.sleep(0.5)


def run_dags(run_dir: Path, env: dict[str, str], end: datetime) -> dict[str, str]:
    """Ingest, drift and retrain once each (``dag.test`` runs); the drift run checks the traffic's last
    interval, as a run triggered when the traffic ended would."""
    results = {}
    for dag_id, args in (
        ("driftline_ingest", []),
        ("driftline_drift", ["--logical-date", end.isoformat()]),
        ("driftline_retrain", []),
    ):
        stage(f"Airflow: {dag_id}")
        results[dag_id] = run_dag(dag_id, args, run_dir / f"{dag_id}.log", env)
        print(f"  {dag_id}: {results[dag_id]} (log {run_dir / f'{dag_id}.log'})")
    return results


def backfill_drift(
    settings: Settings,
    airflow_home: Path,
    env: dict[str, str],
    run_dir: Path,
    *,
    start: datetime,
    end: datetime,
    database_url: str | None = None,
) -> list[dict[str, Any]]:
    """Airflow's own backfill of the drift DAG over ``[start, end)``, run by a real scheduler that is stopped
    afterwards: one run per interval, and per run the window its report checked."""
    from driftline.infra.airflow_services import AirflowServices
    from driftline.schemas.storage import Storage, state

    storage = Storage.from_settings(settings)
    started = datetime.now(UTC)
    with AirflowServices(airflow_home, env, run_dir / "airflow", database_url=database_url) as airflow:
        print(f"  Airflow API server on 127.0.0.1:{airflow.port} and a scheduler (logs in {run_dir / 'airflow'})")
        runs = airflow.backfill("driftline_drift", start, end - DRIFT_WINDOW)
    reports: dict[datetime, tuple[str, DriftReport]] = {}
    for path in state.drift_reports(storage, MODEL):
        stored = state.read_drift_report(storage, path)
        if stored.generated_at >= started:  # written by the backfill, not earlier
            reports[stored.window_end] = (storage.url(path), stored)
    entries = []
    for run in runs:
        url, report = reports.get(run.data_interval_end, (None, None))
        entries.append(
            {
                "run_id": run.run_id,
                "state": run.state,
                "data_interval_start": run.data_interval_start.isoformat(),
                "data_interval_end": run.data_interval_end.isoformat(),
                "report_window_start": report.window_start.isoformat() if report else None,
                "report_window_end": report.window_end.isoformat() if report else None,
                "report": url,
                "verdict": report.verdict if report else None,
            }
        )
        print(
            f"  {run.data_interval_start:%H:%M}→{run.data_interval_end:%H:%M}  {run.state}  "
            f"verdict={entries[-1]['verdict']}  report={url}"
        )
    return entries


def run_dag(dag_id: str, args: list[str], log_path: Path, env: dict[str, str]) -> str:
    """One real Airflow DAG run (dag.test) in a child process, its log kept in a file."""
    command = [sys.executable, "-m", "driftline.infra.cli", "dag-test", dag_id, *args]
    with open(log_path, "wb") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    return "success" if completed.returncode == 0 else f"failed (exit {completed.returncode})"


def write_summary(path: Path, s: dict[str, Any]) -> Path:
    """The run's figures as JSON, for scripts and for checking the demo from outside."""
    report = s["report"]
    document = {
        "ok": s["ok"],
        "run_dir": s["run_dir"],
        "storage_url": s["storage_url"],
        "produced": s["produced"],
        "metric_windows": len(s["metrics"]),
        "threshold_alerts": len(s["alerts"]),
        "dead_letters": [dead.reason for dead in s["dead_letters"]],
        "dag_results": s["dag_results"],
        "stored_rows": s["stored_rows"],
        "stored_labels": s["stored_labels"],
        "drift": None
        if report is None
        else {
            "window_start": report["window_start"],
            "window_end": report["window_end"],
            "verdict": report.get("verdict"),
            "drifted_features": report["drifted_features"],
            "report": s["report_path"],
        },
        "serving": s["manifest"].serving if s["manifest"] else None,
        "alerts_sent": s["drift_alerts_sent"],
        "slack": s.get("slack"),
        "backfill": s["backfill"],
        "traffic": s["rollouts"]["traffic"],
        "mirrored": s["rollouts"]["mirrored"],
        "rollout_events": s["rollouts"]["events"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _alert_kinds(alerts: list[Alert]) -> str:
    """The stream alerts counted by what they say: ``2 p95 latency over its limit, 1 predictions changed``."""
    from driftline.streams.alerts.formatting import KIND_TITLE, METRIC_WORDS

    counts: dict[str, int] = {}
    for alert in alerts:
        if alert.kind in {"threshold", "resolved"}:
            metric = METRIC_WORDS.get(alert.metric or "", alert.metric or "a metric")
            label = f"{metric} {'over its limit' if alert.kind == 'threshold' else 'back within its limit'}"
        else:
            label = KIND_TITLE.get(alert.kind, alert.kind)
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in counts.items()) or "none"


def _print_summary(s: dict[str, Any], seconds: float) -> None:
    metrics, report, manifest = s["metrics"], s["report"], s["manifest"]
    print("\n" + "=" * 72)
    print(f"driftline demo summary ({seconds:.0f}s)  — {'OK' if s['ok'] else 'FAILED'}")
    print("=" * 72)
    p = s["produced"]
    print(f"events produced       {p['predictions']} predictions, {p['labels']} labels, {p['invalid']} malformed")
    print(f"dead-letter topic     {len(s['dead_letters'])} records, each with its reason:")
    for dead in s["dead_letters"]:
        reason = dead.reason if len(dead.reason) <= 110 else dead.reason[:107] + "..."
        print(f"   [{dead.source}] {reason}")
    print(f"metric windows        {len(metrics)} of {s['expected_windows']} (5 min, model {MODEL} v1)")
    for m in (metrics[0], metrics[len(metrics) // 2], metrics[-1]) if metrics else ():
        print(
            f"   {m.window_start:%H:%M}  count={m.count:4d}  error_rate={m.error_rate:.3f}  "
            f"p50={m.latency_p50_ms or 0:.1f}ms  p95={m.latency_p95_ms or 0:.1f}ms  p99={m.latency_p99_ms or 0:.1f}ms"
        )
    print(f"stream alerts         {len(s['alerts'])}: {_alert_kinds(s['alerts'])}")
    print("Airflow DAG runs      " + ", ".join(f"{k}={v}" for k, v in s["dag_results"].items()))
    print(
        f"Parquet rows written  {s['stored_rows']} predictions (unique request ids: {s['unique_request_ids']}), "
        f"{s['stored_labels']} labels"
    )
    if report:
        print(
            f"drift verdict         window {report['window_start'][11:16]}→{report['window_end'][11:16]}, "
            f"{report['current_rows']} rows vs {report['reference_rows']} reference rows, "
            f"{report['correction']} α={report['alpha']}"
        )
        for f in sorted(report["features"], key=lambda f: (not f["drifted"], f["feature"])):
            verdict = "DRIFT" if f["drifted"] else ("n/a" if f["drifted"] is None else "ok")
            score = "" if f["p_value"] is None else f"  p={f['p_value']:.3g}"
            print(
                f"   {f['feature']:8s} {f['test']:12s} stat={f['statistic']:.4g}{score}  "
                f"threshold={f['threshold']:.3g}  {verdict}"
            )
    messages = s.get("slack")
    if messages is None:
        print(f"alerts sent           {len(s['drift_alerts_sent'])} → Slack (your settings)")
    else:
        counts: dict[str, int] = {}
        for message in messages:
            title = message["header"].split(" · ")[1] if " · " in message["header"] else "other"
            counts[title] = counts.get(title, 0) + 1
        print(
            f"Slack messages        {len(messages)} received by a local Slack endpoint (no Slack configured): "
            + ", ".join(f"{n} {title}" for title, n in counts.items())
        )
        for message in messages:
            first = message["text"].splitlines()[0] if message["text"] else ""
            print(f"   {message['header']}\n      {first[:150]}")
        print(f"   every message in full: {Path(s['run_dir']) / 'slack.txt'}")
    if manifest:
        print(
            f"now serving           {MODEL} {manifest.serving} (previous {manifest.previous}; "
            f"roll back with: DRIFTLINE_STORAGE_URL={s['storage_url']} driftline rollback {MODEL})"
        )
    print(f"report                {s['report_path']} (and .html beside it)")
    print(f"backfill              {len(s['backfill'])} runs of driftline_drift through Airflow's scheduler:")
    for entry in s["backfill"]:
        print(
            f"   {entry['data_interval_start'][11:16]}→{entry['data_interval_end'][11:16]}  {entry['state']:7s} "
            f"window {(entry['report_window_start'] or '?')[11:16]}→{(entry['report_window_end'] or '?')[11:16]}  "
            f"verdict={entry['verdict']}"
        )
    r = s["rollouts"]
    print(
        f"rollouts              {len(r['events'])} changes (started by the retrain DAG and by the demo, then decided "
        "by the worker's gates):"
    )
    for event in r["events"]:
        print(f"   {event['version']}: {event['from']} → {event['to']}  {event['reason'][:100]}")
    print(f"traffic share         per {ROLLOUT_WINDOW.seconds} s window of live requests (the router's choice):")
    from driftline.infra.demo_rollouts import traffic_lines

    for line in traffic_lines(r["traffic"], r["mirrored"]):
        print("   " + line)
    print(f"run folder            {s['run_dir']}")
    print("Airflow UI            driftline airflow-ui  (this run's DAG runs and data; the login is printed)")
