"""Per-model monitor configuration: one validated YAML file per model.

A file with only ``model`` and ``reference`` is a complete configuration;
everything else has a default. ``load_monitor_configs`` reads a directory of
``*.yaml`` files.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from driftline.schemas.names import ModelName, NameError_, check_name
from driftline.schemas.records import Strategy

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"expected a positive duration such as '30s', '5m', '1h' or '7d', got {value!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _duration_or_off(value: Any) -> timedelta:
    """A duration, or ``0`` / ``"0"`` / ``"off"`` for none."""
    if value in (0, "0", "off") and not isinstance(value, bool):
        return timedelta(0)
    return parse_duration(value)


DurationOrOff = Annotated[timedelta, BeforeValidator(_duration_or_off)]
FeatureType = Literal["numeric", "categorical"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _known_tests(tests: dict[str, str]) -> dict[str, str]:
    from driftline.detectors.registry import available_test_names  # the registry is the one list of names

    valid = available_test_names()
    unknown = {feature: name for feature, name in tests.items() if name not in valid}
    if unknown:
        listed = ", ".join(f"{feature}: {name!r}" for feature, name in sorted(unknown.items()))
        raise ValueError(f"unknown drift test ({listed}); valid names: {', '.join(valid)}")
    return tests


def _default_min_effect() -> dict[FeatureType, float]:
    # detectors.engine.EFFECT_FLOORS (a unit test holds them equal; importing the engine here would load numpy and
    # pyarrow into every process that reads a config)
    return {"numeric": 0.1, "categorical": 0.02}


class DriftSettings(_Section):
    window: Duration = timedelta(hours=1)
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Family-wise significance level of the drift tests.")
    correction: Literal["fdr", "bonferroni", "none"] = "fdr"
    min_rows: int = Field(
        default=100,
        ge=1,
        description="A feature with fewer current values than this is 'insufficient data' (only gross change — values "
        "out of range, unseen categories, a missing-share jump — can still be found), never 'no drift'.",
    )
    alert_share: float = Field(
        default=0.0, ge=0, le=1, description="Alert when the share of drifted features exceeds this."
    )
    retrain_share: float = Field(
        default=0.2, ge=0, le=1, description="Request a retrain when the share of drifted features reaches this."
    )
    tests: Annotated[dict[str, str], AfterValidator(_known_tests)] = Field(
        default_factory=dict, description="Feature -> registered test name, instead of automatic selection."
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Feature -> threshold for a configured distance test (drift.tests)."
    )
    min_effect: dict[FeatureType, Annotated[float, Field(ge=0)]] = Field(
        default_factory=_default_min_effect,
        description="The effect a significant change needs to be drift, by kind: Wasserstein distance in reference "
        "standard deviations (numeric), total variation (categorical). Below it a significant change is 'minor': "
        "reported, never alerted. 0: every significant change is drift.",
    )
    effect_floors: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="Feature -> its own effect floor, instead of min_effect's for its kind."
    )
    multivariate: bool = Field(
        default=True,
        description="Also test the features together (PCA reconstruction error of whole rows): joint shifts no "
        "single feature shows. Its verdict is part of the report and of the drift alert.",
    )
    production_windows: int = Field(
        default=6,
        ge=0,
        le=168,
        description="Drift is also tested against the previous this-many windows of production data (a rolling "
        "reference, beside the training reference's skew); 0: off.",
    )
    production_alerts: bool = Field(
        default=False,
        description="Alert (kind production_drift) when the window drifted against the rolling reference; off by "
        "default, since hour-to-hour cycles are normal in many services. The report shows it either way.",
    )
    segments: list[str] = Field(
        default_factory=list,
        description="Features whose values split the data into segments, each tested on its own (e.g. country).",
    )
    segment_limit: int = Field(
        default=10, ge=1, le=100, description="Per segment feature, at most this many of its commonest values."
    )


class MetricSettings(_Section):
    window: Duration = timedelta(minutes=5)
    latency_p95_ms: float | None = Field(default=None, gt=0)
    error_rate: float | None = Field(default=0.05, ge=0, le=1)
    fallback_rate: float | None = Field(
        default=None, ge=0, le=1, description="Alert when more of a window's requests are answered by a default."
    )
    min_count: int = Field(
        default=20, ge=1, description="Windows with fewer events neither raise nor resolve a threshold alert."
    )
    critical_factor: float = Field(
        default=2.0, gt=1, description="A value at or above threshold × this is critical (else a warning)."
    )
    prediction_drift: Literal["cusum", "adwin", "off"] = Field(
        default="cusum", description="The online detector on each version's window-by-window predictions."
    )
    prediction_drift_warmup: int = Field(
        default=12, ge=2, description="Windows that set the prediction baseline (CUSUM) before it can alert."
    )
    cooldown: DurationOrOff = Field(
        default=timedelta(minutes=15),
        description="After a metric recovered, a new breach of it starting within this span is tracked but not "
        "announced (flapping); a critical one always is. 0: off.",
    )


class AlertSettings(_Section):
    slack_channel: str | None = None
    quality_severity: Literal["info", "warning", "critical", "off"] = Field(
        default="warning",
        description="Quality findings of this severity or worse are alerted (one message per window); 'off': none.",
    )
    cooldown: DurationOrOff = Field(
        default=timedelta(hours=6),
        description="After a drift or quality alert for a window, the same kind of alert for this model is not sent "
        "for windows ending within this span of it (before or after); the report says it was held back. 0: off.",
    )
    insufficient_data: bool = Field(
        default=True,
        description="Alert (kind insufficient_data, under the same cooldown) when a window's check found no drift "
        "but could not judge some features for too few values: a check that cannot see is not 'no drift'.",
    )


class PerformanceSettings(_Section):
    """Realized performance of each drift window once its labels are stored, and an estimate before."""

    task: Literal["classification", "regression"] = "classification"
    threshold: float = Field(default=0.5, description="Classification: a prediction score at or above this is class 1.")
    reference: dict[str, float] = Field(
        default_factory=dict,
        description="Metric -> expected value (accuracy, f1, roc_auc, mae, ...); default: the serving version's "
        "holdout accuracy.",
    )
    tolerance: float = Field(
        default=0.02, ge=0, description="Degraded when the whole interval is worse than the reference by more."
    )
    min_labels: int = Field(default=100, ge=10, description="Fewer labelled rows: 'insufficient labels'.")
    label_deadline: DurationOrOff = Field(
        default=timedelta(0),
        description="The stream worker joins labels arriving within this span after their prediction's window "
        "ends and publishes each window's realized performance then (streams/label_join.py). 0: off.",
    )
    max_pending: int = Field(
        default=100_000, ge=100, description="Predictions waiting for a label, per source partition, at most."
    )


class RetrainSettings(_Section):
    entry_point: str | None = Field(
        default=None, description="'package.module:function' called as fn(features, labels, config) -> model"
    )
    window: Duration = timedelta(hours=1)
    min_rows: int = Field(default=200, ge=10)
    max_age: DurationOrOff = Field(
        default=timedelta(days=30),
        description="Alert (once per version) when the serving version was trained longer ago than this; 0: off.",
    )
    max_accuracy_drop: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Deploy only if the new model's holdout accuracy is at least the serving model's minus this.",
    )

    @model_validator(mode="after")
    def _entry_point_shape(self) -> RetrainSettings:
        if self.entry_point is not None and not re.fullmatch(r"[\w.]+:[\w]+", self.entry_point):
            raise ValueError(f"retrain.entry_point must look like 'package.module:function', got {self.entry_point!r}")
        return self


class GateSettings(_Section):
    """The analysis of a rollout's candidate against the stable version at every stage (docs/rollouts.md)."""

    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Of the always-valid confidence sequences.")
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1, description="Candidate minus stable, at most.")
    max_latency_increase: float = Field(
        default=0.2, ge=0, description="The candidate's p95 may exceed the stable's by this share at most."
    )
    max_prediction_shift: float = Field(
        default=0.25,
        gt=0,
        description="Mean prediction moved by this many of the stable's standard deviations "
        "(numbers), or the stable's commonest class's share moved by this much (classes), at most.",
    )
    max_accuracy_drop: float = Field(default=0.02, ge=0, le=1, description="Realized accuracy, labels joined.")
    min_shadow_agreement: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="A shadow's answers agreeing with the live ones, at least (a guard; 0: reported, never "
        "failing: a model retrained after a change is meant to answer differently; e.g. 0.95 for a re-platformed one).",
    )
    min_events: int = Field(default=100, ge=10, description="Per version and stage before a stage may pass.")
    min_stage_duration: Duration = Field(default=timedelta(minutes=5), description="Before a stage may pass.")
    stage_deadline: Duration = Field(
        default=timedelta(hours=1), description="No verdict by then: the rollout is paused for a person."
    )
    approve_last_stage: bool = Field(default=False, description="Pause for a person before the candidate gets all.")
    automatic: bool = Field(default=True, description="Off: the gates report, only people advance or roll back.")


