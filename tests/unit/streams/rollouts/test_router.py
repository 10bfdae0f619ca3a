"""The routing table: affinity across stages, splits within their weights, shadows apart from live traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.schemas.config import DeploymentSettings
from driftline.schemas.records import DeploymentState
from driftline.streams.rollouts import state as rollout
from driftline.streams.rollouts.router import NoDeploymentError, Router, RoutingTable, routable

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
KEYS = [f"user-{n}" for n in range(10_000)]


def stable(version: str = "v1") -> DeploymentState:
    return rollout.initial("m", version, reason="initial", at=T0)


def canary(stages: list[float], **settings: object) -> DeploymentState:
    return rollout.begin(
        stable(), "m", "v2", DeploymentSettings(strategy="canary", stages=stages, **settings), reason="retrained", at=T0
    )


def test_a_stage_change_moves_only_the_keys_it_must_and_keeps_every_candidate_key():
    state = canary([0.05, 0.25, 0.5, 1.0])
    seen = {key: RoutingTable(state).route(key).version for key in KEYS}
    for stage in range(1, 3):
        state = rollout.advance(state, reason="passed", at=T0 + timedelta(minutes=stage))
        now = {key: RoutingTable(state).route(key).version for key in KEYS}
        assert all(now[k] == "v2" for k in KEYS if seen[k] == "v2")  # a key on the candidate stays on it
        share = state.weights["v2"]
        moved = sum(seen[k] != now[k] for k in KEYS)
        should_move = share - state.history[-2].weights["v2"]
        assert abs(moved / len(KEYS) - should_move) < 0.02
        assert abs(sum(v == "v2" for v in now.values()) / len(KEYS) - share) < 0.02
        seen = now
    promoted = rollout.advance(state, reason="passed", at=T0 + timedelta(minutes=5))
    assert promoted.serving == "v2" and promoted.status == "promoted"
    assert {RoutingTable(promoted).route(k).version for k in KEYS} == {"v2"}


def test_within_a_stage_a_key_keeps_its_version_and_a_new_rollout_draws_new_buckets():
    state = canary([0.5, 1.0])
    table, again = RoutingTable(state), RoutingTable(DeploymentState.parse(state.to_json()))
    assert [table.route(k).version for k in KEYS] == [again.route(k).version for k in KEYS]
    other = state.model_copy(update={"rollout_id": "another"})
    differ = sum(table.route(k).version != RoutingTable(other).route(k).version for k in KEYS)
    assert 0.4 < differ / len(KEYS) < 0.6  # independent halves


@pytest.mark.parametrize("split", [0.5, 0.2, 0.1])
def test_an_ab_split_over_100000_keys_is_within_one_percent_of_its_weights(split):
    state = rollout.begin(
        stable(), "m", "v2", DeploymentSettings(strategy="ab", ab_split=split), reason="experiment", at=T0
    )
    table = RoutingTable(state)
    on_candidate = sum(table.route(f"req-{n}").version == "v2" for n in range(100_000))
    assert abs(on_candidate / 100_000 - split) <= 0.01


def test_a_shadow_stage_answers_with_the_stable_version_and_mirrors_its_share_independently():
    state = canary([0.0, 0.25, 1.0], shadow_share=0.3)
    assert (state.weights, state.shadow, state.shadow_share) == ({}, "v2", 0.3)
    routes = [RoutingTable(state).route(k) for k in KEYS]
    assert {r.version for r in routes} == {"v1"}
    assert abs(sum(r.shadow == "v2" for r in routes) / len(KEYS) - 0.3) < 0.02
    live = rollout.advance(state, reason="shadow agreed", at=T0 + timedelta(minutes=5))
    routes = [RoutingTable(live).route(k) for k in KEYS]
    assert {r.shadow for r in routes} == {None} and abs(sum(r.version == "v2" for r in routes) / 1e4 - 0.25) < 0.02


def test_a_rollback_sends_everything_to_the_stable_version_at_once():
    state = rollout.advance(canary([0.05, 0.5, 1.0]), reason="passed", at=T0)
    back = rollout.roll_back(state, reason="p95 latency 180 ms > 120 ms", at=T0, evidence=["latency"])
    assert (back.status, back.serving, back.candidate, back.weights) == ("rolled_back", "v1", None, {})
    assert {RoutingTable(back).route(k).version for k in KEYS} == {"v1"}
    event = back.history[-1]
    assert (event.version, event.from_status, event.to_status, event.evidence) == (
        "v2", "progressing", "rolled_back", ["latency"]
    )  # fmt: skip


def test_the_state_machine_refuses_what_makes_no_sense_and_counts_every_revision():
    state = canary([0.05, 1.0])
    with pytest.raises(rollout.DeployError, match="is rolling out v2"):
        rollout.begin(state, "m", "v3", DeploymentSettings(strategy="canary"), reason="x", at=T0)
    paused = rollout.pause(state, reason="on-call asked", at=T0)
    approved = rollout.advance(paused, reason="approved", at=T0)  # a person's approval of the next stage
    assert (approved.status, approved.serving) == ("promoted", "v2")
    resumed = rollout.resume(paused, reason="ok", at=T0)
    assert resumed.weights == state.weights and resumed.revision == state.revision + 2
    with pytest.raises(rollout.DeployError, match="already serves v1"):
        rollout.begin(stable(), "m", "v1", DeploymentSettings(), reason="x", at=T0)
    with pytest.raises(rollout.DeployError, match="no rollout in progress to promote"):
        rollout.promote(stable(), reason="x", at=T0)
    assert [e.revision for e in resumed.history] == list(range(1, resumed.revision + 1))


def test_blue_green_switches_at_once_and_a_bandit_is_reweighed_in_place():
    switched = rollout.begin(stable(), "m", "v2", DeploymentSettings(), reason="retrained", at=T0)
    assert (switched.serving, switched.previous, switched.status, switched.shares()) == ("v2", "v1", "promoted",
                                                                                         {"v2": 1.0})  # fmt: skip
    bandit = rollout.begin(stable(), "m", "v2", DeploymentSettings(strategy="bandit"), reason="x", at=T0)
    moved = rollout.reweigh(bandit, {"v1": 0.3, "v2": 0.7}, reason="rewards", at=T0)
    assert list(moved.weights) == ["v2", "v1"] and moved.weights["v2"] == 0.7
    with pytest.raises(rollout.DeployError, match="the arms are"):
        rollout.reweigh(bandit, {"v9": 1.0}, reason="x", at=T0)


def test_a_version_that_cannot_be_loaded_gives_its_share_to_the_stable_version():
    state = canary([0.25, 1.0])
    only_stable = routable(state, {"v2"})
    assert only_stable.shares() == {"v1": 1.0}
    assert {RoutingTable(only_stable).route(k).version for k in KEYS[:1000]} == {"v1"}


def test_a_router_with_no_state_serves_its_default_or_says_what_to_do():
    with Router("m", bootstrap_servers=None, default_version="v7", load_models=False) as router:
        assert router.route("a").version == "v7" and not router.wait_ready(0.05)
        assert router.apply(canary([0.5, 1.0]), "test")
        assert {router.route(k).version for k in KEYS[:200]} == {"v1", "v2"}
        assert not router.apply(stable(), "test")  # an older revision never replaces a newer one
    with (
        Router("m", bootstrap_servers=None, load_models=False) as router,
        pytest.raises(NoDeploymentError, match="pass default_version="),
    ):
        router.route("a")


def test_a_router_loads_each_version_once_and_routes_to_the_loaded_models():
    loads: list[str] = []

    def loader(version: str) -> str:
        loads.append(version)
        if version == "v2":
            raise ValueError("digest mismatch")
        return f"model {version}"

    with Router("m", bootstrap_servers=None, loader=loader) as router:
        router.apply(canary([0.5, 1.0]), "test")
        assert {(r.version, r.model) for r in map(router.route, KEYS[:200])} == {("v1", "model v1")}
        assert router.status.problems == {"v2": "digest mismatch"}
        assert loads == ["v2", "v1"]


def test_the_old_import_path_of_the_router_still_works_and_says_where_it_moved():
    import importlib
    import sys

    sys.modules.pop("driftline.streams.router", None)
    with pytest.warns(DeprecationWarning, match=r"driftline\.streams\.rollouts\.router"):
        old = importlib.import_module("driftline.streams.router")
    assert old.Router is Router
