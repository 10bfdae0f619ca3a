"""What the worker's Faust consumer commits: on the window-reports topic, the offset after the merger's saved
checkpoint, never Faust's own. (The source reader reads the predictions topic: test_sources.py.)"""

from __future__ import annotations

from faust.types import TP

from driftline.schemas.settings import Settings
from driftline.streams.agents import MetricsWorker, build_worker
from driftline.streams.alerts import ConsoleNotifier
from driftline.streams.app import create_app


def make_worker(tmp_path) -> MetricsWorker:
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_TOPIC_PREFIX": "u"})
    return MetricsWorker(create_app(settings), settings, {}, ConsoleNotifier(), source_partitions=3)


def test_the_reports_topic_commits_the_merger_checkpoint_not_faust_acknowledgements(tmp_path):
    worker = make_worker(tmp_path)
    topics = worker.settings.topics
    reports = topics.window_reports
    worker.saved_next = {TP(reports, 0): 8}
    faust = {TP(reports, 0): 12, TP(topics.alerts, 1): 3}  # Faust acknowledged further than the checkpoint
    assert worker.committable(faust, {}) == {
        TP(reports, 0): 8,  # the merger's checkpoint, not the 4 reports after it
        TP(topics.alerts, 1): 3,  # other topics: Faust's own offsets
    }
    assert worker.committable(faust, {TP(reports, 0): 8}) == {TP(topics.alerts, 1): 3}  # already committed there


def test_the_reports_partition_not_held_is_never_committed(tmp_path):
    worker = make_worker(tmp_path)
    assert worker.committable({TP(worker.settings.topics.window_reports, 0): 300}, {}) == {}


def test_every_faust_commit_goes_through_the_worker(tmp_path):
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_TOPIC_PREFIX": "u"})
    app = build_worker(settings, {}, ConsoleNotifier(), source_partitions=3)
    hook = app.consumer._filter_committable_offsets  # type: ignore[attr-defined]
    assert hook.__name__ == "committable_offsets"
    # Nothing saved yet: Faust's own offset on the reports topic is dropped, not committed.
    assert hook([TP(settings.topics.window_reports, 0)]) == {}