class DeploymentSettings(_Section):
    """How a retrained version reaches traffic (docs/rollouts.md); every field can be overridden per rollout."""

    strategy: Strategy = Field(
        default="blue_green",
        description="recreate | blue_green (all at once, the old version kept warm) | canary (staged shares) | "
        "ab (a fixed split until a verdict) | shadow (mirrored, never answering) | bandit (shares by reward)",
    )
    stages: list[float] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5, 1.0],
        description="canary: the candidate's share of live traffic at each stage, ending at 1; a 0 stage mirrors "
        "shadow_share of the traffic to the candidate instead (a shadow stage).",
    )
    shadow_share: float = Field(default=1.0, gt=0, le=1, description="Share of requests mirrored in a shadow stage.")
    ab_split: float = Field(default=0.5, gt=0, lt=1, description="ab: the candidate's share while the test runs.")
    bandit_min_share: float = Field(default=0.05, ge=0, le=0.5, description="bandit: each arm's share at least.")
    gates: GateSettings = GateSettings()

    @model_validator(mode="after")
    def _stages_grow_to_one(self) -> DeploymentSettings:
        stages = self.stages
        if not stages or stages[-1] != 1.0 or any(not 0 <= s <= 1 for s in stages):
            raise ValueError(f"deployment.stages must be shares in [0, 1] ending at 1, got {stages}")
        if any(b < a for a, b in itertools.pairwise(stages)):
            raise ValueError(f"deployment.stages must not shrink (a key on the candidate stays on it), got {stages}")
        return self


