"""Canary gates: always-valid at every look, patient at low traffic, quick on a bad candidate."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from driftline.schemas.config import GateSettings
from driftline.streams.rollouts.gates import Arm, confidence_sequence, judge_stage

GATES = GateSettings(min_events=100, min_stage_duration=timedelta(minutes=5), stage_deadline=timedelta(hours=1))


def fill(sketch, values: np.ndarray) -> None:
    """Numeric predictions into a prediction sketch at once (its moments and both of its log sketches)."""
    sketch.numeric += len(values)
    sketch.total += float(values.sum())
    sketch.total_squares += float((values**2).sum())
    sketch.positive.add_many(values[values >= 0])
    sketch.negative.add_many(-values[values < 0])


def feed(
    arm: Arm,
    rng: np.random.Generator,
    n: int,
    error_rate: float,
    latency_scale: float,
    score: float,
    spread: float = 1.0,
) -> None:
    arm.events += n
    arm.errors += int(rng.binomial(n, error_rate))
    arm.latency.add_many(rng.lognormal(np.log(20 * latency_scale), 0.3, n))
    fill(arm.predictions, rng.normal(score, 0.1 * spread, n))
    arm.windows += 1


def run(seed: int, *, candidate: dict, per_window: tuple[int, int], windows: int = 12) -> tuple[str, int]:
    """Windows of 5 minutes: (the decision, the window it came in)."""
    rng = np.random.default_rng(seed)
    c, s = Arm(), Arm()
    for w in range(1, windows + 1):
        feed(c, rng, per_window[0], **candidate)
        feed(s, rng, per_window[1], error_rate=0.01, latency_scale=1.0, score=0.3)
        verdict = judge_stage(c, s, GATES, timedelta(minutes=5 * w))
        if verdict.decision != "wait":
            return verdict.decision, w
    return "wait", windows


def test_the_sequence_covers_the_true_difference_at_every_look_where_repeated_fixed_tests_do_not():
    rng = np.random.default_rng(1)
    ever_out = naive_out = 0
    runs = 1000
    for _ in range(runs):
        a = rng.uniform(size=2000) < 0.1
        b = rng.uniform(size=2000) < 0.1
        looks = np.arange(20, 2001, 20)
        ca, cb = np.cumsum(a)[looks - 1], np.cumsum(b)[looks - 1]
        pa, pb = ca / looks, cb / looks
        variance = pa * (1 - pa) / looks + pb * (1 - pb) / looks
        out = naive = False
        for d, v in zip(pa - pb, variance, strict=True):
            low, high = confidence_sequence(float(d), float(v), 0.05, 0.05)
            out |= not low <= 0 <= high
            naive |= abs(d) > 1.96 * np.sqrt(v)
        ever_out += out
        naive_out += naive
    assert ever_out / runs <= 0.05  # looked at 100 times, wrong at most 5 % of the time
    assert naive_out / runs > 0.2  # a 95 % interval looked at as often says "different" far more often


def test_a_candidate_as_good_as_the_stable_advances_and_is_rarely_rolled_back():
    good = {"error_rate": 0.01, "latency_scale": 1.0, "score": 0.3}
    outcomes = [run(seed, candidate=good, per_window=(200, 3800)) for seed in range(200)]  # a 5 % canary
    rolled_back = sum(decision == "roll_back" for decision, _ in outcomes)
    advanced = sum(decision == "advance" for decision, _ in outcomes)
    assert rolled_back / len(outcomes) <= 0.05
    assert advanced / len(outcomes) >= 0.9


@pytest.mark.parametrize(
    ("change", "gate"),
    [
        ({"error_rate": 0.05}, "error_rate"),
        ({"latency_scale": 1.6}, "latency"),
        ({"score": 0.45}, "prediction_shift"),
        ({"spread": 1.6}, "prediction_spread"),
    ],
)
def test_a_bad_candidate_is_rolled_back_by_the_gate_it_fails(change, gate):
    bad = {"error_rate": 0.01, "latency_scale": 1.0, "score": 0.3, **change}
    outcomes = [run(seed, candidate=bad, per_window=(100, 1900)) for seed in range(20)]
    assert {decision for decision, _ in outcomes} == {"roll_back"}
    assert sorted(window for _, window in outcomes)[10] <= 8  # half of them within 40 minutes (800 events)
    rng = np.random.default_rng(0)
    c, s = Arm(), Arm()
    for w in range(1, 13):
        feed(c, rng, 100, **bad)
        feed(s, rng, 1900, error_rate=0.01, latency_scale=1.0, score=0.3)
        verdict = judge_stage(c, s, GATES, timedelta(minutes=5 * w))
        if verdict.decision == "roll_back":
            break
    failed = {r.metric: r for r in verdict.results if r.verdict == "fail"}
    assert gate in failed and "candidate" in failed[gate].line and "stable" in failed[gate].line


def test_a_quiet_service_waits_for_evidence_and_is_held_at_the_deadline_never_passed_on_noise():
    good = {"error_rate": 0.01, "latency_scale": 1.0, "score": 0.3}
    decision, window = run(3, candidate=good, per_window=(3, 60), windows=12)
    assert (decision, window) == ("hold", 12)  # 36 candidate events in an hour: not enough to say
    rng = np.random.default_rng(3)
    c, s = Arm(), Arm()
    feed(c, rng, 3, **good)
    feed(s, rng, 60, **good)
    verdict = judge_stage(c, s, GATES, timedelta(hours=1))
    assert verdict.decision == "hold" and "3 of the 100 events needed" in verdict.reason


def test_accuracy_from_joined_labels_guards_a_stage():
    c, s = Arm(events=500, labelled=400, correct=280), Arm(events=5000, labelled=4000, correct=3600)
    c.latency.add(10.0)
    s.latency.add(10.0)
    verdict = judge_stage(c, s, GATES, timedelta(minutes=10))
    assert verdict.decision == "roll_back"
    [accuracy] = [r for r in verdict.results if r.metric == "accuracy"]
    assert accuracy.verdict == "fail" and "candidate 0.7000 (280/400 labelled) vs stable 0.9000" in accuracy.line


def test_an_arm_survives_its_checkpoint():
    rng = np.random.default_rng(5)
    arm = Arm()
    feed(arm, rng, 50, error_rate=0.1, latency_scale=1.0, score=0.5)
    again = Arm.from_state(arm.state())
    assert again.state() == arm.state() and again.latency.quantile(0.95) == arm.latency.quantile(0.95)


def test_many_latencies_at_once_fill_the_sketch_as_one_at_a_time():
    from driftline.streams.windows import LatencySketch

    values = np.random.default_rng(2).lognormal(3, 1, 5000).round(3)
    one, many = LatencySketch(), LatencySketch()
    for value in [*values, 0.0]:
        one.add(float(value))
    many.add_many([*values, 0.0])
    assert (many.count, many.zeros) == (one.count, one.zeros) == (5001, 1)
    assert sum(abs(many.buckets[k] - one.buckets[k]) for k in one.buckets | many.buckets) <= 2  # edges: rounding


def test_a_shadow_that_disagrees_with_the_live_answers_fails_its_stage():
    rng = np.random.default_rng(8)
    c, s = Arm(), Arm()
    feed(c, rng, 300, error_rate=0.01, latency_scale=1.0, score=0.3)
    feed(s, rng, 3000, error_rate=0.01, latency_scale=1.0, score=0.3)
    c.shadow_pairs, c.shadow_agreements = 300, 210  # 70 % agreement
    assert judge_stage(c, s, GATES, timedelta(minutes=10)).decision != "roll_back"  # by default: reported only
    gates = GATES.model_copy(update={"min_shadow_agreement": 0.9})
    verdict = judge_stage(c, s, gates, timedelta(minutes=10))
    assert verdict.decision == "roll_back" and verdict.reason == "shadow_agreement failed"
    c.shadow_agreements = 294  # 98 %
    [shadow] = [r for r in judge_stage(c, s, gates, timedelta(minutes=10)).results if r.metric == "shadow_agreement"]
    assert shadow.verdict == "pass" and "98.0% of the candidate's 300 shadow answers agree" in shadow.line


def test_count_above_agrees_with_the_values_it_sketches():
    from driftline.streams.windows import PredictionSketch

    values = np.random.default_rng(9).normal(0, 2, 3000).round(4)
    sketch = PredictionSketch()
    for value in values:
        sketch.add(float(value))
    for x in (-3.0, -0.5, 0.0, 0.7, 2.5):
        assert abs(sketch.count_above(x) - int((values > x).sum())) <= 0.01 * len(values)  # bucket edges: 1 %
