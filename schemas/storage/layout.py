"""Storage layout: every path driftline reads or writes, relative to the storage root. Pure; no IO.

Only the storage package uses these; everything else calls its functions.
Paths are Hive-style so that pyarrow datasets discover the partitions::

    {root}/predictions/model=M/version=V/date=YYYY-MM-DD/hour=HH/{topic}+{partition}+{first}+{last}.parquet
    {root}/labels/...                                  # the same shape
    {root}/reports/model=M/drift-{window_end}.json     # + .html beside it
    {root}/reports/model=M/index.html                  # newest window first; reports/index.html: every model
    {root}/models/M/routing.json                       # deployment state: which version serves
    {root}/models/M/versions/V/model.skops|model.pkl   # + metadata.json (ModelVersion, with the SHA-256)
    {root}/models/M/reference_profile.npz              # + reference_profile.source.json
    {root}/models/M/window_profiles/{ref}/{window_end}.npz   # each checked window, for the rolling reference
    {root}/models/M/segment_profiles/{ref}/{column}/{value}.npz  # the reference of each segment (digests)
    {root}/retrain/requests/M.json
    {root}/alerts/{pending,sent}/{alert_id}.json
    {root}/_ingest/{topic}/{partition}/{first_offset}.json
    {root}/_ingest/{topic}/progress.json               # IngestProgress: how far ingest has caught up
    {root}/retrain/made/M/{window_end}.json            # a window that already requested a retrain
    {root}/quarantine/{the unreadable file's own path}   # + .json beside it (QuarantinedFile)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from driftline.schemas.names import NameError_, check_name

EVENT_KINDS = ("predictions", "labels")
_SEGMENT_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")
_EVENT_FILE = re.compile(
    r"^(?P<kind>predictions|labels)/model=(?P<model>[^/]+)/version=(?P<version>[^/]+)/"
    r"date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/(?P<name>[^/]+\.parquet)$"
)


class LayoutError(ValueError):
    """A name that cannot be part of a storage path."""


def segment(value: str, what: str) -> str:
    """``value`` as one path segment; refuses separators, control characters, ``.`` and ``..``."""
    if not value or value in {".", ".."} or _SEGMENT_FORBIDDEN.search(value):
        raise LayoutError(
            f"{what} {value!r} cannot be used in a storage path: it must be non-empty, not '.' or '..', "
            "and hold no '/', '\\' or control characters"
        )
    return value


def _name(value: str, what: str) -> str:
    """A model or version name as a path segment: the one rule of schemas/names.py."""
    try:
        return check_name(value, what)
    except NameError_ as exc:
        raise LayoutError(str(exc)) from None


def event_kind(kind: str) -> str:
    if kind not in EVENT_KINDS:
        raise LayoutError(f"event kind must be one of {EVENT_KINDS}, got {kind!r}")
    return kind


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment`` (a naive moment is local time, as ``astimezone`` reads it)."""
    return _hour_starting(moment.timestamp() // 3600)  # ingest calls this for every event: the hours are cached


@functools.lru_cache(maxsize=4096)
def _hour_starting(index: float) -> datetime:
    return datetime.fromtimestamp(index * 3600, UTC)


def event_model_folder(kind: str, model: str) -> str:
    return f"{event_kind(kind)}/model={_name(model, 'model')}"


def event_partition(kind: str, model: str, model_version: str, hour: datetime) -> str:
    hour = hour_of(hour)
    return (
        f"{event_model_folder(kind, model)}/version={_name(model_version, 'model version')}"
        f"/date={hour:%Y-%m-%d}/hour={hour:%H}"
    )


def data_file_name(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """Named by source partition and offset range, so rewriting a range replaces the file."""
    return f"{segment(topic, 'topic')}+{partition}+{first_offset:020d}+{last_offset:020d}.parquet"


def event_file(kind: str, partition_key: tuple[str, str, datetime], source: tuple[str, int, int, int]) -> str:
    """The file of one (model, version, hour) holding rows of one (topic, partition, first, last offset) range."""
    model, model_version, hour = partition_key
    return f"{event_partition(kind, model, model_version, hour)}/{data_file_name(*source)}"


def event_files_glob(kind: str, model: str) -> str:
    return f"{event_model_folder(kind, model)}/version=*/date=*/hour=*/*.parquet"


@dataclass(frozen=True)
class EventFile:
    """What an event file's path says about its rows."""

    kind: str
    model: str
    model_version: str
    hour: datetime
    name: str


def parse_event_file(relative: str) -> EventFile:
    """The partition values of a path written by :func:`event_file`; :class:`LayoutError` for any other path."""
    match = _EVENT_FILE.match(relative)
    if not match:
        raise LayoutError(f"{relative!r} is not an event file path ({event_files_glob('<kind>', '<model>')})")
    hour = datetime.strptime(f"{match['date']}T{match['hour']}", "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return EventFile(match["kind"], match["model"], match["version"], hour, match["name"])


def parse_data_file_name(name: str) -> tuple[str, int, int, int] | None:
    """``(topic, partition, first_offset, last_offset)`` from a name written by :func:`data_file_name`."""
    parts = name.removesuffix(".parquet").rsplit("+", 3)
    if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
        return None
    return parts[0], int(parts[1]), int(parts[2]), int(parts[3])


QUARANTINE_FOLDER = "quarantine"


def quarantined(relative: str) -> str:
    """Where an unreadable file at ``relative`` is moved: the same path under ``quarantine/``."""
    return f"{QUARANTINE_FOLDER}/{relative}"


def quarantine_record(relative: str) -> str:
    return f"{quarantined(relative)}.json"


def ingest_ledger(topic: str, partition: int, first_offset: int) -> str:
    return f"_ingest/{segment(topic, 'topic')}/{partition}/{first_offset:020d}.json"


def ingest_progress(topic: str) -> str:
    return f"_ingest/{segment(topic, 'topic')}/progress.json"


REPORTS_FOLDER = "reports"


def reports_folder(model: str) -> str:
    return f"{REPORTS_FOLDER}/model={_name(model, 'model')}"


def report_index(model: str | None = None) -> str:
    """The HTML index of one model's reports, or (no model) of every model's."""
    return f"{reports_folder(model)}/index.html" if model is not None else f"{REPORTS_FOLDER}/index.html"


def reported_models_glob() -> str:
    return f"{REPORTS_FOLDER}/model=*/index.html"


def drift_report(model: str, window_end: datetime) -> str:
    return f"{reports_folder(model)}/drift-{window_end.astimezone(UTC):%Y%m%dT%H%M%SZ}.json"


def drift_report_html(model: str, window_end: datetime) -> str:
    return drift_report(model, window_end).removesuffix(".json") + ".html"


def model_folder(model: str) -> str:
    return f"models/{_name(model, 'model')}"


def deployment_state(model: str) -> str:
    return f"{model_folder(model)}/routing.json"


def model_versions_folder(model: str) -> str:
    return f"{model_folder(model)}/versions"


def model_version_dir(model: str, version: str) -> str:
    return f"{model_versions_folder(model)}/{_name(version, 'model version')}"


def model_artifact(model: str, version: str, file_name: str) -> str:
    return f"{model_version_dir(model, version)}/{segment(file_name, 'artifact name')}"


def model_version_metadata(model: str, version: str) -> str:
    return f"{model_version_dir(model, version)}/metadata.json"


def reference_profile(model: str) -> str:
    """Built once from the training data, stored next to the model."""
    return f"{model_folder(model)}/reference_profile.npz"


def reference_profile_source(model: str) -> str:
    return f"{model_folder(model)}/reference_profile.source.json"


def window_profile(model: str, reference_key: str, window_end: datetime) -> str:
    """A checked window's profile on the reference's bins (``reference_key`` names the reference profile)."""
    return (
        f"{model_folder(model)}/window_profiles/{segment(reference_key, 'reference key')}/"
        f"{window_end.astimezone(UTC):%Y%m%dT%H%M%SZ}.npz"
    )


def segment_reference_profile(model: str, reference_key: str, column_key: str, value_key: str) -> str:
    """The reference profile of one segment (the rows of one value of a segment feature); keys are digests."""
    return (
        f"{model_folder(model)}/segment_profiles/{segment(reference_key, 'reference key')}/"
        f"{segment(column_key, 'segment column key')}/{segment(value_key, 'segment value key')}.npz"
    )


def retrain_request(model: str) -> str:
    return f"retrain/requests/{_name(model, 'model')}.json"


def retrain_request_made(model: str, window_end: datetime) -> str:
    """Marks that the drift check of this window requested a retrain: a rerun of the window asks no second time."""
    return f"retrain/made/{_name(model, 'model')}/{window_end.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.json"


ALERT_STATES = ("pending", "sending", "sent")  # sending: claims, one per alert being sent


def alert_outbox_folder(state: str) -> str:
    if state not in ALERT_STATES:
        raise LayoutError(f"alert outbox state must be one of {ALERT_STATES}, got {state!r}")
    return f"alerts/{state}"


def alert_outbox(state: str, alert_id: str) -> str:
    return f"{alert_outbox_folder(state)}/{segment(alert_id, 'alert id')}.json"


# -- stream worker state --------------------------------------------------------------------------------
WORKER_FOLDER = "worker"


def worker_folder(group: str) -> str:
    return f"{WORKER_FOLDER}/{segment(group, 'worker group')}"


def partition_checkpoint(group: str, topic: str, partition: int) -> str:
    return f"{worker_folder(group)}/{segment(topic, 'topic')}-{int(partition)}.json"


def merger_checkpoint(group: str) -> str:
    return f"{worker_folder(group)}/merger.json"