class MonitorConfig(_Section):
    """Everything driftline needs to watch one model."""

    model: ModelName
    reference: str = Field(description="Training data: a Parquet or CSV path or fsspec URL.")
    features: dict[str, FeatureType] | None = Field(
        default=None, description="Feature name -> type; inferred from the reference when omitted."
    )
    label_column: str = "label"
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns of the reference that are not features (never tested). The label column and columns "
        "that identify rows (a different value on every row, a sequence, an id-like name) are left out already; "
        "every column left out is named in the report.",
    )
    drift: DriftSettings = DriftSettings()
    metrics: MetricSettings = MetricSettings()
    alerts: AlertSettings = AlertSettings()
    performance: PerformanceSettings = PerformanceSettings()
    retrain: RetrainSettings = RetrainSettings()
    deployment: DeploymentSettings = DeploymentSettings()


class ConfigError(ValueError):
    pass


def load_monitor_config(path: str | Path) -> MonitorConfig:
    import yaml  # the roles that read monitor configs install it; the client a service embeds does not

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with at least 'model' and 'reference', got {type(data).__name__}"
        )
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"'{'.'.join(str(p) for p in item['loc'])}': {item['msg']}" for item in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


@dataclass(frozen=True)
class ConfigScan:
    """Every monitor config of a directory, the good apart from the broken, so one broken file stops only its own
    model: ``configs`` by model, ``broken`` maps a model (or, when its name cannot be read, the file's name) to
    what is wrong, and ``files`` says which file each came from."""

    configs: dict[str, MonitorConfig]
    broken: dict[str, str]
    files: dict[str, Path]

    @property
    def models(self) -> list[str]:
        """Every model to check: the good ones and the broken ones (whose checks then fail with the reason)."""
        return sorted({*self.configs, *self.broken})


def scan_monitor_configs(directory: str | Path) -> ConfigScan:
    """Like :func:`load_monitor_configs`, but a file that does not load, or a model configured twice, is set aside
    in ``broken`` with its one-line reason instead of failing every model."""
    directory = Path(directory)
    configs: dict[str, MonitorConfig] = {}
    broken: dict[str, str] = {}
    files: dict[str, Path] = {}
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []
    for path in paths:
        try:
            config = load_monitor_config(path)
        except ConfigError as exc:
            label = _declared_model(path) or path.name
            broken[label], files[label] = " ".join(str(exc).split()), path
            continue
        if config.model in files:  # which of the two holds is anybody's guess: neither is used
            first = files[config.model]
            broken[config.model] = (
                f"model {config.model!r} is configured in both {first.name} and {path.name} in {directory}; "
                "keep one file per model"
            )
            configs.pop(config.model, None)
            files[config.model] = path
            continue
        configs[config.model], files[config.model] = config, path
    return ConfigScan(configs, broken, files)


def _declared_model(path: Path) -> str | None:
    """The model a config file names, when it names a valid one (to label its failure); ``None`` otherwise."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    try:
        return check_name(model, "model")
    except NameError_:
        return None


def load_monitor_configs(directory: str | Path) -> dict[str, MonitorConfig]:
    """All ``*.yaml``/``*.yml`` files of a directory, by model name (a missing directory is empty)."""
    directory = Path(directory)
    configs: dict[str, MonitorConfig] = {}
    if not directory.is_dir():
        return configs
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        config = load_monitor_config(path)
        if config.model in configs:
            raise ConfigError(f"{path}: model {config.model!r} is configured twice in {directory}")
        configs[config.model] = config
    return configs
