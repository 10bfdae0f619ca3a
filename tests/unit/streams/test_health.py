from __future__ import annotations

from driftline.streams.health import WorkerHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_holding_uncounted_messages_without_progress_is_stalled():
    clock = Clock()
    health = WorkerHealth(stall_after=60, clock=clock)
    health.hold([0, 1])
    clock.now += 59
    assert health.check({0: 10, 1: 0}, rebalancing=False)[0] is True  # not for long enough yet
    health.progress(0)
    clock.now += 30
    healthy, details = health.check({0: 10, 1: 5}, rebalancing=False)
    assert not healthy and details["status"] == "stalled"
    assert details["problems"] == ["partition 1: 5 message(s) not counted and no progress for 89 s"]
    assert details["partitions"]["0"] == {"lag": 10, "silent_seconds": 30.0}


def test_a_caught_up_or_unknown_partition_is_never_called_stalled():
    clock = Clock()
    health = WorkerHealth(stall_after=60, clock=clock)
    health.hold([0, 1])
    clock.now += 3_600
    assert health.check({0: 0, 1: None}, rebalancing=False) == (
        True,
        {
            "status": "ok",
            "problems": [],
            "partitions": {"0": {"lag": 0, "silent_seconds": 3600.0}, "1": {"lag": None, "silent_seconds": 3600.0}},
            "merging": False,
            "merger_waiting_on_partitions": [],
        },
    )


def test_a_rebalance_that_never_ends_is_a_stall():
    clock = Clock()
    health = WorkerHealth(stall_after=60, clock=clock)
    assert health.check({}, rebalancing=True)[0] is True
    clock.now += 61
    healthy, details = health.check({}, rebalancing=True)
    assert not healthy and details["problems"] == ["in a consumer-group rebalance for 61 s"]
    assert health.check({}, rebalancing=False)[0] is True


def test_ready_once_joined_and_while_the_broker_answers():
    monotonic = Clock()
    health = WorkerHealth(stall_after=60, monotonic=monotonic)
    assert health.readiness() == (
        False,
        {
            "status": "not ready",
            "problems": ["the source reader has not joined its consumer group yet", "the broker has not answered yet"],
        },
    )
    health.joined = True
    health.broker_answered()
    monotonic.now += 10
    assert health.readiness() == (True, {"status": "ready", "problems": []})
    monotonic.now += 1
    assert health.readiness() == (False, {"status": "not ready", "problems": ["the broker has not answered for 11 s"]})
    health.broker_answered()
    assert health.readiness()[0] is True
