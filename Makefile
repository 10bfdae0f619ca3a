# The two commands: `make demo` and `make test`. Both create .venv/ and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install deploy-tools browser-tools deploy-check airflow-versions stack demo test lint bench bench-window bench-streams bench-router bench-quality bench-evidently-env chaos fuzz schemas up down clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/driftline demo

# Lint, format check, types and the import contract (pyproject.toml, [tool.importlinter]) first: a style or type error fails fast, before the slower tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Two pytest-xdist processes (the machines have 2 cores; most of the suite waits on other processes), the longest
# tests first (tests/conftest.py), each worker taking the other's tests when it runs out; the 15 slowest are listed.
test: lint deploy-tools browser-tools
	$(BIN)/pytest -q -rs -n 2 --dist worksteal --durations=15

# promtool and prometheus for the deployment checks: Debian's prometheus package, unpacked into .venv/bin (nothing is
# installed system-wide, no service is started). Without apt the checks that need them skip (and fail under CI).
$(BIN)/promtool: | $(BIN)/.installed
	-@tmp=$$(mktemp -d) && cd $$tmp && { apt-get download prometheus >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } \
		&& dpkg-deb -x prometheus_*.deb unpacked && cp unpacked/usr/bin/promtool unpacked/usr/bin/prometheus $(CURDIR)/$(BIN)/; \
		rm -rf $$tmp

deploy-tools: $(BIN)/promtool

# Chromium for the tests of pages a person looks at (Playwright drives it; it downloads no browser of its own):
# Debian's package, installed when missing (as root, or with sudo). Without it those tests skip (and fail under CI).
browser-tools:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| { $$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1; } \
		|| echo "browser-tools: could not install Debian's chromium; the browser tests will skip"; }

# The deployment files (infra/deploy, .dockerignore) against the compose spec, the Kubernetes and CRD schemas,
# hadolint, promtool (check config, check rules, test rules), kustomize when kubectl is here, a real Prometheus, and
# driftline's own settings and metric names (docs/deploying.md, "What was validated").
deploy-check: install deploy-tools
	$(BIN)/pytest -q -rs tests/unit/infra/test_deploy_files.py tests/integration/test_deploy_prometheus.py

# The DAGs on real DAG runs under the oldest and the newest Airflow that driftline[airflow] claims, each in a fresh
# environment without the worker (docs/operations.md, "Airflow versions"); AIRFLOW_VERSIONS="3.2.0 3.3.1" for others.
airflow-versions: install
	$(BIN)/python -m driftline.infra.airflow_versions $(AIRFLOW_VERSIONS)

# driftline as deployed, on this machine: the wheel in one environment per role (the service's with the client only),
# Airflow on PostgreSQL, the worker, the broker and a model service under real traffic with a drift and a latency
# regression; checks every part and stops all it started (docs/deploying.md, "A production-shaped stack").
stack: install
	$(BIN)/python -m driftline.infra.stack $(STACK_ARGS)

# The stream path on real processes: backlog, kill -9, a worker joining and leaving, a broker restart.
chaos: install
	$(BIN)/python -m driftline.infra.chaos

# Generated hostile and malformed events through the producer, the worker and ingest on the embedded broker.
fuzz: install
	$(BIN)/python -m driftline.infra.fuzz --events 10000

bench: install
	$(BIN)/python -m benchmarks.drift_engine

# Peak memory of the drift check of a one-hour window of 1M, 3M and 10M events (two file layouts), and of ingest.
bench-window: install
	$(BIN)/python -m benchmarks.window_memory

bench-streams: install
	$(BIN)/python -m benchmarks.streams

# The cost of the embedded router's route() per call, next to a plain dict lookup.
bench-router: install
	$(BIN)/python -m benchmarks.router

# False alarms over no-drift splits and detections of injected shifts, next to Evidently's verdicts (its columns
# need bench-evidently-env, which also exports the real tables; without it they are left empty).
bench-quality: install
	$(BIN)/python -m benchmarks.drift_quality

# Evidently (for the benchmark's comparison only) needs pandas<3, so it gets an environment of its own.
bench-evidently-env:
	$(PYTHON) -m venv benchmarks/.venv-evidently
	benchmarks/.venv-evidently/bin/python -m pip install --quiet uv
	benchmarks/.venv-evidently/bin/uv pip install --quiet --compile-bytecode \
		--python benchmarks/.venv-evidently/bin/python "evidently==0.7.23" "pandas<3" pyarrow

schemas: install
	$(BIN)/python -m driftline.schemas.write_jsonschema

up: install
	$(BIN)/driftline up

down: install
	$(BIN)/driftline down

clean:
	rm -rf $(VENV) .driftline
