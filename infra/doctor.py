"""``driftline doctor``: check a deployment's settings end to end, one line per check.

Each check talks to the real thing with the settings the worker and the DAGs use: the broker (reachable,
driftline's topics present), storage (a probe file written, read back and removed), Slack (``auth.test`` with a
token; a test message only when asked), every monitor config (valid, reference readable, retrain entry point
importable) and Airflow (driftline's DAGs import cleanly, and where Airflow looks for DAGs). A failing check
says what was wrong and what would be right; the exit code is 1 when any check failed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from driftline.schemas.errors import explain
from driftline.schemas.settings import Settings

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.check:<8}  {self.detail}"


def check_broker(settings: Settings, timeout: float = 5.0) -> Iterator[Finding]:
    from confluent_kafka.admin import AdminClient

    from driftline.streams.topics import wanted_partitions

    # log_level 0: the finding says it once, instead of librdkafka logging every reconnect.
    admin = AdminClient(settings.kafka_client_config(log_level=0))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
        yield Finding(
            "broker",
            "FAIL",
            f"cannot reach the broker at {settings.bootstrap_servers} within {timeout:.0f} s ({exc}); "
            "check DRIFTLINE_BOOTSTRAP_SERVERS, or start the local one with `driftline up`",
        )
        return
    missing = sorted(set(wanted_partitions(settings)) - existing)
    if missing:
        yield Finding(
            "broker",
            "FAIL",
            f"{settings.bootstrap_servers} is up but lacks topics {', '.join(missing)}; "
            "create them (`driftline up` does, for the local broker) or fix DRIFTLINE_TOPIC_PREFIX",
        )
    else:
        yield Finding("broker", "ok", f"{settings.bootstrap_servers}: all {len(wanted_partitions(settings))} topics")


def check_storage(settings: Settings) -> Iterator[Finding]:
    from driftline.schemas.storage import Storage

    where = f"storage {settings.storage_url}"
    try:
        storage = Storage.from_settings(settings)
        probe = f"_doctor/probe-{uuid.uuid4().hex}.txt"
        storage.write_bytes(probe, b"driftline doctor")
        read_back = storage.read_bytes(probe)
        storage.remove(probe)
    except Exception as exc:  # noqa: BLE001 - reported as the finding
        yield Finding("storage", "FAIL", explain(exc, where) or f"{where}: {type(exc).__name__}: {exc}")
        return
    if read_back != b"driftline doctor":
        yield Finding("storage", "FAIL", f"{where}: a probe file read back different bytes than were written")
    else:
        yield Finding("storage", "ok", f"{storage.url('_doctor')}: write, read and remove work")


def check_slack(settings: Settings, *, send_test_alert: bool = False) -> Iterator[Finding]:
    from driftline.schemas.secrets import redact
    from driftline.streams.alerts.delivery import AlertDeliveryError, notifier_from_settings

    if not settings.slack_configured:
        yield Finding("slack", "warn", "not configured: alerts go to the console and the log")
        return
    if send_test_alert:
        try:
            notifier_from_settings(settings).send("driftline doctor: a test message; alerts will arrive here.")
        except AlertDeliveryError as exc:
            yield Finding("slack", "FAIL", f"the test message was not delivered: {exc}")
            return
        yield Finding("slack", "ok", "a test message was delivered")
        return
    if not settings.slack_token:
        yield Finding("slack", "ok", "webhook configured (not tried: `driftline doctor --send-test-alert` posts one)")
        return
    from slack_sdk import WebClient

    client = WebClient(token=settings.slack_token, timeout=10)
    if settings.slack_base_url:
        client.base_url = settings.slack_base_url
    try:
        answer = client.auth_test()
    except Exception as exc:  # noqa: BLE001 - reported as the finding
        yield Finding(
            "slack",
            "FAIL",
            redact(f"auth.test failed ({type(exc).__name__}: {exc}); check DRIFTLINE_SLACK_TOKEN"),
        )
        return
    team = answer.get("team") or "the workspace"
    yield Finding("slack", "ok", f"token accepted by {team}; alerts go to {settings.slack_channel}")


def check_configs(settings: Settings) -> Iterator[Finding]:
    from driftline.schemas.config import scan_monitor_configs
    from driftline.schemas.errors import check_monitor_config

    folder = Path(settings.config_dir)
    scan = scan_monitor_configs(folder)
    if not scan.models:
        yield Finding(
            "config",
            "warn",
            f"no monitor configs in {folder.resolve()} (DRIFTLINE_CONFIG_DIR): the drift and retrain DAGs check "
            "nothing; add one YAML file per model",
        )
        return
    for _, reason in sorted(scan.broken.items()):
        yield Finding("config", "FAIL", reason)  # it names the file
    for model, config in sorted(scan.configs.items()):
        name = scan.files[model].name
        try:
            problems = check_monitor_config(config, settings.storage_options)
        except Exception as exc:  # noqa: BLE001 - a network failure on the way is the finding
            problems = [explain(exc, f"model {model!r}: reference") or f"{type(exc).__name__}: {exc}"]
        for problem in problems:
            yield Finding("config", "FAIL", f"{name}: {problem}")
        if not problems:
            yield Finding("config", "ok", f"{name}: model {model!r}, reference readable")


def check_airflow(settings: Settings) -> Iterator[Finding]:
    import driftline.dags

    folder = Path(driftline.dags.__file__).parent
    try:
        from airflow.configuration import conf

        try:
            from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.2
        except ImportError:  # Airflow 3.1
            from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    except Exception as exc:  # noqa: BLE001 - reported as the finding
        yield Finding("airflow", "FAIL", f"Airflow does not import here ({type(exc).__name__}: {exc})")
        return
    # The DagBag narrates its work; the findings below are what counts here.
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            bag = DagBag(dag_folder=str(folder))
        finally:
            logging.disable(logging.NOTSET)
    for file, error in sorted(bag.import_errors.items()):
        yield Finding("airflow", "FAIL", f"{Path(file).name} does not import: {' '.join(str(error).split())[-300:]}")
    wanted = {"driftline_ingest", "driftline_drift", "driftline_retrain", "driftline_deploy"}
    missing = sorted(wanted - set(bag.dag_ids))
    if missing:
        yield Finding("airflow", "FAIL", f"DAGs {', '.join(missing)} not found in {folder}")
    elif not bag.import_errors:
        yield Finding("airflow", "ok", f"the {len(wanted)} driftline DAGs import cleanly from {folder}")
    dags_folder = Path(conf.get("core", "dags_folder")).resolve()
    bundles = conf.getjson("dag_processor", "dag_bundle_config_list", fallback=None)
    bundle_paths = {
        Path(bundle["kwargs"]["path"]).resolve()
        for bundle in (bundles if isinstance(bundles, list) else [])
        if isinstance(bundle, dict) and isinstance(bundle.get("kwargs"), dict) and bundle["kwargs"].get("path")
    }
    if folder.resolve() not in {dags_folder, *bundle_paths} and not any(dags_folder.glob("driftline_*.py")):
        yield Finding(
            "airflow",
            "warn",
            f"Airflow reads DAGs from {dags_folder}, which has no driftline DAG, and no DAG bundle holds {folder}; "
            'set AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST="$(driftline airflow-bundle)" (your DAGs folder '
            "and driftline's)",
        )


CHECKS: dict[str, Callable[..., Iterator[Finding]]] = {
    "broker": check_broker,
    "storage": check_storage,
    "slack": check_slack,
    "config": check_configs,
    "airflow": check_airflow,
}


def run_doctor(settings: Settings, *, only: list[str] | None = None, send_test_alert: bool = False) -> int:
    """Print one line per finding, then a summary; 0 when nothing failed, 1 otherwise."""
    findings: list[Finding] = []
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        found = check(settings, send_test_alert=send_test_alert) if name == "slack" else check(settings)
        for finding in found:
            print(finding.line(), flush=True)
            findings.append(finding)
    failed = sum(f.status == "FAIL" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    print(f"doctor: checks={len(findings)} failed={failed} warnings={warned}")
    return 1 if failed else 0
