"""Canary analysis: a rollout's candidate against the stable version, over the same windows of a stage. Pure.

Each stage collects, per version, what the stream worker measured in the windows that started after the stage
did (:class:`Arm`: events, errors, the merged latency sketch, the prediction moments and the commonest class,
and the labelled predictions the late-label join scored). :func:`judge_stage` compares them, gate by gate,
with **always-valid confidence sequences** (the normal-mixture sequential test, mSPRT: a 95 % sequence
covers the true difference at every look with 95 % probability, so a verdict may be read after every window
without inflating the error the way repeated fixed-n tests would):

- ``error_rate``: the candidate's error rate minus the stable's; it fails when the whole sequence is above
  ``max_error_rate_increase``, passes when the whole of it is below;
- ``latency``: the share of the candidate's requests slower than the stable's p95 × (1 + ``max_latency_increase``)
  (0.05 when the candidate's p95 is just at that limit); it fails when the whole sequence is above 0.05, passes
  when below;
- ``prediction_shift`` (a guard: it can fail a stage, it is not needed to pass one): the difference of mean
  predictions in units of the stable's standard deviation (numbers), or of the stable's commonest class's share
  (classes), beyond ``max_prediction_shift`` either way;
- ``prediction_spread`` (a guard, numbers): the share of each version's predictions outside the stable's
  10th–90th percentile, candidate minus stable, beyond ±0.4 × ``max_prediction_shift``: a spread that
  widens or narrows with the mean in place;
- ``accuracy`` (a guard, once labels are joined): the candidate's realized accuracy minus the stable's, below
  ``-max_accuracy_drop``;
- ``shadow_agreement`` (a guard, in a shadow stage): the share of the candidate's shadow answers that agree with
  the live answers to the same requests (:func:`.windows.answers_agree`), below ``min_shadow_agreement``.

A stage **rolls back** when any gate fails; **advances** once each version has ``min_events`` events, the stage
has lasted ``min_stage_duration``, the error and latency gates pass and no guard's estimate is past its limit
(a guard still collecting evidence toward a failure holds the stage); is **held** for a person when
``stage_deadline`` passes without either (too little traffic for evidence: never pass or fail on noise);
otherwise it **waits**. Every result names the metric, the two values, the limit and the sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from driftline.schemas.config import GateSettings
from driftline.schemas.records import WindowMetrics, WindowPerformance
from driftline.streams.windows import LatencySketch, PredictionSketch

Verdict = Literal["pass", "fail", "wait"]
Decision = Literal["advance", "roll_back", "hold", "wait"]
SLOW_SHARE = 0.05  # the share above a version's own p95
# The mixtures' scales: about the size of the effect each gate looks for (a sequence is narrowest there).
TAU = {"error_rate": 0.01, "latency": 0.02, "prediction_shift": 0.25, "class_share": 0.05, "accuracy": 0.02}


def confidence_sequence(estimate: float, variance: float, alpha: float, tau: float) -> tuple[float, float]:
    """The always-valid (1 - alpha) interval around ``estimate`` of a normal statistic of ``variance``, from
    the normal mixture N(0, tau²) over the effect: {θ : Λ(θ) < 1/alpha} with
    Λ = sqrt(V / (V + τ²)) · exp(τ² (estimate − θ)² / (2 V (V + τ²)))."""
    if variance <= 0:
        return estimate, estimate
    v, t2 = variance, tau * tau
    half = math.sqrt(2 * v * (v + t2) / t2 * (math.log(1 / alpha) + 0.5 * math.log((v + t2) / v)))
    return estimate - half, estimate + half


def _rate(successes: float, n: float) -> float:
    """A proportion's variance estimate that is never 0 (Agresti–Coull style: one success and one failure
    added), so a sequence over 30 requests without an error is not as narrow as a point."""
    p = (successes + 1) / (n + 2)
    return p * (1 - p) / max(n, 1)


@dataclass
class Arm:
    """One version's evidence in one stage."""

    events: int = 0
    errors: int = 0
    windows: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    predictions: PredictionSketch = field(default_factory=PredictionSketch)
    labelled: int = 0
    correct: int = 0
    shadow_pairs: int = 0
    shadow_agreements: int = 0

    def add(self, metrics: WindowMetrics) -> None:
        self.events += metrics.count
        self.errors += metrics.errors
        self.shadow_pairs += metrics.shadow_pairs
        self.shadow_agreements += metrics.shadow_agreements
        self.windows += 1
        self.latency = self.latency.merge(LatencySketch.from_record(metrics.latency_sketch))
        if metrics.predictions is not None:
            self.predictions = self.predictions.merge(PredictionSketch.from_record(metrics.predictions))

    def add_performance(self, performance: WindowPerformance) -> None:
        self.labelled += performance.labelled
        self.correct += performance.correct

    def state(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "errors": self.errors,
            "windows": self.windows,
            "latency": self.latency.to_record().to_jsonable(),
            "predictions": self.predictions.to_record().to_jsonable(),
            "labelled": self.labelled,
            "correct": self.correct,
            "shadow_pairs": self.shadow_pairs,
            "shadow_agreements": self.shadow_agreements,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Arm:
        from driftline.schemas.records import LatencySketchState, PredictionSketchState

        return cls(
            events=state["events"],
            errors=state["errors"],
            windows=state["windows"],
            latency=LatencySketch.from_record(LatencySketchState.parse(state["latency"])),
            predictions=PredictionSketch.from_record(PredictionSketchState.parse(state["predictions"])),
            labelled=state["labelled"],
            correct=state["correct"],
            shadow_pairs=state.get("shadow_pairs", 0),
            shadow_agreements=state.get("shadow_agreements", 0),
        )


@dataclass(frozen=True)
class GateResult:
    metric: str
    verdict: Verdict
    candidate: float | None
    stable: float | None
    limit: float
    low: float
    high: float
    line: str
    required: bool = True  # needed to pass (error rate, latency), or a guard that only fails
    leaning: bool = False  # a guard still waiting whose estimate is past its limit: no stage passes meanwhile


@dataclass(frozen=True)
class StageVerdict:
    decision: Decision
    reason: str
    results: list[GateResult]

    def evidence(self) -> list[str]:
        return [result.line for result in self.results]


def _judged(low: float, high: float, limit: float) -> Verdict:
    if low > limit:
        return "fail"
    if high < limit:
        return "pass"
    return "wait"


def _within(low: float, high: float, limit: float) -> Verdict:
    """A two-sided guard: fail when the whole sequence is beyond ±limit, pass when it is inside."""
    if low > limit or high < -limit:
        return "fail"
    if -limit < low and high < limit:
        return "pass"
    return "wait"


def error_gate(candidate: Arm, stable: Arm, gates: GateSettings) -> GateResult:
    alpha = 1 - gates.confidence
    c = candidate.errors / candidate.events if candidate.events else 0.0
    s = stable.errors / stable.events if stable.events else 0.0
    variance = _rate(candidate.errors, candidate.events) + _rate(stable.errors, stable.events)
    low, high = confidence_sequence(c - s, variance, alpha, TAU["error_rate"])
    limit = gates.max_error_rate_increase
    verdict = _judged(low, high, limit) if candidate.events and stable.events else "wait"
    line = (
        f"error_rate: candidate {c:.4f} ({candidate.errors}/{candidate.events}) vs stable {s:.4f} "
        f"({stable.errors}/{stable.events}); difference at most +{limit:g}; {gates.confidence:.0%} sequence of "
        f"the difference {low:+.4f} to {high:+.4f}: {verdict}"
    )
    return GateResult("error_rate", verdict, c, s, limit, low, high, line)


def latency_gate(candidate: Arm, stable: Arm, gates: GateSettings) -> GateResult:
    alpha = 1 - gates.confidence
    stable_p95 = stable.latency.quantile(0.95)
    candidate_p95 = candidate.latency.quantile(0.95)
    if stable_p95 is None or candidate_p95 is None or not candidate.latency.count:
        return GateResult(
            "latency", "wait", candidate_p95, stable_p95, SLOW_SHARE, 0.0, 1.0, "latency: no latencies yet: wait"
        )
    limit_ms = stable_p95 * (1 + gates.max_latency_increase)
    slower = sum(n for index, n in candidate.latency.buckets.items() if candidate.latency.value_of(index) > limit_ms)
    n = candidate.latency.count
    share = slower / n
    low, high = confidence_sequence(share, _rate(slower, n), alpha, TAU["latency"])
    verdict = _judged(low, high, SLOW_SHARE)
    line = (
        f"latency: candidate p95 {candidate_p95:.1f} ms vs stable p95 {stable_p95:.1f} ms; limit "
        f"{limit_ms:.1f} ms (+{gates.max_latency_increase:.0%}): {share:.1%} of the candidate's {n} requests slower, "
        f"{gates.confidence:.0%} sequence {max(low, 0):.1%} to {min(high, 1):.1%} against {SLOW_SHARE:.0%}: {verdict}"
    )
    return GateResult("latency", verdict, candidate_p95, stable_p95, limit_ms, low, high, line)


def prediction_gate(candidate: Arm, stable: Arm, gates: GateSettings) -> GateResult | None:
    alpha = 1 - gates.confidence
    c, s = candidate.predictions, stable.predictions
    limit = gates.max_prediction_shift
    if c.numeric >= 2 and s.numeric >= 2:
        mean_c, mean_s = c.total / c.numeric, s.total / s.numeric
        var_c = max(c.total_squares / c.numeric - mean_c**2, 0.0)
        var_s = max(s.total_squares / s.numeric - mean_s**2, 0.0)
        sd = math.sqrt(var_s) or math.sqrt(var_c) or 1.0
        d = (mean_c - mean_s) / sd
        low, high = confidence_sequence(
            d, (var_c / c.numeric + var_s / s.numeric) / sd**2, alpha, TAU["prediction_shift"]
        )
        verdict: Verdict = (
            "fail" if low > limit or high < -limit else "pass" if -limit < low and high < limit else "wait"
        )
        line = (
            f"prediction_shift: candidate mean {mean_c:.4g} vs stable {mean_s:.4g} ({d:+.3f} of the stable's sd "
            f"{sd:.4g}); at most ±{limit:g} sd; {gates.confidence:.0%} sequence {low:+.3f} to {high:+.3f}: {verdict}"
        )
        leaning = verdict == "wait" and abs(d) > limit
        return GateResult("prediction_shift", verdict, mean_c, mean_s, limit, low, high, line, False, leaning)
    stable_total = sum(s.classes.values()) + s.other_classes
    candidate_total = sum(c.classes.values()) + c.other_classes
    if not s.classes or not candidate_total:
        return None
    top = max(s.classes, key=lambda k: (s.classes[k], k))
    share_c, share_s = c.classes.get(top, 0) / candidate_total, s.classes[top] / stable_total
    variance = _rate(c.classes.get(top, 0), candidate_total) + _rate(s.classes[top], stable_total)
    low, high = confidence_sequence(share_c - share_s, variance, alpha, TAU["class_share"])
    verdict = _within(low, high, limit)
    line = (
        f"prediction_shift: class {top!r} is {share_c:.1%} of the candidate's predictions vs {share_s:.1%} of the "
        f"stable's; at most ±{limit:g}; {gates.confidence:.0%} sequence {low:+.3f} to {high:+.3f}: {verdict}"
    )
    leaning = verdict == "wait" and abs(share_c - share_s) > limit
    return GateResult("prediction_shift", verdict, share_c, share_s, limit, low, high, line, False, leaning)


def spread_gate(candidate: Arm, stable: Arm, gates: GateSettings) -> GateResult | None:
    """A guard on the shape of numeric predictions: the share of each version's predictions outside the stable
    version's 10th–90th percentile (for the stable itself about 20 %, less with ties), candidate minus stable;
    it fails when the whole sequence is beyond ±``max_prediction_shift`` × 0.4 (a spread half as wide again, or
    half as wide, moves the share by about 0.19 and 0.19 for normal predictions; ±0.1 with the default 0.25)."""
    c, s = candidate.predictions, stable.predictions
    if c.numeric < 2 or s.numeric < 2:
        return None
    low_edge, high_edge = s.quantile(0.1), s.quantile(0.9)
    if low_edge is None or high_edge is None or high_edge <= low_edge:
        return None  # a stable version that always answers the same: no spread to compare

    def outside(sketch: PredictionSketch) -> int:
        return sketch.numeric - sketch.count_above(low_edge) + sketch.count_above(high_edge)

    out_c, out_s = outside(c), outside(s)
    share_c, share_s = out_c / c.numeric, out_s / s.numeric
    variance = _rate(out_c, c.numeric) + _rate(out_s, s.numeric)
    low, high = confidence_sequence(share_c - share_s, variance, 1 - gates.confidence, TAU["class_share"])
    limit = 0.4 * gates.max_prediction_shift
    verdict = _within(low, high, limit)
    line = (
        f"prediction_spread: {share_c:.1%} of the candidate's predictions outside the stable's 10th–90th "
        f"percentile ({low_edge:.4g} to {high_edge:.4g}) vs {share_s:.1%} of the stable's; at most ±{limit:g}; "
        f"{gates.confidence:.0%} sequence {low:+.3f} to {high:+.3f}: {verdict}"
    )
    leaning = verdict == "wait" and abs(share_c - share_s) > limit
    return GateResult("prediction_spread", verdict, share_c, share_s, limit, low, high, line, False, leaning)


def accuracy_gate(candidate: Arm, stable: Arm, gates: GateSettings) -> GateResult | None:
    if not candidate.labelled or not stable.labelled:
        return None
    alpha = 1 - gates.confidence
    c, s = candidate.correct / candidate.labelled, stable.correct / stable.labelled
    variance = _rate(candidate.correct, candidate.labelled) + _rate(stable.correct, stable.labelled)
    low, high = confidence_sequence(c - s, variance, alpha, TAU["accuracy"])
    limit = -gates.max_accuracy_drop
    verdict: Verdict = "fail" if high < limit else "pass" if low > limit else "wait"
    line = (
        f"accuracy: candidate {c:.4f} ({candidate.correct}/{candidate.labelled} labelled) vs stable {s:.4f} "
        f"({stable.correct}/{stable.labelled}); drop at most {gates.max_accuracy_drop:g}; {gates.confidence:.0%} "
        f"sequence of the difference {low:+.4f} to {high:+.4f}: {verdict}"
    )
    leaning = verdict == "wait" and c - s < limit
    return GateResult("accuracy", verdict, c, s, limit, low, high, line, False, leaning)


def shadow_gate(candidate: Arm, gates: GateSettings) -> GateResult | None:
    """A guard for a shadow stage: the share of the candidate's shadow answers that agree with the live answers
    to the same requests; it fails when the whole sequence is below ``min_shadow_agreement``."""
    if not candidate.shadow_pairs:
        return None
    alpha = 1 - gates.confidence
    n, agreed = candidate.shadow_pairs, candidate.shadow_agreements
    share = agreed / n
    low, high = confidence_sequence(share, _rate(agreed, n), alpha, TAU["class_share"])
    limit = gates.min_shadow_agreement
    verdict: Verdict = "fail" if high < limit else "pass" if low > limit else "wait"
    line = (
        f"shadow_agreement: {share:.1%} of the candidate's {n} shadow answers agree with the live ones; at least "
        f"{limit:.0%}; {gates.confidence:.0%} sequence {max(low, 0):.1%} to {min(high, 1):.1%}: {verdict}"
    )
    leaning = verdict == "wait" and share < limit
    return GateResult("shadow_agreement", verdict, share, None, limit, low, high, line, False, leaning)


def judge_stage(candidate: Arm, stable: Arm, gates: GateSettings, elapsed: timedelta) -> StageVerdict:
    """The stage's decision from both versions' evidence so far (module docstring)."""
    results = [error_gate(candidate, stable, gates), latency_gate(candidate, stable, gates)]
    guards = (
        prediction_gate(candidate, stable, gates),
        spread_gate(candidate, stable, gates),
        accuracy_gate(candidate, stable, gates),
    )
    results += [r for r in (*guards, shadow_gate(candidate, gates)) if r]
    failed = [r for r in results if r.verdict == "fail"]
    if failed and min(candidate.events, stable.events) >= 10:  # a handful of events never decides
        return StageVerdict("roll_back", "; ".join(f"{r.metric} failed" for r in failed), results)
    enough = candidate.events >= gates.min_events and stable.events >= gates.min_events
    passed = all(r.verdict == "pass" for r in results if r.required) and not any(r.leaning for r in results)
    if enough and passed and elapsed >= gates.min_stage_duration:
        return StageVerdict("advance", "every gate passed", results)
    if elapsed >= gates.stage_deadline:
        short = [f"{r.metric} undecided" for r in results if r.required and r.verdict != "pass"]
        if not enough:
            short.insert(0, f"{min(candidate.events, stable.events)} of the {gates.min_events} events needed")
        return StageVerdict("hold", f"no verdict within {gates.stage_deadline}: " + ", ".join(short), results)
    return StageVerdict("wait", "collecting evidence", results)
