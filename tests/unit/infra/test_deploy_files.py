"""The deployment files (infra/deploy/, .dockerignore) against the schemas and tools that read them, and against
driftline itself: every DRIFTLINE_* variable they set is a setting with a value it parses, every metric an alert or
the dashboard names is one the worker serves, the KEDA trigger reads the worker's real consumer group and topic.

No container engine or cluster is used (docs/deploying.md, "What was validated"). `make deploy-check` runs this file
and tests/integration/test_deploy_prometheus.py. Each ``test_*_refuses_*`` test breaks a file on purpose and shows
that its validator fails.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.version import Version

from driftline.dags.tasks.settings import CONNECTIONS, ConnectionValues, overlay
from driftline.schemas.config import load_monitor_configs
from driftline.schemas.settings import Settings, Topics

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "infra" / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE_DIR = DEPLOY / "compose"
KUBE = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
VALUES_AIRFLOW = KUBE / "airflow" / "values-airflow.yaml"
DASHBOARD = DEPLOY / "grafana" / "driftline-worker.json"
VENV_BIN = Path(sys.executable).parent
IN_CI = bool(os.environ.get("CI"))

SETTING_VARIABLES = set(Settings.variables().values())
SECRET_VARIABLES = {spec.metadata["env"] for spec in fields(Settings) if spec.metadata["secret"]}
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
# The metadata a KEDA `kafka` trigger reads (kedacore/keda, pkg/scalers/kafka_scaler.go, `keda:"name=..."` tags of
# the triggerMetadata order); a misspelt key would be ignored by KEDA and its default used instead.
KEDA_KAFKA_METADATA = {
    "bootstrapServers", "consumerGroup", "topic", "partitionLimitation", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions", "fullMetadata", "version", "tls", "unsafeSsl",
    "sasl", "saslTokenProvider", "awsRegion",
}  # fmt: skip


def tool(name: str) -> str:
    """A command-line validator: from the venv (make install, make deploy-tools) or PATH. Missing, the test is skipped
    with the reason, except under CI, where `make test` installs it and its absence is a failure."""
    found = VENV_BIN / name if (VENV_BIN / name).exists() else shutil.which(name)
    if not found:
        message = f"{name} is not installed (make deploy-tools unpacks Debian's prometheus package into .venv/bin)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(found)


def run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def check_settings(variables: dict[str, Any], where: str) -> None:
    """Every DRIFTLINE_* variable is a setting, and Settings.from_env parses the values."""
    ours = {name: str(value) for name, value in variables.items() if name.startswith("DRIFTLINE_")}
    unknown = sorted(set(ours) - SETTING_VARIABLES)
    assert not unknown, f"{where}: {unknown} are not driftline settings (schemas/settings.py)"
    Settings.from_env(ours)


# -- the Dockerfile and .dockerignore ---------------------------------------------------------------------------
class Stage:
    def __init__(self, base: str, name: str) -> None:
        self.base, self.name = base, name
        self.instructions: list[tuple[str, str]] = []

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], dict[str, Stage]]:
    """The global ARG defaults and the stages by name, read with dockerfile-parse."""
    parser = DockerfileParser(path=str(path))
    arguments: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        kind, value = item["instruction"], item["value"]
        if kind == "FROM":
            base, _, name = value.partition(" AS ")
            current = stages.setdefault(name.strip(), Stage(base.strip(), name.strip()))
        elif current is None and kind == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            arguments[key] = default
        elif current is not None:
            current.instructions.append((kind, value))
    return arguments, stages


def chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A target and the stages it is built FROM, the target first."""
    found = [stages[name]]
    while found[-1].base in stages:
        found.append(stages[found[-1].base])
    return found


def effective(stages: dict[str, Stage], name: str, instruction: str) -> str | None:
    for stage in chain(stages, name):
        if stage.values(instruction):
            return stage.values(instruction)[-1]
    return None


