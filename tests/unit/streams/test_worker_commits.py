"""What the worker commits: on the predictions and window-reports topics, the offset after each saved checkpoint,
never Faust's own."""

from __future__ import annotations

from faust.types import TP

from driftline.schemas.settings import Settings
from driftline.streams.agents import MetricsWorker, build_worker
from driftline.streams.alerts import ConsoleNotifier
from driftline.streams.app import create_app


def make_worker(tmp_path) -> MetricsWorker:
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_TOPIC_PREFIX": "u"})
    return MetricsWorker(create_app(settings), settings, {}, ConsoleNotifier(), source_partitions=3)


def test_checkpointed_topics_commit_the_saved_checkpoints_not_faust_acknowledgements(tmp_path):
    worker = make_worker(tmp_path)
    topics = worker.settings.topics
    predictions, reports = topics.predictions, topics.window_reports
    worker.saved_next = {TP(predictions, 0): 120, TP(predictions, 1): 0, TP(predictions, 2): 57, TP(reports, 0): 8}
    faust = {  # Faust acknowledged further than the checkpoints
        TP(predictions, 0): 900,
        TP(predictions, 1): 40,
        TP(reports, 0): 12,
        TP(topics.alerts, 1): 3,
    }
    committed = {TP(predictions, 2): 57}
    assert worker.committable(faust, committed) == {
        TP(predictions, 0): 120,  # lowered to the checkpoint: 120..899 were acknowledged but never counted
        TP(predictions, 1): 0,  # held, nothing counted yet: the next reader starts at the beginning
        TP(reports, 0): 8,  # the merger's checkpoint, not the 4 reports after it
        TP(topics.alerts, 1): 3,  # other topics: Faust's own offsets
    }  # partition 2: already committed at its checkpoint, nothing to send


def test_a_partition_not_held_is_never_committed(tmp_path):
    worker = make_worker(tmp_path)
    predictions = worker.settings.topics.predictions
    worker.saved_next = {TP(predictions, 1): 5}
    assert worker.committable({TP(predictions, 0): 300}, {}) == {TP(predictions, 1): 5}


def test_every_faust_commit_goes_through_the_worker(tmp_path):
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_TOPIC_PREFIX": "u"})
    app = build_worker(settings, {}, ConsoleNotifier(), source_partitions=3)
    hook = app.consumer._filter_committable_offsets  # type: ignore[attr-defined]
    assert hook.__name__ == "committable_offsets"
    # Nothing saved yet: Faust's own offsets on the predictions topic are dropped, not committed.
    assert hook([TP(settings.topics.predictions, 0)]) == {}
