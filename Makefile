# The two commands: `make demo` and `make test`. Both create .venv/ and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench schemas up down clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/driftline demo

test: install
	$(BIN)/pytest -q -rs

bench: install
	$(BIN)/python -m benchmarks.drift_engine

schemas: install
	$(BIN)/python -m driftline.schemas.write_jsonschema

up: install
	$(BIN)/driftline up

down: install
	$(BIN)/driftline down

clean:
	rm -rf $(VENV) .driftline