def env_of(stages: dict[str, Stage], name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for stage in reversed(chain(stages, name)):
        for value in stage.values("ENV"):
            for key, setting in re.findall(r'(\w+)=("[^"]*"|\S+)', value):
                env[key] = setting.strip('"')
    return env


def dockerfile_problems(path: Path = DOCKERFILE) -> list[str]:
    """What a role's image must have: its target, a user other than root, `driftline` as the entry point and the
    right command; the worker's and verdicts server's health checks on /livez."""
    _, stages = dockerfile_stages(path)
    missing = {"worker", "verdicts", "cli", "airflow"} - set(stages)
    if missing:
        return [f"no target {sorted(missing)}"]
    problems = []
    for target, command in (("worker", ["worker"]), ("verdicts", ["verdicts"]), ("cli", ["--help"])):
        if json.loads(effective(stages, target, "ENTRYPOINT") or "null") != ["driftline"]:
            problems.append(f"{target}: the entry point is not driftline")
        if json.loads(effective(stages, target, "CMD") or "null") != command:
            problems.append(f"{target}: the command is not {command}")
        user = effective(stages, target, "USER") or "root"
        if user.split(":")[0] in {"root", "0"}:
            problems.append(f"{target} runs as {user}")
        if not chain(stages, target)[-1].base.startswith("python:${PYTHON_VERSION}-slim"):
            problems.append(f"{target} is not built on the slim Python image")
    for target in ("worker", "verdicts"):
        health = stages[target].values("HEALTHCHECK")
        if len(health) != 1 or "/livez" not in health[0]:
            problems.append(f"{target}: no HEALTHCHECK on /livez")
    # The airflow target keeps the official image's user (airflow) and entry point.
    if stages["airflow"].values("USER") or stages["airflow"].values("ENTRYPOINT"):
        problems.append("airflow: changes the official image's user or entry point")
    return problems


def test_the_dockerfile_has_a_target_per_role_non_root_with_driftline_as_its_entry_point():
    assert dockerfile_problems() == []


def test_the_dockerfile_check_refuses_a_root_worker_without_a_health_check(tmp_path):
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text().replace("USER 10001:10001\nEXPOSE 6066", "USER root\nEXPOSE 6066")
    broken.write_text(text.replace("/livez' % os.environ['DRIFTLINE_WORKER_PORT']", "/' % os.environ['X']"))
    assert dockerfile_problems(broken) == ["worker runs as root", "worker: no HEALTHCHECK on /livez"]


def test_the_worker_image_listens_on_all_addresses_and_checks_its_health_on_livez():
    _, stages = dockerfile_stages()
    env = env_of(stages, "worker")
    assert env["DRIFTLINE_WORKER_HOST"] == "0.0.0.0"
    port = env["DRIFTLINE_WORKER_PORT"]
    assert stages["worker"].values("EXPOSE") == [port]
    [health] = stages["worker"].values("HEALTHCHECK")
    assert "/livez" in health and "DRIFTLINE_WORKER_PORT" in health
    verdicts = env_of(stages, "verdicts")
    assert verdicts["DRIFTLINE_VERDICTS_HOST"] == "0.0.0.0"
    assert stages["verdicts"].values("EXPOSE") == [verdicts["DRIFTLINE_VERDICTS_PORT"]]
    for target in ("worker", "verdicts", "cli", "airflow"):
        check_settings(env_of(stages, target), f"Dockerfile target {target}")


def test_every_role_installs_the_wheel_with_the_pinned_versions():
    _, stages = dockerfile_stages()
    extras = {"venv-worker": "[worker,s3]", "venv-cli": "[cli,worker,s3]", "airflow": "[airflow,s3]"}
    for name, wanted in extras.items():
        [install] = [v for v in stages[name].values("RUN") if "pip install" in v]
        assert "--constraint" in install and "constraints.txt" in install, name
        assert f"driftline-*.whl){wanted}" in install, name
    assert any("venv-worker" in v for v in stages["worker"].values("COPY"))
    assert any("venv-worker" in v for v in stages["verdicts"].values("COPY"))
    assert any("venv-cli" in v for v in stages["cli"].values("COPY"))


def airflow_requirement() -> Requirement:
    [requirement] = [
        Requirement(r)
        for r in importlib.metadata.requires("driftline") or []
        if r.startswith("apache-airflow") and 'extra == "airflow"' in r
    ]
    return requirement


def test_the_airflow_target_is_the_official_image_of_a_version_driftline_supports_and_pins():
    arguments, stages = dockerfile_stages()
    version = arguments["AIRFLOW_VERSION"]
    assert stages["airflow"].base == "apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"
    assert Version(version) in airflow_requirement().specifier, f"{version} is outside driftline[airflow]'s range"
    assert f"apache-airflow=={version}\n" in (ROOT / "constraints.txt").read_text(), "constraints.txt pins another"
    assert any('"apache-airflow==${AIRFLOW_VERSION}"' in v for v in stages["airflow"].values("RUN"))
    dags = env_of(stages, "airflow")["AIRFLOW__CORE__DAGS_FOLDER"]
    assert dags == "/home/airflow/.local/lib/python${PYTHON_VERSION}/site-packages/driftline/dags"
    # The build checks that path against the installed package.
    assert any("AIRFLOW__CORE__DAGS_FOLDER" in v and "driftline.dags" in v for v in stages["airflow"].values("RUN"))


def test_hadolint_passes_the_dockerfile():
    done = run(tool("hadolint"), "--no-color", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_refuses_a_broken_dockerfile(tmp_path):
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("FROM runtime AS worker", "FROM runtime AS worker\nRUN cd /tmp"))
    done = run(tool("hadolint"), "--no-color", broken)
    assert done.returncode != 0 and "DL3003" in done.stdout


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent folders wins; `!`
    includes again; `**` spans folders."""
    result = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = "".join(
            ".*" if token == "**" else "[^/]*" if token == "*" else "[^/]" if token == "?" else re.escape(token)
            for token in re.split(r"(\*\*|\*|\?)", pattern)
        )
        regex = regex.replace(".*/", "(.*/)?")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not negate
    return result


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_local():
    patterns = dockerignore_patterns()
    _, stages = dockerfile_stages()
    sources = [
        part
        for stage in stages.values()
        for value in stage.values("COPY")
        if not value.startswith("--from")
        for part in value.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source.rstrip("/"), patterns), f"{source} is left out of the build context"
    for inside in ("streams/agents.py", "driftline/__init__.py", "dags/.airflowignore", "schemas/jsonschema/x.json"):
        assert not ignored(inside, patterns), inside
    for outside in (".venv/bin/python", ".driftline/storage/x", ".git/HEAD", "tests/unit/x.py", "benchmarks/data/x",
                    "infra/deploy/compose/compose.yaml", "streams/__pycache__/x.pyc"):  # fmt: skip
        assert ignored(outside, patterns), outside


def test_the_dockerignore_check_refuses_a_context_without_the_sources():
    assert ignored("streams/agents.py", [p for p in dockerignore_patterns() if p != "!streams/"])


def docker_context(target: Path) -> Path:
    """A copy of what `docker build .` sends: the repository less .dockerignore's exclusions, symlinks kept as such."""
    patterns = dockerignore_patterns()
    for folder, folders, files in os.walk(ROOT):  # a symlinked folder is listed, not entered
        for name in [*folders, *files]:
            path = Path(folder) / name
            relative = path.relative_to(ROOT).as_posix()
            if ignored(relative, patterns):
                if name in folders:
                    folders.remove(name)
                continue
            destination = target / relative
            if path.is_symlink():
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.symlink_to(os.readlink(path))
            elif path.is_file():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
    return target


def test_the_wheel_builds_from_the_build_context(tmp_path):
    """What the Dockerfile's first stage runs, on the files the build context holds: the wheel, with the DAGs."""
    context = docker_context(tmp_path / "context")
    done = run(VENV_BIN / "uv", "build", "--wheel", "--out-dir", tmp_path / "dist", context, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("driftline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "driftline/dags/driftline_drift.py",
        "driftline/dags/.airflowignore",
        "driftline/streams/agents.py",
    } <= names


# -- compose ----------------------------------------------------------------------------------------------------
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose's interpolation of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.groups()
        if name in environ and (environ[name] or operator not in {":-", ":?"}):
            return environ[name]
        if operator in {":?", "?"}:
            raise ValueError(f"{name} is required: {default}")
        return default or ""

    return INTERPOLATION.sub(replace, value)


def compose_raw() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


def compose(environ: dict[str, str] | None = None) -> dict[str, Any]:
    return interpolate(compose_raw(), environ or {})


def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema as check-jsonschema vendors it (Apache-2.0, from compose-spec/compose-spec)."""
    [found] = [
        f for f in importlib.metadata.files("check-jsonschema") or [] if str(f).endswith("vendor/compose-spec.json")
    ]
    return json.loads(Path(str(found.locate())).read_text())


def compose_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(compose_schema())(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_follows_the_compose_specification():
    assert compose_errors(compose()) == []


def test_the_compose_check_refuses_a_misspelt_field():
    broken = compose()
    broken["services"]["worker"]["healthcheck"] = {"test": ["CMD", "true"], "intervall": "10s"}
    assert any("intervall" in error for error in compose_errors(broken))


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_compose_publishes_every_port_on_loopback_and_each_one_is_configurable():
    raw, stack = compose_raw(), compose()
    published = 0
    for name, service in stack["services"].items():
        for raw_port, port in zip(raw["services"][name].get("ports", []), service.get("ports", []), strict=True):
            published += 1
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
            assert re.fullmatch(r"\$\{BIND_ADDRESS:-127\.0\.0\.1\}:\$\{\w+:-\d+\}:.+", str(raw_port)), (
                f"{name}: {raw_port}"
            )
    assert published >= 8
    moved = compose({"BIND_ADDRESS": "0.0.0.0", "WORKER_HOST_PORT": "7066"})
    assert "0.0.0.0:7066:6066" in moved["services"]["worker"]["ports"]


def test_compose_runs_the_whole_stack_from_the_images_of_the_dockerfile():
    services = compose()["services"]
    assert {"kafka", "minio", "minio-init", "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "worker", "verdicts", "prometheus", "grafana"} <= set(services)  # fmt: skip
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert "mc mb" in " ".join(services["minio-init"]["command"])
    _, stages = dockerfile_stages()
    for name in ("worker", "verdicts", "cli", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        build = services[name]["build"]
        assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert build["target"] in stages, name
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    # Every file compose mounts exists.
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts {source}, which does not exist"


def test_compose_sets_only_real_driftline_settings_with_values_they_parse():
    services = compose()["services"]
    shared = env_file(COMPOSE_DIR / "driftline.env")
    check_settings(shared, "driftline.env")
    for name, service in services.items():
        env = {**(shared if "driftline.env" in service.get("env_file", []) else {}), **service.get("environment", {})}
        check_settings(env, f"compose service {name}")
    # The shared file points the containers at the stack's own services.
    settings = Settings.from_env(shared)
    assert settings.bootstrap_servers == "kafka:9092" and settings.s3_endpoint_url == "http://minio:9000"
    assert settings.storage_url.startswith("s3://driftline/")  # the bucket minio-init makes
    assert "stack/driftline" in " ".join(services["minio-init"]["command"])


def test_the_compose_settings_check_refuses_a_setting_that_does_not_exist():
    with pytest.raises(AssertionError, match="DRIFTLINE_WORKER_HOSTNAME"):
        check_settings({"DRIFTLINE_WORKER_HOSTNAME": "0.0.0.0"}, "test")
    with pytest.raises(ValueError, match="DRIFTLINE_PARTITIONS"):
        check_settings({"DRIFTLINE_PARTITIONS": "four"}, "test")


def test_compose_gives_airflow_driftlines_connections_and_the_dags_of_the_package():
    services = compose()["services"]
    shared = env_file(COMPOSE_DIR / "driftline.env")
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        connections = {}
        for conn_id in CONNECTIONS:
            value = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
            connections[conn_id] = ConnectionValues(
                host=value.get("host"),
                port=value.get("port"),
                login=value.get("login"),
                password=value.get("password") or None,
                extra=value.get("extra", {}),
            )
        settings = overlay(Settings.from_env(shared), connections, {})
        assert settings.bootstrap_servers == "kafka:9092"
        assert settings.s3_endpoint_url == "http://minio:9000"
        assert settings.s3_access_key_id == services["minio"]["environment"]["MINIO_ROOT_USER"]
        assert settings.s3_secret_access_key == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    # The DAGs folder is the image's (the Dockerfile's airflow target): compose does not move it.
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in services["airflow-scheduler"]["environment"]


def test_grafana_is_provisioned_with_the_shipped_dashboard_and_prometheus():
    grafana = compose()["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    dashboard_mount = mounts["../grafana/driftline-worker.json"]
    providers = yaml.safe_load((COMPOSE_DIR / "grafana/provisioning/dashboards/driftline.yaml").read_text())
    assert Path(dashboard_mount).parent.as_posix() == providers["providers"][0]["options"]["path"]
    sources = yaml.safe_load((COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] and source["url"] == "http://prometheus:9090"


# -- Kubernetes -------------------------------------------------------------------------------------------------
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBE / "kustomization.yaml").read_text())


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in kustomization()["resources"]:
        for document in yaml.safe_load_all((KUBE / resource).read_text()):
            if document:
                yield resource, document


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in manifests() if document["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    [found] = [document for document in by_kind(kind) if document["metadata"]["name"] == name]
    return found


def unknown_fields(given: Any, kept: Any, where: str = "") -> list[str]:
    """Fields of ``given`` that a model validated from it dropped: names the CRD's schema does not have."""
    if isinstance(given, dict) and isinstance(kept, dict):
        return [
            problem
            for key, value in given.items()
            for problem in (
                [f"{where}/{key}"] if key not in kept else unknown_fields(value, kept[key], f"{where}/{key}")
            )
        ]
    if isinstance(given, list) and isinstance(kept, list):
        return [
            p for i, (a, b) in enumerate(zip(given, kept, strict=False)) for p in unknown_fields(a, b, f"{where}/{i}")
        ]
    return []


def crd_errors(document: dict[str, Any]) -> list[str]:
    """A custom resource against the model generated from its CRD's OpenAPI schema (cloudcoil): the types, and no
    field the CRD lacks (kubectl's strict field validation refuses those)."""
    from cloudcoil.models.keda.v1alpha1 import ScaledObject
    from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule

    models: dict[tuple[str, str], Any] = {
        ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
        ("monitoring.coreos.com/v1", "PodMonitor"): PodMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
    }
    model = models[(document["apiVersion"], document["kind"])]
    try:
        kept = model.model_validate(document).model_dump(by_alias=True, exclude_unset=True, mode="json")
    except pydantic.ValidationError as exc:  # names every field that does not hold
        return [str(exc)]
    return [f"{document['kind']}: unknown field {field}" for field in unknown_fields(document, kept)]


def kubernetes_errors(document: dict[str, Any]) -> list[str]:
    if "/" in document["apiVersion"] and document["apiVersion"].split("/")[0] in {"keda.sh", "monitoring.coreos.com"}:
        return crd_errors(document)
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc).splitlines()[0]]
    return []


