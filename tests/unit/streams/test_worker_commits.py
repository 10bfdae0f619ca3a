"""What the worker's Faust consumer commits: on the window-reports topic, the offset after the merger's saved
checkpoint, never Faust's own. (The source reader reads the predictions topic: test_sources.py.)"""

from __future__ import annotations

from faust.types import TP

from driftline.schemas.settings import Settings
from driftline.streams.agents import MetricsWorker, build_worker
from driftline.streams.alerts.delivery import ConsoleNotifier
from driftline.streams.app import create_app


def make_worker(tmp_path) -> MetricsWorker:
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_TOPIC_PREFIX": "u"})
    return MetricsWorker(create_app(settings), settings, {}, ConsoleNotifier(), source_partitions=3)


def test_the_reports_topic_commits_the_merger_checkpoint_not_faust_acknowledgements(tmp_path):
    worker = make_worker(tmp_path)
    topics = worker.settings.topics
    reports = topics.window_reports
    worker.saved_next = {TP(reports, 0): 8}
    faust = {TP(reports, 0): 12, TP(topics.metrics, 1): 3}  # Faust acknowledged further than the checkpoint
    assert worker.committable(faust, {}) == {
        TP(reports, 0): 8,  # the merger's checkpoint, not the 4 reports after it
        TP(topics.metrics, 1): 3,  # topics the worker does not decide: Faust's own offsets
    }
    assert worker.committable(faust, {TP(reports, 0): 8}) == {TP(topics.metrics, 1): 3}  # already committed there


def test_the_alerts_topic_commits_after_the_last_alert_delivered_without_a_gap(tmp_path):
    worker = make_worker(tmp_path)
    alerts = TP(worker.settings.topics.alerts, 1)
    faust = {alerts: 40}  # Faust acknowledged messages it never handed over (a rebalance)
    assert worker.committable(faust, {}) == {}  # nothing delivered: nothing committed
    worker.alerts_next = {alerts: 12}
    assert worker.committable(faust, {}) == {alerts: 12}
    assert worker.committable(faust, {alerts: 12}) == {}


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


class Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class Event:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self.message, self.value = Message(topic, partition, offset), value


def test_delivery_advances_the_alerts_offset_only_while_offsets_come_one_after_the_other(tmp_path):
    import asyncio

    from faust.streams import Stream

    worker = make_worker(tmp_path)
    topic = worker.settings.topics.alerts
    delivered: list[bytes] = []

    async def deliver_alert(raw: bytes) -> None:
        delivered.append(raw)

    class Events(Stream):  # only what deliver_alerts reads of a stream
        def __init__(self, offsets: list[int]) -> None:
            self.offsets = offsets

        async def events(self):  # type: ignore[override]
            for offset in self.offsets:
                yield Event(topic, 0, offset, b"x")

    worker.deliver_alert = deliver_alert  # type: ignore[method-assign]
    worker.alerts_held = {TP(topic, 0)}
    worker.app.consumer._committed_offset = {TP(topic, 0): 5}  # type: ignore[attr-defined]
    asyncio.run(worker.deliver_alerts(Events([5, 6, 7, 9, 10])))  # 8 was skipped by Faust
    assert len(delivered) == 5
    assert worker.alerts_next == {TP(topic, 0): 8} and worker.alerts_gap == {TP(topic, 0)}


def test_a_first_alert_past_the_committed_offset_is_a_gap_and_a_revoked_partition_is_not_committed(tmp_path):
    import asyncio

    from faust.streams import Stream

    worker = make_worker(tmp_path)
    topic = worker.settings.topics.alerts

    async def deliver_alert(raw: bytes) -> None:
        return None

    class Events(Stream):
        def __init__(self, partition: int, offsets: list[int]) -> None:
            self.partition, self.offsets = partition, offsets

        async def events(self):  # type: ignore[override]
            for offset in self.offsets:
                yield Event(topic, self.partition, offset, b"x")

    worker.deliver_alert = deliver_alert  # type: ignore[method-assign]
    worker.alerts_held = {TP(topic, 0)}
    worker.app.consumer._committed_offset = {TP(topic, 0): 3, TP(topic, 1): 0}  # type: ignore[attr-defined]
    asyncio.run(worker.deliver_alerts(Events(0, [4, 5])))  # 3 was skipped in a rebalance
    assert TP(topic, 0) not in worker.alerts_next and worker.alerts_gap == {TP(topic, 0)}
    asyncio.run(worker.deliver_alerts(Events(1, [0, 1])))  # partition 1 is not held (revoked meanwhile)
    assert TP(topic, 1) not in worker.alerts_next