def test_every_manifest_follows_its_schema():
    kinds = set()
    for resource, document in manifests():
        kinds.add(document["kind"])
        assert kubernetes_errors(document) == [], resource
    assert {"Deployment", "Service", "ConfigMap", "PodMonitor", "PrometheusRule", "ScaledObject"} <= kinds
    assert "Secret" not in kinds  # referenced, never shipped


@pytest.mark.parametrize(
    ("resource", "path", "field"),
    [
        ("worker-deployment.yaml", ["spec", "template", "spec", "containers", 0], "livenesProbe"),
        ("worker-scaledobject.yaml", ["spec"], "maxReplicas"),
        ("worker-podmonitor.yaml", ["spec", "podMetricsEndpoints", 0], "paths"),
        ("prometheusrule.yaml", ["spec", "groups", 0, "rules", 0], "expression"),
    ],
)
def test_the_manifest_check_refuses_a_misspelt_field(resource, path, field):
    document = copy.deepcopy(yaml.safe_load((KUBE / resource).read_text()))
    place = document
    for step in path:
        place = place[step]
    place[field] = "x"
    assert any(field in error for error in kubernetes_errors(document))


def test_the_base_renders_with_kustomize_when_kubectl_is_here():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its kustomize) is not installed; the files were validated one by one above")
    done = run(kubectl, "kustomize", KUBE)
    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len(rendered) == len(list(manifests()))
    for document in rendered:
        assert kubernetes_errors(document) == [], document["metadata"]["name"]
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "driftline"
    images = {
        c["image"] for d in rendered if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"driftline-worker:0.1.0", "driftline-verdicts:0.1.0"}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [found] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def env_values(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment).get("env", []) if "value" in e}


def settings_configmap() -> dict[str, str]:
    return dict(named("ConfigMap", "driftline-settings")["data"])


def test_the_worker_deployment_probes_runs_without_privileges_and_is_bounded():
    worker = named("Deployment", "driftline-worker")
    spec = worker["spec"]["template"]["spec"]
    main = container(worker)
    env = env_values(worker)
    assert env["DRIFTLINE_WORKER_HOST"] == "0.0.0.0"
    [port] = main["ports"]
    assert str(port["containerPort"]) == env["DRIFTLINE_WORKER_PORT"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port["name"]}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert main["startupProbe"]["httpGet"]["path"] == "/livez"
    assert set(main["resources"]) == {"requests", "limits"}
    assert spec["securityContext"]["runAsNonRoot"] is True
    _, stages = dockerfile_stages()
    assert f"{spec['securityContext']['runAsUser']}:{spec['securityContext']['runAsGroup']}" == effective(
        stages, "worker", "USER"
    )
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert "replicas" not in worker["spec"]  # KEDA's
    assert worker["spec"]["strategy"]["type"] == "Recreate"  # one worker version per group
    # Its monitor configs are where DRIFTLINE_CONFIG_DIR says.
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    [monitors] = [name for name, v in volumes.items() if v.get("configMap", {}).get("name") == "driftline-monitors"]
    assert mounts[monitors] == settings_configmap()["DRIFTLINE_CONFIG_DIR"]


def test_the_verdicts_server_is_a_deployment_and_a_service_on_its_port():
    verdicts = named("Deployment", "driftline-verdicts")
    env = env_values(verdicts)
    [port] = container(verdicts)["ports"]
    assert env["DRIFTLINE_VERDICTS_HOST"] == "0.0.0.0" and str(port["containerPort"]) == env["DRIFTLINE_VERDICTS_PORT"]
    assert container(verdicts)["livenessProbe"]["httpGet"]["path"] == "/livez"
    service = named("Service", "driftline-verdicts")
    assert service["spec"]["selector"].items() <= verdicts["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_manifests_set_only_real_settings_and_take_secrets_from_secrets_only():
    configmap = settings_configmap()
    check_settings(configmap, "settings-configmap.yaml")
    assert not set(configmap) & SECRET_VARIABLES, "a secret setting in a ConfigMap"
    for deployment in by_kind("Deployment"):
        name = deployment["metadata"]["name"]
        check_settings({**configmap, **env_values(deployment)}, name)
        for entry in container(deployment).get("env", []):
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if entry["name"] in SECRET_VARIABLES:
                assert reference is not None, f"{name}: {entry['name']} is a secret and must come from a Secret"
            if reference is not None:
                assert entry["name"] in SETTING_VARIABLES, f"{name}: {entry['name']}"


def test_the_monitor_configs_configmap_holds_configs_driftline_loads(tmp_path):
    data = named("ConfigMap", "driftline-monitors")["data"]
    for key, text in data.items():
        (tmp_path / key).write_text(text)
    assert sorted(load_monitor_configs(tmp_path)) == sorted(yaml.safe_load(text)["model"] for text in data.values())


def worker_group(prefix: str, home: Path) -> str:
    """The consumer group in which the worker's source reader reads the predictions, as the worker builds it."""
    from driftline.schemas.storage import Storage
    from driftline.streams.app import create_app
    from driftline.streams.health import WorkerHealth
    from driftline.streams.sources import SourceReader

    settings = Settings(topic_prefix=prefix, home=str(home))
    app = create_app(settings)
    reader = SourceReader(settings, {}, Storage.from_settings(settings), app.conf.id, WorkerHealth(stall_after=60))
    return str(reader.consumer_config()["group.id"])


def test_keda_scales_on_the_lag_of_the_workers_own_group_up_to_the_partitions(tmp_path):
    scaled = named("ScaledObject", "driftline-worker")
    configmap = settings_configmap()
    settings = Settings.from_env(configmap)
    [trigger] = scaled["spec"]["triggers"]
    metadata = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert set(metadata) <= KEDA_KAFKA_METADATA, set(metadata) - KEDA_KAFKA_METADATA
    assert metadata["consumerGroup"] == worker_group(settings.topic_prefix, tmp_path)
    assert metadata["topic"] == Topics(settings.topic_prefix).predictions
    assert metadata["bootstrapServers"] == settings.bootstrap_servers
    assert int(metadata["lagThreshold"]) > 0
    # A worker beyond the predictions topic's partitions holds none (docs/operations.md, sizing).
    assert scaled["spec"]["maxReplicaCount"] == settings.partitions
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["scaleTargetRef"]["name"] == named("Deployment", "driftline-worker")["metadata"]["name"]


def test_the_podmonitor_scrapes_the_worker_pods_metrics_port_as_job_driftline_worker():
    monitor = named("PodMonitor", "driftline-worker")
    worker = named("Deployment", "driftline-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in container(worker)["ports"]}
    assert endpoint["path"] == "/metrics"
    assert labels[monitor["spec"]["jobLabel"]] == "driftline-worker"  # the job the rules' `up` alert names


def test_the_prometheusrule_holds_the_same_rules_as_the_plain_rules_file():
    rules = yaml.safe_load((PROMETHEUS / "driftline-rules.yml").read_text())
    assert named("PrometheusRule", "driftline-worker")["spec"]["groups"] == rules["groups"]
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    wanted = {
        "DriftlineErrorRateHigh",
        "DriftlineLatencyP95High",
        "DriftlineConsumerLagHigh",
        "DriftlineWorkerNotReady",
    }
    assert wanted <= names


# -- metric names -----------------------------------------------------------------------------------------------
def served_metrics() -> set[str]:
    """Every series name the worker's registry serves (streams/telemetry.py), counters with their _total."""
    from driftline.streams.telemetry import WorkerTelemetry

    names = set()
    for family in WorkerTelemetry().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.update({f"{family.name}_total", f"{family.name}_created"})
    return names


def named_metrics(text: str) -> set[str]:
    return set(re.findall(r"\bdriftline_[a-z0-9_]+", text))


def test_every_metric_an_alert_or_the_dashboard_queries_is_one_the_worker_serves():
    served = served_metrics()
    rules_text = (PROMETHEUS / "driftline-rules.yml").read_text()
    dashboard_text = " ".join(
        target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel.get("targets", [])
    ) + json.dumps(json.loads(DASHBOARD.read_text())["templating"])
    for where, text in (("driftline-rules.yml", rules_text), ("the dashboard", dashboard_text),
                        ("prometheusrule.yaml", (KUBE / "prometheusrule.yaml").read_text())):  # fmt: skip
        used = named_metrics(text)
        assert used, where
        assert used <= served, f"{where} queries {sorted(used - served)}, which the worker does not serve"


def test_the_metric_check_refuses_a_name_the_worker_does_not_serve():
    assert not named_metrics("rate(driftline_events_totl[5m])") <= served_metrics()


# -- Prometheus -------------------------------------------------------------------------------------------------
def test_the_shipped_prometheus_config_discovers_the_workers_of_the_checkouts_home():
    """Prometheus resolves file_sd paths from the config's folder; the workers of the default home (.driftline at the
    repository root) list themselves in <home>/worker/prometheus (streams/app.py, announce)."""
    from driftline.streams.app import targets_file

    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [[pattern]] = [sd["files"] for sd in job["file_sd_configs"]]
    resolved = (PROMETHEUS / pattern).resolve()
    announced = targets_file(Settings(home=str(ROOT / Settings().home)), 6066)
    assert resolved.parent == announced.parent and announced.match(resolved.name)
    assert job["job_name"] == "driftline-worker"


def test_promtool_passes_the_host_and_compose_configs_and_the_rules(tmp_path):
    promtool = tool("promtool")
    for config in (PROMETHEUS / "prometheus.yml",):
        done = run(promtool, "check", "config", config)
        assert done.returncode == 0, done.stdout + done.stderr
    # The compose Prometheus, laid out as compose.yaml mounts it.
    mounts = compose()["services"]["prometheus"]["volumes"]
    for volume in mounts:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            destination = tmp_path / target.removeprefix("/etc/prometheus/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(COMPOSE_DIR / source, destination)
    done = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0 and "1 rule files found" in done.stdout, done.stdout + done.stderr
    # The PrometheusRule's groups as a plain rules file.
    groups = tmp_path / "prometheusrule-groups.yml"
    groups.write_text(yaml.safe_dump({"groups": named("PrometheusRule", "driftline-worker")["spec"]["groups"]}))
    done = run(promtool, "check", "rules", groups)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_check_refuses_a_broken_rule(tmp_path):
    broken = tmp_path / "rules.yml"
    broken.write_text((PROMETHEUS / "driftline-rules.yml").read_text().replace("> 100000", "> > 100000"))
    done = run(tool("promtool"), "check", "rules", broken)
    assert done.returncode != 0


def test_promtool_tests_the_alert_rules():
    done = run(tool("promtool"), "test", "rules", PROMETHEUS / "driftline-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_fails_when_a_threshold_moves(tmp_path):
    shutil.copy(PROMETHEUS / "driftline-rules.test.yml", tmp_path)
    rules = (PROMETHEUS / "driftline-rules.yml").read_text()
    (tmp_path / "driftline-rules.yml").write_text(rules.replace("> 0.05", "> 0.09"))
    done = run(tool("promtool"), "test", "rules", tmp_path / "driftline-rules.test.yml")
    assert done.returncode != 0 and "DriftlineErrorRateHigh" in done.stdout + done.stderr


# -- the Airflow chart's values ---------------------------------------------------------------------------------
def test_the_airflow_chart_values_run_the_airflow_image_with_driftlines_dags_and_connections():
    values = yaml.safe_load(VALUES_AIRFLOW.read_text())
    arguments, stages = dockerfile_stages()
    assert values["airflowVersion"] == arguments["AIRFLOW_VERSION"] == values["defaultAirflowTag"]
    assert (
        values["images"]["airflow"]["repository"] == compose()["services"]["airflow-scheduler"]["image"].split(":")[0]
    )
    dags = env_of(stages, "airflow")["AIRFLOW__CORE__DAGS_FOLDER"].replace(
        "${PYTHON_VERSION}", arguments["PYTHON_VERSION"]
    )
    assert values["config"]["core"]["dags_folder"] == dags
    assert values["dags"]["persistence"]["enabled"] is False and values["dags"]["gitSync"]["enabled"] is False
    assert values["dagProcessor"]["enabled"] is True
    check_settings({e["name"]: e["value"] for e in values["env"]}, "values-airflow.yaml env")
    from_secrets = {entry["envName"] for entry in values["secret"]}
    assert {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in CONNECTIONS} <= from_secrets
    assert all(name in SECRET_VARIABLES for name in from_secrets if name.startswith("DRIFTLINE_"))
    mounts = {m["name"]: m["mountPath"] for m in values["volumeMounts"]}
    [volume] = [v for v in values["volumes"] if v["configMap"]["name"] == "driftline-monitors"]
    assert mounts[volume["name"]] == {e["name"]: e["value"] for e in values["env"]}["DRIFTLINE_CONFIG_DIR"]
